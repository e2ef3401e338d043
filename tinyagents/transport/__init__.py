"""Actor messages between nodes: refs to remote actors that work like local ones.

::

    async with ActorSystem("a") as system, Transport(system, secret=b"...") as transport:
        bot = system.ref_for("tinyagents://b@127.0.0.1:7947/user/bot")
        answer = await bot.ask(Prompt("hello"), timeout=30)

* :class:`Transport` — the node's endpoint, an ``async with`` service of an actor
  system; :class:`TransportConfig` holds its limits and timings, :class:`TransportStats`
  its counters.
* :func:`message` — registers an attrs class as a message type that can cross nodes
  (built-in kinds, refs, and the LLM / agent value types need no registration);
  :class:`MessageRegistry` and :class:`Codec` are the registry and codec behind it.
* :class:`TLS` — mutual TLS for every connection.
* :data:`TRANSPORT_TAG` — the gossip tag carrying a node's transport address.

Frames are a 4-byte big-endian length and a msgpack envelope; the handshake
authenticates peers by an HMAC challenge-response over a shared secret and/or mutual
TLS. The errors are in :mod:`tinyagents.errors` (``TransportError`` and below).
"""

from ._codec import Codec as Codec
from ._codec import MessageRegistry as MessageRegistry
from ._codec import message as message
from ._frame import DEFAULT_FRAME_LIMIT as DEFAULT_FRAME_LIMIT
from ._handshake import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._service import TRANSPORT_TAG as TRANSPORT_TAG
from ._service import Transport as Transport
from ._service import TransportConfig as TransportConfig
from ._service import TransportStats as TransportStats
from ._tls import TLS as TLS

__all__ = [
    "DEFAULT_FRAME_LIMIT",
    "PROTOCOL_VERSION",
    "TLS",
    "TRANSPORT_TAG",
    "Codec",
    "MessageRegistry",
    "Transport",
    "TransportConfig",
    "TransportStats",
    "message",
]
