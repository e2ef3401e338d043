"""The Replicator: keyed CRDTs kept on every node of a cluster, spread by deltas and
repaired by anti-entropy, with per-call consistency levels (after Akka Distributed
Data)."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import secrets
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast

import attrs
import msgpack  # type: ignore[import-untyped]
import trio

from .._metrics import Sample
from .._nursery import open_service_nursery
from .._validate import check_int, check_optional, check_seconds
from ..actor import Actor, ActorRef, Context
from ..errors import (
    KeyDeleted,
    KeyTypeMismatch,
    NotSerializable,
    ReadIncomplete,
    SystemNotRunning,
    TinyAgentsError,
    TransportError,
    UpdateIncomplete,
)

if TYPE_CHECKING:
    from ..actor import ActorSystem
    from ..cluster import Cluster
    from ..transport import Codec

__all__ = [
    "Key",
    "ReadAll",
    "ReadConsistency",
    "ReadFrom",
    "ReadLocal",
    "ReadMajority",
    "Replicator",
    "ReplicatorConfig",
    "ReplicatorStats",
    "Subscription",
    "WriteAll",
    "WriteConsistency",
    "WriteLocal",
    "WriteMajority",
    "WriteTo",
]

logger = logging.getLogger("tinyagents.crdt")

D = TypeVar("D")

_DELETED = b""  # a deleted key's digest in a status message


# -- keys and consistency levels -------------------------------------------------------


def _check_key_id(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a key's id must be a non-empty str, not {value!r:.80}")


def _check_data_type(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not (
        isinstance(value, type) and callable(getattr(value, "merge", None)) and attrs.has(value)
    ):
        raise TypeError(
            "a key's type must be a replicated data type (GCounter, PNCounter, "
            f"LWWRegister, ORSet, ORMap, LWWMap...), not {value!r:.80}"
        )


@attrs.frozen
class Key(Generic[D]):
    """The name of a replicated value and its data type::

        VISITS = Key("visits", PNCounter)

    A key is identified by its ``id`` alone, on every node: the nodes that share a key
    must give it the same type. Its empty state is ``type()``.
    """

    id: str = attrs.field(validator=_check_key_id)
    type: type[D] = attrs.field(validator=_check_data_type)


def _check_count(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(value, attribute.name, minimum=1)


def _check_cap(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(value, attribute.name, minimum=0)


@attrs.frozen
class _Local:
    def required(self, nodes: int) -> int:
        """How many replicas, this one included, make the level: 1."""
        return 1


@attrs.frozen
class _Count:
    n: int = attrs.field(validator=_check_count)

    def required(self, nodes: int) -> int:
        """How many replicas, this one included, make the level: ``n``, or all of
        ``nodes`` when there are fewer."""
        return min(self.n, nodes)


@attrs.frozen
class _Majority:
    min_cap: int = attrs.field(default=0, validator=_check_cap)

    def required(self, nodes: int) -> int:
        """How many replicas, this one included, make the level: ``nodes // 2 + 1``,
        at least ``min_cap``, at most ``nodes``."""
        return min(nodes, max(nodes // 2 + 1, self.min_cap))


@attrs.frozen
class _All:
    def required(self, nodes: int) -> int:
        """How many replicas, this one included, make the level: all ``nodes``."""
        return nodes


@attrs.frozen
class WriteLocal(_Local):
    """The write is done once applied on this node; gossip spreads it."""


@attrs.frozen
class WriteTo(_Count):
    """The write is done once ``n`` replicas (this one included) hold it; with fewer
    nodes in the cluster, once all of them do."""


@attrs.frozen
class WriteMajority(_Majority):
    """The write is done once a majority of the nodes (``N // 2 + 1``, this one
    included, at least ``min_cap``) hold it."""


@attrs.frozen
class WriteAll(_All):
    """The write is done once every node of the cluster holds it."""


@attrs.frozen
class ReadLocal(_Local):
    """Read this node's copy."""


@attrs.frozen
class ReadFrom(_Count):
    """Merge the copies of ``n`` replicas (this one included; all, with fewer nodes)."""


@attrs.frozen
class ReadMajority(_Majority):
    """Merge the copies of a majority of the nodes (this one included, at least
    ``min_cap``). After a ``WriteMajority``, a ``ReadMajority`` sees the write."""


@attrs.frozen
class ReadAll(_All):
    """Merge the copies of every node of the cluster."""


WriteConsistency = WriteLocal | WriteTo | WriteMajority | WriteAll
ReadConsistency = ReadLocal | ReadFrom | ReadMajority | ReadAll


# -- configuration and counters --------------------------------------------------------


def _positive_seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_seconds(value, attribute.name, zero=False, inf=False)


