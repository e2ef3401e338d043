"""The cluster layer's exceptions, all under :class:`~tinyagents.errors.TinyAgentsError`::

TinyAgentsError
└── ClusterError              something about cluster membership
    ├── MalformedMessage      bytes from the network that are not a valid message
    ├── JoinFailed            none of the seeds given to ``join`` could be joined
    └── MetaTooLarge          node meta (or encoded tags) over 512 bytes (also a ValueError)
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import TinyAgentsError

__all__ = ["ClusterError", "JoinFailed", "MalformedMessage", "MetaTooLarge"]


class ClusterError(TinyAgentsError):
    """Something went wrong with cluster membership."""


class MalformedMessage(ClusterError):
    """Bytes received from the network are not a valid memberlist message.

    The message says what was wrong: truncated data, an unknown message type, bad
    msgpack, a field of the wrong type, a size over a limit, a bad checksum, or a
    payload that no key could decrypt. Decoders raise nothing else on bad input.
    """


class JoinFailed(ClusterError):
    """``join`` could not join the cluster through any of its seeds; ``seeds`` lists them."""

    def __init__(self, message: str, seeds: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.seeds = tuple(seeds)


class MetaTooLarge(ClusterError, ValueError):
    """A member's meta (for Serf, its encoded tags) is longer than memberlist allows.

    ``size`` is the encoded length and ``limit`` the maximum (512 bytes, memberlist's
    ``MetaMaxSize``).
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"node meta is {size} bytes, more than the limit of {limit} bytes")
        self.size = size
        self.limit = limit