def _message_size(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(value, attribute.name, minimum=1024)


def _rounds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(value, attribute.name, minimum=1)


def _unreachable_timeout(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_seconds(value, attribute.name)


@attrs.frozen
class ReplicatorConfig:
    """A replicator's timings and limits.

    * ``gossip_interval`` — seconds between two rounds: each round sends the deltas of
      the round to every other node (Akka's default, 2 s).
    * ``anti_entropy_every`` — every this many rounds (default 5), a round also sends
      one chunk of this node's digests to one random node, which answers with the full
      states that differ. Deltas do the replicating; anti-entropy repairs what they
      missed (a partition, a restart), so it runs less often: while a key keeps
      changing its digests differ anyway, and each exchange costs two full states.
    * ``max_message_bytes`` — the bound on one replication message's encoded data: more
      is split into several messages (a single value larger than this goes alone, and
      must fit the transport's frame limit).
    * ``timeout`` — the default timeout of reads and writes that wait for other nodes.
    * ``unreachable_timeout`` — how long a node that failed without leaving still counts
      among the N nodes of the consistency levels (default 24 h, Serf's reconnect
      timeout; ``math.inf``: until it joins again or leaves). As in Akka, N is the
      nodes of the cluster, not only those reachable now: so that the two sides of a
      partition cannot both hold a majority, and a ``ReadMajority`` always overlaps the
      last ``WriteMajority``. A node that leaves gracefully stops counting at once.
    """

    gossip_interval: float = attrs.field(default=2.0, validator=_positive_seconds)
    max_message_bytes: int = attrs.field(default=256 * 1024, validator=_message_size)
    timeout: float = attrs.field(default=5.0, validator=_positive_seconds)
    anti_entropy_every: int = attrs.field(default=5, validator=_rounds)
    unreachable_timeout: float = attrs.field(default=24 * 3600.0, validator=_unreachable_timeout)


@attrs.define
class ReplicatorStats:
    """A replicator's counters (bytes are those of the encoded values)."""

    delta_messages_sent: int = 0
    delta_bytes_sent: int = 0
    status_messages_sent: int = 0
    full_states_sent: int = 0
    full_state_bytes_sent: int = 0
    messages_received: int = 0
    values_merged: int = 0
    changes: int = 0
    undecodable: int = 0
    type_conflicts: int = 0
    oversized: int = 0
    send_failures: int = 0
    writes_incomplete: int = 0
    reads_incomplete: int = 0


# -- the messages between replicators --------------------------------------------------


@attrs.frozen
class _Entry:
    key: str
    type_id: str
    payload: bytes


@attrs.frozen
class _Deltas:
    node: str
    entries: list[_Entry]
    deleted: list[str]


@attrs.frozen
class _Status:
    node: str
    chunk: int
    chunks: int
    digests: dict[str, bytes]


@attrs.frozen
class _Gossip:
    node: str
    entries: list[_Entry]
    deleted: list[str]
    wanted: list[str]


@attrs.frozen
class _Write:
    node: str
    entries: list[_Entry]
    deleted: list[str]


@attrs.frozen
class _Read:
    node: str
    key: str


@attrs.frozen
class _ReadReply:
    entry: _Entry | None
    deleted: bool


_MESSAGES: tuple[type[Any], ...] = (_Deltas, _Status, _Gossip, _Write, _Read, _ReadReply)


# -- digests ---------------------------------------------------------------------------


def _pack(value: object) -> bytes:
    return cast(bytes, msgpack.packb(value))


def _canonical(value: object) -> object:
    """``value`` as plain data in one order whatever its history: sets and mappings
    sorted, so that equal states give equal digests in every process."""
    if attrs.has(type(value)):
        fields = attrs.fields(cast(Any, type(value)))
        return [type(value).__qualname__, [_canonical(getattr(value, f.name)) for f in fields]]
    if isinstance(value, ActorRef):
        return ["ref", value.uri, value.uid]
    if isinstance(value, Mapping):
        items = [[_canonical(k), _canonical(v)] for k, v in value.items()]
        return sorted(items, key=_pack)
    if isinstance(value, frozenset | set):
        return sorted((_canonical(item) for item in value), key=_pack)
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def digest(state: object) -> bytes:
    """A 16-byte digest of a replicated value, equal for equal values on every node."""
    return hashlib.blake2b(_pack(_canonical(state)), digest_size=16).digest()


def _bucket(key: str, chunks: int) -> int:
    return zlib.crc32(key.encode()) % chunks


# -- encoded sizes (msgpack, as the codec writes the messages: attrs classes as maps) -----


def _header(n: int, small: int) -> int:
    """The bytes of a msgpack str/bin/array header for ``n`` (``small``: the largest
    length that fits in the type byte itself)."""
    return 1 if n <= small else 2 if n < 256 else 3 if n < 65536 else 5


def _str_size(text: str) -> int:
    n = len(text.encode())
    return _header(n, 31) + n


def _bin_size(n: int) -> int:
    return max(2, _header(n, -1)) + n


def _entry_size(entry: _Entry) -> int:
    # a map of three fields, and its place in the list
    fields = _str_size("key") + _str_size("type_id") + _str_size("payload")
    return (
        1 + fields + _str_size(entry.key) + _str_size(entry.type_id) + _bin_size(len(entry.payload))
    )


_MESSAGE_OVERHEAD = 96
"""More than a message's fields other than its lists cost (names, the node id aside)."""
_DIGEST_SIZE = 18  # a 16-byte digest as msgpack bin


# -- subscriptions ---------------------------------------------------------------------


class Subscription(Generic[D]):
    """The changes of one key, as an async iterator of its states (see
    :meth:`Replicator.subscribe`).

    Changes are coalesced: a subscriber that is slower than the changes sees the
    latest state, never a backlog, and never slows the replicator. Iteration ends
    when the key is deleted or the replicator stops.
    """

    def __init__(self, replicator: Replicator, key: Key[D]) -> None:
        self.key = key
        self._replicator = replicator
        self._changed = key.id in replicator._data
        self._ended = False
        self._wakeup: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<Subscription to {self.key.id!r}>"

    def _notify(self, *, end: bool = False) -> None:
        self._changed = True
        self._ended = self._ended or end
        if self._wakeup is not None:
            self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> D:
        """The key's state after one or more changes; blocks until there is one."""
        while not self._changed:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        self._wakeup = None
        self._changed = False
        state = self._replicator._data.get(self.key.id)
        if state is None:  # deleted, or the replicator stopped
            self._ended = True
            raise StopAsyncIteration
        return cast(D, state)


# -- the replicator --------------------------------------------------------------------


class _Hooks:
    """The codec's hooks for replicated values: refs go through the transport; a
    channel cannot be in a replicated value."""

    def __init__(self, replicator: Replicator, peer: str) -> None:
        self._replicator = replicator
        self.peer = peer

    def ref_to_wire(self, ref: ActorRef) -> list[object]:
        transport = self._replicator._system._transport
        if transport is None:
            raise NotSerializable("a replicated value holds a ref, and this node has no transport")
        return cast(list[object], transport.ref_to_wire(ref))

    def ref_from_wire(self, data: list[object]) -> ActorRef:
        transport = self._replicator._system._transport
        if transport is None:
            raise TransportError("a replicated value holds a ref, and this node has no transport")
        return cast(ActorRef, transport.ref_from_wire(data))

    def channel_to_wire(self, channel: trio.abc.SendChannel[Any]) -> int:
        raise NotSerializable("a replicated value cannot hold a channel")

    def channel_from_wire(self, stream_id: int) -> trio.abc.SendChannel[Any]:
        raise NotSerializable("a replicated value cannot hold a channel")


class _ReplicatorActor(Actor):
    """Receives the other nodes' replication messages for its :class:`Replicator`."""

    def __init__(self, replicator: Replicator) -> None:
        self._replicator = replicator

    async def receive(self, ctx: Context, message: Any) -> Any:
        return self._replicator._receive(message)


class Replicator:
    """Replicated data on every node of a cluster, as a service of an actor system::

        VISITS = Key("visits", PNCounter)

        async with (
            ActorSystem("a") as system,
            Transport(system) as transport,
            GossipCluster(system) as cluster,
            Replicator(system, cluster) as replicator,
        ):
            await cluster.join("127.0.0.1:7946")
            await replicator.update(VISITS, lambda c: c.increment(replicator.replica_id))
            counter = await replicator.get(VISITS, read=ReadMajority())

    Each node holds a copy of every key. An update applies at once to this node's copy
    and its delta goes to every other node at the next gossip round (every
    ``config.gossip_interval``); every ``config.anti_entropy_every`` rounds, a round also
    sends a digest of this node's keys to one other node, which answers with the full
    state of every key that differs, so restarted nodes and the two sides of a healed
    partition converge (a node that joins gets every digest at once). Values are
    CRDTs (:mod:`tinyagents.crdt`), so no consensus is needed: every node that has seen
    the same updates holds the same value, whatever the order.

    The other nodes are the cluster's members (alive or suspect) that advertise a
    transport; their replicators are reached at ``/user/<name>`` through the system's
    :class:`~tinyagents.transport.Transport` (needed as soon as there is another
    member). On this node the replicator runs an actor of that name.

    Mutators need the id of the replica making the change: use :attr:`replica_id`,
    which is the node id and a per-incarnation suffix, so a restarted node never reuses
    the counters of its previous life.

    Leaving the block stops the replicator (its subscriptions end); the data is not
    kept.
    """

    def __init__(
        self,
        system: ActorSystem,
        cluster: Cluster,
        *,
        name: str = "replicator",
        config: ReplicatorConfig | None = None,
    ) -> None:
        from ..actor import ActorSystem
        from ..cluster import Cluster

        if not isinstance(system, ActorSystem):
            raise TypeError(f"Replicator needs an ActorSystem, not {system!r:.80}")
        if not isinstance(cluster, Cluster):
            raise TypeError(f"Replicator needs a cluster (GossipCluster...), not {cluster!r:.80}")
        if not isinstance(name, str) or not name or "/" in name or name.startswith("$"):
            raise ValueError(f"name must be an actor name such as 'replicator', not {name!r}")
        self._system = system
        self._cluster = cluster
        self.name = name
        self.config = check_optional(config, ReplicatorConfig, "config") or ReplicatorConfig()
        self.stats = ReplicatorStats()
        self.replica_id = ""
        self._node = ""
        self._codec: Codec | None = None
        self._hooks: _Hooks | None = None
        self._data: dict[str, Any] = {}
        self._digests: dict[str, bytes] = {}
        self._deleted: set[str] = set()
        self._pending: dict[str, Any] = {}
        self._pending_deleted: set[str] = set()
        # nodes that failed without leaving (trio time of the failure): they still count
        self._unreachable: dict[str, float] = {}
        self._subscriptions: dict[str, list[Subscription[Any]]] = {}
        self._status_chunk = 0
        self._rounds = 0
        self._actor: ActorRef | None = None
        self._running: AbstractAsyncContextManager[None] | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"<Replicator {self._node or self._system.name!r} of {len(self._data)} keys>"

    # -- reading and writing -----------------------------------------------------------

    @property
    def node(self) -> str:
        """This node's id (the system's :attr:`~tinyagents.ActorSystem.node_id`)."""
        return self._node or self._system.node_id

    def keys(self) -> list[str]:
        """The ids of the keys this node holds, sorted (deleted keys are not in it)."""
        return sorted(self._data)

    def peek(self, key: Key[D]) -> D | None:
        """This node's copy of ``key`` now, without waiting (``None`` if it has none).

        Raises:
            KeyDeleted: the key was deleted.
            KeyTypeMismatch: the key holds another data type.
        """
        return self._local(key)

    async def update(
        self,
        key: Key[D],
        fn: Callable[[D], tuple[D, D] | D],
        *,
        write: WriteConsistency | None = None,
        timeout: float | None = None,
    ) -> D:
        """Change ``key`` by ``fn`` and return its new state on this node.

        ``fn`` is called at once with this node's copy (the empty state ``key.type()``
        when there is none) and returns ``(new state, delta)``, as the mutators do
        (``lambda c: c.increment(replicator.replica_id)``), or just the new state (then
        the whole state travels as the delta). The new state replaces this node's copy
        at once, subscribers see it, and the delta goes to the other nodes at the next
        gossip round.

        With ``write`` (default :class:`WriteLocal`) above one replica, the delta is
        also sent to the other nodes now, and the call blocks until enough of them
        confirmed it, for at most ``timeout`` seconds (default ``config.timeout``).

        Raises:
            UpdateIncomplete: the level was not reached by the timeout, or too few
                nodes were left to reach it. The update is not rolled back: it stands
                here and spreads by gossip (Akka's ``UpdateFailure`` semantics).
            KeyDeleted: the key was deleted.
            KeyTypeMismatch: the key holds another data type.
            TypeError: ``fn`` returned something that is not of the key's type.
            SystemNotRunning: the replicator is not running.
            Whatever ``fn`` raises, with nothing changed.
        """
        level = _check_level(write, _WRITE_LEVELS, WriteLocal(), "write")
        wait = self._timeout(timeout)
        self._check_running()
        current = self._local(key)
        result = fn(key.type() if current is None else current)
        if isinstance(result, tuple) and len(result) == 2:
            new, delta = result
        else:
            new = delta = result
        for what, value in (("new state", new), ("delta", delta)):
            if type(value) is not key.type:
                raise TypeError(
                    f"the update of {key.id!r} returned a {type(value).__qualname__} as its "
                    f"{what}, not a {key.type.__qualname__}"
                )
        self._replace(key.id, new)
        pending = self._pending.get(key.id)
        self._pending[key.id] = delta if pending is None else pending.merge(delta)
        peers = self._peers()
        if level.required(self._nodes(peers)) > 1:
            entry = self._encode(key.id, delta)
            message = _Write(self.node, [] if entry is None else [entry], [])
            await self._write(key.id, level, peers, message, wait)
        return new

    async def get(
        self,
        key: Key[D],
        *,
        read: ReadConsistency | None = None,
        timeout: float | None = None,
    ) -> D | None:
        """The state of ``key``: this node's copy (``None`` if it has none) with
        ``read`` :class:`ReadLocal` (the default); with a level above one replica,
        this node's copy merged with those of enough other nodes, which blocks for at
        most ``timeout`` seconds (default ``config.timeout``). What the other nodes
        sent is merged into this node's copy.

        Raises:
            ReadIncomplete: the level was not reached by the timeout, or too few nodes
                were left to reach it.
            KeyDeleted: the key was deleted.
            KeyTypeMismatch: the key holds another data type.
            SystemNotRunning: the replicator is not running.
        """
        level = _check_level(read, _READ_LEVELS, ReadLocal(), "read")
        wait = self._timeout(timeout)
        self._check_running()
        self._local(key)
        peers = self._peers()
        required = level.required(self._nodes(peers))
        if required > 1:
            replies = await self._gather(peers, _Read(self.node, key.id), required, wait)
            if replies[0] < required:
                self.stats.reads_incomplete += 1
                raise ReadIncomplete(
                    key=key.id, level=level, replies=replies[0], required=required,
                    reason=replies[1],
                )  # fmt: skip
        return self._local(key)

    async def delete(
        self,
        key: Key[Any],
        *,
        write: WriteConsistency | None = None,
        timeout: float | None = None,
    ) -> None:
        """Delete ``key`` on every node: at once here, on the others by gossip (or now,
        for the level ``write``, as :meth:`update`). A deleted key stays deleted (its
        id is remembered, so that no node's old copy brings it back): it cannot be
        used again. Subscriptions to it end.

        Raises:
            UpdateIncomplete: as for :meth:`update`; the deletion stands.
            KeyDeleted: the key was already deleted.
            KeyTypeMismatch: the key holds another data type.
        """
        level = _check_level(write, _WRITE_LEVELS, WriteLocal(), "write")
        wait = self._timeout(timeout)
        self._check_running()
        self._local(key)
        self._delete(key.id)
        self._pending_deleted.add(key.id)
        peers = self._peers()
        if level.required(self._nodes(peers)) > 1:
            await self._write(key.id, level, peers, _Write(self.node, [], [key.id]), wait)

    @asynccontextmanager
    async def subscribe(self, key: Key[D]) -> AsyncIterator[Subscription[D]]:
        """The changes of ``key`` while the block runs::

            async with replicator.subscribe(VISITS) as changes:
                async for counter in changes:
                    print(counter.value)

        The first state comes at once if this node holds the key; then one after each
        change (coalesced for a slow subscriber). Iteration ends when the key is
        deleted or the replicator stops.

        Raises:
            KeyDeleted: the key was deleted.
            KeyTypeMismatch: the key holds another data type.
        """
        self._check_running()
        self._local(key)
        subscription = Subscription(self, key)
        subscribers = self._subscriptions.setdefault(key.id, [])
        subscribers.append(subscription)
        try:
            yield subscription
        finally:
            subscribers.remove(subscription)
            if not subscribers:
                self._subscriptions.pop(key.id, None)

    # -- local state -------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._started:
            raise SystemNotRunning(f"{self!r} is not running (use async with)")

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.config.timeout
        return check_seconds(timeout, "timeout")

    def _local(self, key: Key[D]) -> D | None:
        if not isinstance(key, Key):
            raise TypeError(f"expected a Key (such as Key('visits', GCounter)), not {key!r:.80}")
        if key.id in self._deleted:
            raise KeyDeleted(key.id)
        state = self._data.get(key.id)
        if state is not None and type(state) is not key.type:
            raise KeyTypeMismatch(key.id, type(state).__qualname__, key.type.__qualname__)
        return state

    def _replace(self, key: str, state: Any) -> None:
        self._data[key] = state
        self._digests.pop(key, None)
        self.stats.changes += 1
        for subscription in self._subscriptions.get(key, ()):
            subscription._notify()

    def _delete(self, key: str) -> None:
        self._deleted.add(key)
        self._data.pop(key, None)
        self._digests.pop(key, None)
        self._pending.pop(key, None)
        for subscription in self._subscriptions.get(key, ()):
            subscription._notify(end=True)

    def _digest(self, key: str) -> bytes:
        found = self._digests.get(key)
        if found is None:
            found = self._digests[key] = digest(self._data[key])
        return found

    def _merge(self, entries: Iterable[_Entry], deleted: Iterable[str], peer: str) -> None:
        """Merge what a peer sent; bad entries are logged and counted, never raised."""
        for key in deleted:
            if isinstance(key, str) and key not in self._deleted:
                self._delete(key)
        assert self._codec is not None
        hooks = _Hooks(self, peer)
        for entry in entries:
            if entry.key in self._deleted:
                continue
            try:
                state = self._codec.from_wire(entry.type_id, entry.payload, hooks)
            except TinyAgentsError as error:
                self.stats.undecodable += 1
                logger.warning(
                    "replicator: undecodable value of %r from %s: %s", entry.key, peer, error
                )
                continue
            if not (attrs.has(type(state)) and callable(getattr(state, "merge", None))):
                self.stats.undecodable += 1
                logger.warning(
                    "replicator: %s sent a %s for %r, not a replicated data type",
                    peer, type(state).__qualname__, entry.key,
                )  # fmt: skip
                continue
            current = self._data.get(entry.key)
            if current is not None and type(current) is not type(state):
                self.stats.type_conflicts += 1
                logger.warning(
                    "replicator: %s holds %r as a %s, this node as a %s: not merged",
                    peer, entry.key, type(state).__qualname__, type(current).__qualname__,
                )  # fmt: skip
                continue
            merged = state if current is None else current.merge(state)
            self.stats.values_merged += 1
            if merged != current:
                self._replace(entry.key, merged)

    def _encode(self, key: str, state: Any) -> _Entry | None:
        assert self._codec is not None
        assert self._hooks is not None
        try:
            type_id, payload = self._codec.to_wire(state, self._hooks)
        except NotSerializable as error:
            self.stats.undecodable += 1
            logger.error("replicator: the value of %r cannot be sent: %s", key, error)
            return None
        return _Entry(key, type_id, payload)

    # -- talking to the other nodes ----------------------------------------------------

    def _peers(self) -> list[str]:
        from ..transport import TRANSPORT_TAG

        node = self.node
        return [
            member.id
            for member in self._cluster.members()
            if member.id != node and TRANSPORT_TAG in member.tags
        ]

    def _unreachable_nodes(self, peers: list[str]) -> list[str]:
        """The nodes that failed without leaving, less than ``unreachable_timeout`` ago,
        and are not back among ``peers``: sorted."""
        now = trio.current_time()
        timeout = self.config.unreachable_timeout
        back = set(peers)
        for node, since in list(self._unreachable.items()):
            if node in back or now - since > timeout:
                del self._unreachable[node]
        return sorted(self._unreachable)

    def _nodes(self, peers: list[str]) -> int:
        """N of the consistency levels: this node, ``peers`` and the unreachable nodes."""
        if not self._unreachable:
            return len(peers) + 1
        return len(peers) + 1 + len(self._unreachable_nodes(peers))

    def _ref(self, node: str) -> ActorRef:
        return self._system.ref_for(f"tinyagents://{node}/user/{self.name}")

    def _send(self, node: str, message: object) -> None:
        assert self._actor is not None
        try:
            self._ref(node).tell_nowait(message, sender=self._actor)
        except TinyAgentsError as error:
            self.stats.send_failures += 1
            logger.debug("replicator: cannot send to %s: %s", node, error)

    def _budget(self) -> int:
        """What the lists of one message may take, encoded."""
        return self.config.max_message_bytes - _MESSAGE_OVERHEAD - _str_size(self.node)

    def _chunks(
        self, entries: list[_Entry], *keys: list[str]
    ) -> list[tuple[list[_Entry], list[list[str]]]]:
        """``entries`` and the lists of ``keys`` split into messages whose encoded
        size stays within ``max_message_bytes`` (a single bigger entry goes alone): for
        each message, its entries and its part of every key list. At least one
        message, maybe empty."""
        budget = self._budget()
        groups: list[tuple[list[_Entry], list[list[str]]]] = []
        group: tuple[list[_Entry], list[list[str]]] = ([], [[] for _ in keys])
        size = 0

        def room(cost: int) -> None:
            nonlocal group, size
            if size + cost > budget and (group[0] or any(group[1])):
                groups.append(group)
                group, size = ([], [[] for _ in keys]), 0
            size += cost

        for entry in entries:
            room(_entry_size(entry))
            group[0].append(entry)
        for i, names in enumerate(keys):
            for key in names:
                room(_str_size(key))
                group[1][i].append(key)
        groups.append(group)
        return groups

    async def _gather(
        self, peers: list[str], message: object, required: int, wait: float
    ) -> tuple[int, str]:
        """Ask ``peers`` ``message`` until ``required`` replicas (this one counted)
        answered; (how many did, why not more)."""
        if required > len(peers) + 1:
            unreachable = ", ".join(self._unreachable_nodes(peers))
            return 1, (
                f"only {len(peers) + 1} of the nodes are reachable; unreachable (failed, "
                f"not left): {unreachable}"
            )
        done = trio.Event()
        answered = 1
        failed: list[str] = []

        async def ask(node: str) -> None:
            nonlocal answered
            try:
                reply = await self._ref(node).ask(message, timeout=math.inf)
            except TinyAgentsError as error:
                failed.append(f"{node}: {error}")
                if len(peers) - len(failed) + 1 < required:
                    done.set()
                return
            if isinstance(reply, _ReadReply):
                self._merge([] if reply.entry is None else [reply.entry], (), node)
                if reply.deleted:
                    self._merge((), [_key_of(message)], node)
            answered += 1
            if answered >= required:
                done.set()

        with trio.move_on_after(wait):
            async with trio.open_nursery() as nursery:
                for node in peers:
                    nursery.start_soon(ask, node)
                await done.wait()
                nursery.cancel_scope.cancel()
        if answered >= required:
            return answered, ""
        if failed:
            return answered, "; ".join(failed)
        return answered, f"no more answers within {wait:g} s"

    async def _write(
        self, key: str, level: Any, peers: list[str], message: _Write, wait: float
    ) -> None:
        required = level.required(self._nodes(peers))
        acks, reason = await self._gather(peers, message, required, wait)
        if acks < required:
            self.stats.writes_incomplete += 1
            raise UpdateIncomplete(
                key=key, level=level, acks=acks, required=required, reason=reason
            )

    def _receive(self, message: object) -> object:
        """One message from another node's replicator (in this node's actor)."""
        self.stats.messages_received += 1
        if isinstance(message, _Deltas):
            self._merge(message.entries, message.deleted, message.node)
        elif isinstance(message, _Write):
            self._merge(message.entries, message.deleted, message.node)
            return True
        elif isinstance(message, _Read):
            if message.key in self._deleted:
                return _ReadReply(None, True)
            state = self._data.get(message.key)
            return _ReadReply(None if state is None else self._encode(message.key, state), False)
        elif isinstance(message, _Status):
            self._on_status(message)
        elif isinstance(message, _Gossip):
            self._merge(message.entries, message.deleted, message.node)
            if message.wanted:
                self._send_full(message.node, message.wanted, ())
        else:
            self.stats.undecodable += 1
            logger.warning("replicator: an unexpected message %r", type(message).__qualname__)
        return None

    def _on_status(self, status: _Status) -> None:
        chunks = max(1, status.chunks)
        theirs = status.digests
        send: list[str] = []
        wanted: list[str] = []
        deleted: list[str] = []
        for key, their_digest in theirs.items():
            if their_digest == _DELETED:
                if key not in self._deleted:
                    self._delete(key)
            elif key in self._deleted:
                deleted.append(key)
            elif key not in self._data:
                wanted.append(key)
            elif self._digest(key) != their_digest:
                send.append(key)
                wanted.append(key)
        for key in (*self._data, *self._deleted):
            if key not in theirs and _bucket(key, chunks) == status.chunk % chunks:
                (deleted if key in self._deleted else send).append(key)
        if send or wanted or deleted:
            self._send_full(status.node, send, deleted, wanted=wanted)

    def _send_full(
        self,
        node: str,
        keys: Iterable[str],
        deleted: Iterable[str],
        *,
        wanted: Iterable[str] = (),
    ) -> None:
        """Send ``node`` the full states of ``keys`` (those this node holds), the
        deletions among them and ``deleted``, and ask for those ``wanted``."""
        entries: list[_Entry] = []
        gone = list(deleted)
        for key in keys:
            if key in self._deleted:
                gone.append(key)
            elif key in self._data:
                entry = self._encode(key, self._data[key])
                if entry is not None:
                    entries.append(entry)
        for group, (gone_part, wanted_part) in self._chunks(entries, gone, list(wanted)):
            self.stats.full_states_sent += len(group)
            self.stats.full_state_bytes_sent += sum(len(entry.payload) for entry in group)
            self._send(node, _Gossip(self.node, group, gone_part, wanted_part))

    def _status_messages(self, every_chunk: bool) -> list[_Status]:
        keys = [*self._data, *self._deleted]
        costs = [_str_size(key) + _DIGEST_SIZE for key in keys]
        budget = self._budget()
        chunks = max(1, -(-sum(costs) // budget))
        while chunks < len(keys):  # the keys fall in chunks by hash: none may overflow
            sizes = [0] * chunks
            for key, cost in zip(keys, costs, strict=True):
                sizes[_bucket(key, chunks)] += cost
            if max(sizes) <= budget:
                break
            chunks += 1
        if every_chunk:
            wanted = range(chunks)
        else:
            self._status_chunk = (self._status_chunk + 1) % chunks
            wanted = range(self._status_chunk, self._status_chunk + 1)
        messages = []
        for chunk in wanted:
            digests = {
                key: _DELETED if key in self._deleted else self._digest(key)
                for key in keys
                if _bucket(key, chunks) == chunk
            }
            messages.append(_Status(self.node, chunk, chunks, digests))
        return messages

    def _send_status(self, node: str, *, every_chunk: bool = False) -> None:
        for status in self._status_messages(every_chunk):
            self.stats.status_messages_sent += 1
            self._send(node, status)

    def _gossip_round(self) -> None:
        """Send this round's deltas to every other node, and (every
        ``anti_entropy_every`` rounds) a status chunk to one."""
        peers = self._peers()
        pending, self._pending = self._pending, {}
        deleted, self._pending_deleted = sorted(self._pending_deleted), set()
        if peers and (pending or deleted):
            entries = [
                entry
                for key, delta in pending.items()
                if (entry := self._encode(key, delta)) is not None
            ]
            for group, (deleted_part,) in self._chunks(entries, deleted):
                message = _Deltas(self.node, group, deleted_part)
                size = sum(len(entry.payload) for entry in group)
                for node in peers:
                    self.stats.delta_messages_sent += 1
                    self.stats.delta_bytes_sent += size
                    self._send(node, message)
        self._rounds += 1
        if peers and self._rounds % self.config.anti_entropy_every == 0:
            self._send_status(random.choice(peers))

    # -- lifecycle ---------------------------------------------------------------------

    async def _gossip_loop(self) -> None:
        while True:
            await trio.sleep(self.config.gossip_interval)
            self._gossip_round()

    async def _follow_members(self, task_status: trio.TaskStatus[None]) -> None:
        from ..cluster import MemberFailed, MemberJoined, MemberLeft
        from ..transport import TRANSPORT_TAG

        async with self._system.events.subscribe(MemberJoined, MemberFailed, MemberLeft) as events:
            task_status.started()
            async for event in events:
                member = event.member
                if member.id == self.node:
                    continue
                if isinstance(event, MemberFailed):
                    if TRANSPORT_TAG in member.tags:
                        self._unreachable[member.id] = trio.current_time()
                    continue
                self._unreachable.pop(member.id, None)
                if isinstance(event, MemberJoined):
                    # a new node (or this one's first peers): exchange digests at once
                    self._send_status(member.id, every_chunk=True)

    async def __aenter__(self) -> Self:
        if self._started or self._running is not None:
            raise RuntimeError(f"{self!r} was already started: a replicator starts once")
        system = self._system
        if not system.running:
            raise SystemNotRunning(
                f"cannot start a replicator on actor system {system.name!r}: it is not running"
            )
        transport = system._transport
        if transport is None:
            if self._peers_without_transport():
                raise TransportError(
                    "the cluster has other members, and actor system "
                    f"{system.name!r} has no transport for the replicator "
                    "(open one with `async with Transport(system, ...)` first)"
                )
            from ..transport import Codec

            self._codec = Codec()
        else:
            self._codec = transport.codec
            frame_limit = transport.config.frame_limit
            if self.config.max_message_bytes >= frame_limit:
                raise ValueError(
                    f"config.max_message_bytes ({self.config.max_message_bytes:,}) must be "
                    f"below the transport's frame limit ({frame_limit:,})"
                )
        for cls in _MESSAGES:
            self._codec.registry.register(cls, f"tinyagents.replicator.{cls.__name__[1:]}")
        self._node = system.node_id
        self.replica_id = f"{self._node}:{secrets.token_hex(4)}"
        self._hooks = _Hooks(self, self._node)
        self._actor = await system.spawn(lambda: _ReplicatorActor(self), name=self.name)
        self._running = self._run()
        try:
            await self._running.__aenter__()
        except BaseException:
            await self._actor.stop()
            raise
        return self

    def _peers_without_transport(self) -> bool:
        node = self.node
        return any(member.id != node for member in self._cluster.members())

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        async with open_service_nursery() as nursery:
            await nursery.start(self._follow_members)
            nursery.start_soon(self._gossip_loop)
            self._started = True
            for node in self._peers():
                self._send_status(node, every_chunk=True)
            metrics = self._system._metrics
            metrics.add_collector(self._collect_metrics)
            try:
                yield
            finally:
                metrics.remove_collector(self._collect_metrics)
                self._started = False
                nursery.cancel_scope.cancel()
                for subscribers in self._subscriptions.values():
                    for subscription in subscribers:
                        subscription._notify(end=True)
                self._data.clear()

    def _collect_metrics(self) -> list[Sample]:
        stats = self.stats
        name = self.name
        messages = "tinyagents_replicator_messages_total"
        sent = "tinyagents_replicator_bytes_total"
        return [
            Sample(messages, "counter", {"replicator": name, "kind": "delta"},
                   stats.delta_messages_sent),
            Sample(messages, "counter", {"replicator": name, "kind": "status"},
                   stats.status_messages_sent),
            Sample(messages, "counter", {"replicator": name, "kind": "received"},
                   stats.messages_received),
            Sample(sent, "counter", {"replicator": name, "kind": "delta"},
                   stats.delta_bytes_sent),
            Sample(sent, "counter", {"replicator": name, "kind": "full_state"},
                   stats.full_state_bytes_sent),
        ]  # fmt: skip

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._running is not None
        assert self._actor is not None
        try:
            return await self._running.__aexit__(exc_type, exc, tb)
        finally:
            with trio.CancelScope(shield=True):
                await self._actor.stop()


_WRITE_LEVELS = (WriteLocal, WriteTo, WriteMajority, WriteAll)
_READ_LEVELS = (ReadLocal, ReadFrom, ReadMajority, ReadAll)


def _check_level(level: object, kinds: tuple[type[Any], ...], default: Any, name: str) -> Any:
    if level is None:
        return default
    if not isinstance(level, kinds):
        names = ", ".join(f"{kind.__name__}()" for kind in kinds)
        raise TypeError(f"{name} must be one of {names}, not {level!r:.80}")
    return level


def _key_of(message: object) -> str:
    return cast(_Read, message).key
