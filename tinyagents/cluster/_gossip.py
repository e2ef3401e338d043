"""A gossip cluster speaking HashiCorp memberlist's protocol: SWIM with Lifeguard.

* :class:`GossipConfig` — timings, memberlist's LAN defaults.
* :class:`MemberTable` — the member table and memberlist's state rules (alive, suspect,
  dead, left, incarnations, refutation, Lifeguard suspicion and awareness), without I/O.
* :class:`BroadcastQueue` — piggybacked dissemination with a retransmit limit.
* :class:`GossipCluster` — the service: UDP packets and TCP streams on one port, the
  probe, gossip, push-pull and suspicion-timer loops in its own nursery.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Self

import attrs
import trio

from .._address import Address, format_address, parse_address
from .._metrics import Sample
from .._nursery import open_service_nursery
from .._validate import check_optional
from ..actor import ActorSystem
from ..errors import SystemNotRunning
from ._arguments import check_system, member_id, member_meta
from ._errors import ClusterError, JoinFailed, MalformedMessage
from ._member import (
    Member,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspect,
    MemberUpdated,
    ProtocolVersions,
)
from ._wire import (
    Ack,
    Alive,
    Dead,
    ErrorResponse,
    IndirectPing,
    Keyring,
    Message,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    StreamDecoder,
    Suspect,
    User,
    _pack_bool,
    _pack_map_header,
    _pack_str,
    _pack_uint,
    decode_packet,
    encode_message,
    encode_packet,
    encode_stream,
    ip_from_bytes,
    ip_to_bytes,
)

__all__ = ["BroadcastQueue", "GossipCluster", "GossipConfig", "GossipStats", "MemberTable"]

log = logging.getLogger(__name__)

UDP_BUFFER_SIZE = 1400
"""memberlist's ``UDPBufferSize``: the most bytes a packet we send carries."""

_U32 = 1 << 32

_SERF_LEAVE_TYPE = 0
"""Serf's ``messageLeaveType``: the first byte of its leave-intent user message."""


_LEAVE_INTENT = "\x00serf-leave-intent:"
"""The broadcast name of our leave intent: no node's name, so nothing replaces it."""


def serf_leave_intent(node: str, ltime: int = 1) -> User:
    """Serf's leave intent for ``node``: a user message ``[0]`` then the msgpack map
    ``{LTime, Node, Prune}`` (Serf's ``messageLeave``).

    A Serf agent lists a member ``left`` (not ``failed``) only if this reaches it before
    memberlist's dead-from-itself, as Serf's own ``Leave`` sends it. Serf honours it when
    ``LTime`` is above the member's status time, which is 0 for a node that never sent
    Serf's join intent (we never do): 1 is enough."""
    body = (
        _pack_map_header(3)
        + _pack_str("LTime")
        + _pack_uint(ltime)
        + _pack_str("Node")
        + _pack_str(node)
        + _pack_str("Prune")
        + _pack_bool(False)
    )
    return User(bytes((_SERF_LEAVE_TYPE,)) + body)


@attrs.frozen
class GossipConfig:
    """Timings of the gossip protocol; the defaults are memberlist's ``DefaultLANConfig``
    (seconds)."""

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    retransmit_mult: int = 4
    push_pull_interval: float = 30.0
    tcp_timeout: float = 10.0
    awareness_max_multiplier: int = 8
    gossip_to_the_dead_time: float = 30.0
    tcp_pings: bool = True
    """Fall back to a ping over TCP when a probe fails (memberlist's ``!DisableTcpPings``)."""
    dead_node_reclaim_time: float = 0.0
    """After how long a dead node's name may come back from another address (0: never;
    a node that left may always)."""
    leave_timeout: float = 5.0
    """How long :meth:`GossipCluster.leave` waits for its leave to be disseminated
    (Serf's ``BroadcastTimeout``)."""
    join_sync_delay: float = 2.0
    """After a join, one more push-pull with the seed that answered, this much later
    (0: none). Nodes that join through one seed at about the same time then learn of
    each other even where gossip, whose broadcasts are sent a bounded number of times,
    missed one of them; memberlist leaves that to the next periodic push-pull, up to
    ``push_pull_interval`` later."""
    reconnect_interval: float = 30.0
    """How often to try joining a failed member again (0: never), as Serf does: once
    the two sides of a partition have declared each other failed, nothing else
    probes across, so without it they stay apart after the network heals. Each
    interval, with a probability of failed members / live members (so that the
    cluster as a whole tries each failed member about once per interval), one failed
    member is picked at random and joined through its last address."""
    reconnect_timeout: float = 24 * 3600.0
    """How long a failed member is tried again before it is given up (Serf's)."""

    @classmethod
    def scaled(cls, factor: float, **overrides: float | int | bool) -> GossipConfig:
        """The LAN defaults with every duration multiplied by ``factor`` (``0.1`` gives a
        probe every 100 ms: for tests on loopback), then ``overrides`` applied. The TCP
        timeout shrinks too: on a loaded machine, give ``tcp_timeout=`` back its seconds.

        A failed node that comes back at a new address is refused (an address conflict)
        until the others forget it, ``gossip_to_the_dead_time`` after its death, unless
        ``dead_node_reclaim_time`` is set: memberlist behaves the same."""
        base = cls()
        config = attrs.evolve(
            base,
            probe_interval=base.probe_interval * factor,
            probe_timeout=base.probe_timeout * factor,
            gossip_interval=base.gossip_interval * factor,
            push_pull_interval=base.push_pull_interval * factor,
            tcp_timeout=base.tcp_timeout * factor,
            gossip_to_the_dead_time=base.gossip_to_the_dead_time * factor,
            dead_node_reclaim_time=base.dead_node_reclaim_time * factor,
            leave_timeout=base.leave_timeout * factor,
            join_sync_delay=base.join_sync_delay * factor,
            reconnect_interval=base.reconnect_interval * factor,
            reconnect_timeout=base.reconnect_timeout * factor,
        )
        return attrs.evolve(config, **overrides)  # type: ignore[arg-type]


@attrs.define
class GossipStats:
    """Counters of what the node sent and received, and what it dropped."""

    packets_received: int = 0
    packets_sent: int = 0
    malformed_packets: int = 0
    """Packets that did not decode at all, or had a wrong label."""
    malformed_parts: int = 0
    """Messages inside otherwise good packets that did not decode."""
    streams_received: int = 0
    malformed_streams: int = 0
    """Streams whose message did not decode, or that timed out."""
    rejected_messages: int = 0
    """Decoded messages whose content was invalid (bad address, meta too large...)."""
    probes: int = 0
    """Members probed (one each probe interval)."""
    probes_failed: int = 0
    """Probes that got no ack, direct, indirect or over TCP: each one a suspicion."""
    probes_refused: int = 0
    """Failed probes cut short because the member's TCP port refused the connection."""
    reconnects: int = 0
    """Attempts to join a failed member again (:attr:`GossipConfig.reconnect_interval`)."""


# -- dissemination ----------------------------------------------------------------------


@attrs.define
class _Broadcast:
    name: str
    data: bytes
    order: int
    transmits: int = 0
    finished: trio.Event | None = None


class BroadcastQueue:
    """memberlist's ``TransmitLimitedQueue``: messages to piggyback on packets, each sent
    at most ``retransmit_mult * ceil(log10(n + 1))`` times, least-sent (then newest)
    first; a new message about a node replaces any queued one about the same node."""

    def __init__(self, retransmit_mult: int) -> None:
        self._retransmit_mult = retransmit_mult
        self._queue: list[_Broadcast] = []
        self._order = 0

    def __len__(self) -> int:
        return len(self._queue)

    def retransmit_limit(self, num_nodes: int) -> int:
        """How many times a message is sent in a cluster of ``num_nodes``."""
        return self._retransmit_mult * math.ceil(math.log10(num_nodes + 1))

    def queue(self, name: str, message: Message, finished: trio.Event | None = None) -> None:
        """Queue ``message`` about node ``name``; ``finished`` is set once it has been
        sent as many times as it will be, or was replaced."""
        for old in self._queue:
            if old.name == name and old.finished is not None:
                old.finished.set()
        self._queue = [b for b in self._queue if b.name != name]
        self._order += 1
        self._queue.append(_Broadcast(name, encode_message(message), self._order, 0, finished))

    def notify_when_finished(self, name: str, finished: trio.Event) -> None:
        """Set ``finished`` when the queued message about ``name`` is finished (now if
        there is none)."""
        for broadcast in self._queue:
            if broadcast.name == name:
                broadcast.finished = finished
                return
        finished.set()

    def take(self, overhead: int, limit: int, num_nodes: int) -> list[bytes]:
        """Messages that fit in ``limit`` bytes with ``overhead`` bytes each, counting a
        transmit for each and dropping those that reached the retransmit limit."""
        taken: list[bytes] = []
        used = 0
        max_transmits = self.retransmit_limit(num_nodes)
        for broadcast in sorted(self._queue, key=lambda b: (b.transmits, -b.order)):
            if used + overhead + len(broadcast.data) > limit:
                continue
            used += overhead + len(broadcast.data)
            taken.append(broadcast.data)
            broadcast.transmits += 1
            if broadcast.transmits >= max_transmits and broadcast.finished is not None:
                broadcast.finished.set()
        self._queue = [b for b in self._queue if b.transmits < max_transmits]
        return taken


# -- Lifeguard --------------------------------------------------------------------------


class Suspicion:
    """memberlist's suspicion timer: a timeout that starts at ``max`` and shrinks towards
    ``min`` as ``k`` independent confirmations arrive (logarithmically, in whole
    milliseconds). The node that raised the suspicion (``from_node``) does not count as
    a confirmation."""

    def __init__(
        self, start: float, k: int, min_timeout: float, max_timeout: float, from_node: str = ""
    ) -> None:
        self.start = start
        self.k = k
        self.min = min_timeout
        self.max = max_timeout
        self.confirmations: set[str] = {from_node}
        self.n = 0
        self.timeout = self._timeout()

    def _timeout(self) -> float:
        if self.k < 1:
            return self.min
        frac = math.log(self.n + 1) / math.log(self.k + 1)
        raw = self.max - frac * (self.max - self.min)
        return max(self.min, math.floor(raw * 1000) / 1000)

    @property
    def deadline(self) -> float:
        """When the suspect is declared dead."""
        return self.start + self.timeout

    def confirm(self, from_node: str) -> bool:
        """A new, independent confirmation: shrink the timeout; ``False`` for a repeat or
        once ``k`` confirmations are in."""
        if self.n >= self.k or from_node in self.confirmations:
            return False
        self.confirmations.add(from_node)
        self.n += 1
        self.timeout = self._timeout()
        return True


class Awareness:
    """Lifeguard's local health: a score in ``[0, max_multiplier)`` that multiplies the
    probe interval and timeout when this node seems to be the slow one."""

    def __init__(self, max_multiplier: int) -> None:
        self.max = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> None:
        """Change the score, kept within bounds."""
        self.score = min(self.max - 1, max(0, self.score + delta))

    def scale(self, timeout: float) -> float:
        """``timeout`` multiplied by ``score + 1``."""
        return timeout * (self.score + 1)


# -- the member table -------------------------------------------------------------------


@attrs.define
class _Node:
    member: Member
    state_change: float
    suspicion: Suspicion | None = None


def _push_state(member: Member) -> PushNodeState:
    return PushNodeState(
        member.id,
        ip_to_bytes(member.host),
        member.port,
        member.meta,
        member.incarnation,
        member.state.value,
        member.versions.to_vsn(),
    )


def _alive_message(member: Member) -> Alive:
    return Alive(
        member.incarnation,
        member.id,
        ip_to_bytes(member.host),
        member.port,
        member.meta,
        member.versions.to_vsn(),
    )


class MemberTable:
    """The members one node knows and memberlist's rules for changing them
    (``aliveNode``, ``suspectNode``, ``deadNode``, ``mergeState``).

    It does no I/O: messages to disseminate go to ``broadcasts``, member events to
    ``publish``; time is passed in as ``now``. Suspicion deadlines are checked by
    :meth:`expire`.
    """

    def __init__(
        self,
        local: Member,
        config: GossipConfig,
        publish: Callable[[MemberEvent], None],
        now: float,
    ) -> None:
        self.config = config
        self.local_id = local.id
        self.broadcasts = BroadcastQueue(config.retransmit_mult)
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.leaving = False
        self._publish = publish
        self.nodes: dict[str, _Node] = {}
        # memberlist starts counting at 1, and ignores news of an unknown node at 0
        local = attrs.evolve(local, incarnation=max(1, local.incarnation))
        self.alive(_alive_message(local), now, bootstrap=True)

    # -- views --

    @property
    def local(self) -> Member:
        """The local member."""
        return self.nodes[self.local_id].member

    def members(self) -> list[Member]:
        """Alive and suspect members, sorted by id."""
        live = (MemberState.ALIVE, MemberState.SUSPECT)
        return sorted(
            (n.member for n in self.nodes.values() if n.member.state in live),
            key=lambda m: m.id,
        )

    def num_live(self) -> int:
        """How many members are alive or suspect (memberlist's node estimate)."""
        return len(self.members())

    def push_state(self) -> list[PushNodeState]:
        """Every node, as a push-pull sends them."""
        return [_push_state(n.member) for n in self.nodes.values()]

    # -- rules --

    def alive(self, a: Alive, now: float, *, bootstrap: bool = False) -> None:
        """An alive message: a new node, a node back, a refutation, or new meta."""
        node = self.nodes.get(a.node)
        is_local = a.node == self.local_id
        if is_local and self.leaving and not bootstrap:
            return
        versions = ProtocolVersions.from_vsn(a.vsn) if a.vsn else ProtocolVersions()
        address = (ip_from_bytes(a.addr), a.port)
        if node is None:
            if a.incarnation == 0 and not bootstrap:
                return  # as memberlist: a new node's state starts at incarnation 0
            member = Member(a.node, address, a.meta, MemberState.ALIVE, a.incarnation, versions)
            self.nodes[a.node] = _Node(member, now)
            if not is_local or bootstrap:
                self.broadcasts.queue(a.node, a)
            self._publish(MemberJoined(member))
            return
        old = node.member
        updates_node = False
        if old.address != address:
            reclaim = self.config.dead_node_reclaim_time
            can_reclaim = reclaim > 0 and now - node.state_change > reclaim
            if old.state is MemberState.LEFT or (old.state is MemberState.DEAD and can_reclaim):
                updates_node = True
            else:
                log.warning("conflicting address for %s: %s vs %s", a.node, old.address, address)
                return
        if is_local and not bootstrap:
            if a.incarnation < old.incarnation:
                return
            if a.incarnation == old.incarnation and a.meta == old.meta and address == old.address:
                return  # our own alive message, gossiped back
            self.refute(a.incarnation, now)
            return
        if a.incarnation <= old.incarnation and not bootstrap and not updates_node:
            return
        node.suspicion = None
        self.broadcasts.queue(a.node, a)
        member = Member(a.node, address, a.meta, MemberState.ALIVE, a.incarnation, versions)
        node.member = member
        if old.state is not MemberState.ALIVE:
            node.state_change = now
        if old.state in (MemberState.DEAD, MemberState.LEFT):
            self._publish(MemberJoined(member))
        elif old.meta != member.meta or old.address != member.address:
            self._publish(MemberUpdated(member))

    def suspect(self, s: Suspect, now: float) -> None:
        """A suspect message: start (or confirm) a suspicion, or refute one about us."""
        node = self.nodes.get(s.node)
        if node is None or s.incarnation < node.member.incarnation:
            return
        if node.suspicion is not None:
            if node.suspicion.confirm(s.from_node):
                self.broadcasts.queue(s.node, s)
            return
        if node.member.state is not MemberState.ALIVE:
            return
        if s.node == self.local_id:
            if not self.leaving:
                self.refute(s.incarnation, now)
            return
        self.broadcasts.queue(s.node, s)
        node.member = attrs.evolve(
            node.member, state=MemberState.SUSPECT, incarnation=s.incarnation
        )
        node.state_change = now
        n = self.num_live()
        k = self.config.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        min_timeout = (
            self.config.suspicion_mult
            * max(1.0, math.log10(max(1, n)))
            * self.config.probe_interval
        )
        max_timeout = self.config.suspicion_max_timeout_mult * min_timeout
        node.suspicion = Suspicion(now, k, min_timeout, max_timeout, s.from_node)
        self._publish(MemberSuspect(node.member))

    def dead(self, d: Dead, now: float) -> None:
        """A dead message: the node failed, or (from itself) left."""
        node = self.nodes.get(d.node)
        if node is None or d.incarnation < node.member.incarnation:
            return
        node.suspicion = None
        if node.member.state in (MemberState.DEAD, MemberState.LEFT):
            return
        if d.node == self.local_id and not self.leaving:
            self.refute(d.incarnation, now)
            return
        self.broadcasts.queue(d.node, d)
        state = MemberState.LEFT if d.node == d.from_node else MemberState.DEAD
        node.member = attrs.evolve(node.member, state=state, incarnation=d.incarnation)
        node.state_change = now
        event = MemberLeft if state is MemberState.LEFT else MemberFailed
        self._publish(event(node.member))

    def refute(self, accused: int, now: float) -> None:
        """Answer an accusation about us with a higher incarnation."""
        node = self.nodes[self.local_id]
        incarnation = max(node.member.incarnation, accused) + 1
        node.member = attrs.evolve(
            node.member, state=MemberState.ALIVE, incarnation=incarnation % _U32
        )
        self.broadcasts.queue(self.local_id, _alive_message(node.member))
        self.awareness.apply(1)

    def leave(self, now: float, finished: trio.Event | None = None) -> None:
        """Announce our own death: a graceful leave. ``finished`` is set once the
        announcement has been sent as many times as it will be."""
        self.leaving = True
        local = self.local
        self.dead(Dead(local.incarnation, local.id, local.id), now)
        if finished is not None:
            self.broadcasts.notify_when_finished(local.id, finished)

    def reap(self, now: float) -> None:
        """Forget the nodes dead or left for longer than ``gossip_to_the_dead_time``."""
        gone = (MemberState.DEAD, MemberState.LEFT)
        for name, node in list(self.nodes.items()):
            if (
                name != self.local_id
                and node.member.state in gone
                and now - node.state_change > self.config.gossip_to_the_dead_time
            ):
                del self.nodes[name]

    def expire(self, now: float) -> None:
        """Declare dead the suspects whose suspicion timed out."""
        for node in list(self.nodes.values()):
            suspicion = node.suspicion
            if suspicion is not None and now >= suspicion.deadline:
                node.suspicion = None
                if node.member.state is MemberState.SUSPECT:
                    self.dead(Dead(node.member.incarnation, node.member.id, self.local_id), now)

    def verify_versions(self, remote: Sequence[PushNodeState]) -> None:
        """memberlist's ``verifyProtocol``: every node's current versions must be in the
        range all of them understand. Raises :class:`ClusterError`."""
        versions = [
            n.member.versions
            for n in self.nodes.values()
            if n.member.state in (MemberState.ALIVE, MemberState.SUSPECT)
        ]
        versions += [ProtocolVersions.from_vsn(r.vsn) for r in remote if r.vsn]
        pmin = max(v.pmin for v in versions)
        pmax = min(v.pmax for v in versions)
        dmin = max(v.dmin for v in versions)
        dmax = min(v.dmax for v in versions)
        for v in versions:
            if not pmin <= v.pcur <= pmax:
                raise ClusterError(f"protocol version {v.pcur} not in [{pmin}, {pmax}]")
            if not dmin <= v.dcur <= dmax:
                raise ClusterError(f"delegate protocol version {v.dcur} not in [{dmin}, {dmax}]")

    def merge(self, remote: Sequence[PushNodeState], now: float) -> None:
        """memberlist's ``mergeState``: alive as alive, left as a leave, suspect and dead
        as suspicion."""
        for r in remote:
            if r.state == MemberState.ALIVE.value:
                self.alive(Alive(r.incarnation, r.name, r.addr, r.port, r.meta, r.vsn), now)
            elif r.state == MemberState.LEFT.value:
                self.dead(Dead(r.incarnation, r.name, r.name), now)
            elif r.state in (MemberState.SUSPECT.value, MemberState.DEAD.value):
                self.suspect(Suspect(r.incarnation, r.name, self.local_id), now)


# -- the service ------------------------------------------------------------------------


_NETWORK_ERRORS = (
    OSError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


class _TcpPing(enum.Enum):
    ACKED = "acked"
    REFUSED = "refused"
    FAILED = "failed"


def _refused(error: BaseException) -> bool:
    """Whether a failed connect was refused: ``ConnectionRefusedError`` itself, or
    ``trio.open_tcp_stream``'s ``OSError`` whose every attempt was refused."""
    if isinstance(error, ConnectionRefusedError):
        return True
    cause = error.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return all(_refused(inner) for inner in cause.exceptions)
    return cause is not None and _refused(cause)


@attrs.define
class _Pending:
    acked: trio.Event = attrs.Factory(trio.Event)
    nacks: int = 0
    on_ack: Callable[[], None] | None = None


class GossipCluster:
    """A node of a memberlist-compatible gossip cluster, as a service of an actor
    system::

        async with GossipCluster(system, id="a", bind=("127.0.0.1", 0)) as cluster:
            await cluster.join("127.0.0.1:7946")

    It binds UDP and TCP on one port (``bind``'s port 0 picks a free one: see
    :attr:`address`). Leaving the block normally leaves the cluster gracefully; leaving
    it by an exception (a cancellation included) stops the node without a word, and the
    others will find it failed.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        id: str | None = None,
        bind: Address = ("127.0.0.1", 0),
        meta: bytes | None = None,
        tags: Mapping[str, str] | None = None,
        config: GossipConfig | None = None,
        keyring: Keyring | None = None,
        label: str = "",
        versions: ProtocolVersions | None = None,
    ) -> None:
        self._system = check_system(system, "GossipCluster")
        self._id = member_id(id, system)
        self._bind = parse_address(bind, what="bind")
        self._meta = member_meta(meta, tags)
        self._tags = None if meta is not None else dict(tags or {})
        self.config = check_optional(config, GossipConfig, "config") or GossipConfig()
        self._keyring = check_optional(keyring, Keyring, "keyring")
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {label!r}")
        if len(label.encode()) > 255:
            raise ValueError(f"label must be at most 255 bytes of UTF-8, not {label!r}")
        self._label = label
        self._versions = (
            check_optional(versions, ProtocolVersions, "versions") or ProtocolVersions()
        )
        self.stats = GossipStats()
        self._table: MemberTable | None = None
        self._udp: trio.socket.SocketType | None = None
        self._send_lock = trio.Lock()
        self._pending: dict[int, _Pending] = {}
        self._seq = random.randrange(_U32)
        self._nursery: trio.Nursery | None = None
        self._running: AbstractAsyncContextManager[None] | None = None
        self._left = False
        # failed members to join again: id -> (last address, trio time of the failure)
        self._failed: dict[str, tuple[tuple[str, int], float]] = {}

    def __repr__(self) -> str:
        return f"<GossipCluster {self._id!r}>"

    def _local_meta(self) -> bytes:
        """The meta to announce: with tags (not raw meta) and a transport running on
        the system, the tags gain the transport's address under ``ta-transport``
        (unless they have it), so that other nodes' transports can reach this one."""
        transport = self._system._transport
        if self._tags is None or transport is None:
            return self._meta
        from ..transport import TRANSPORT_TAG

        if TRANSPORT_TAG in self._tags:
            return self._meta
        return member_meta(None, {**self._tags, TRANSPORT_TAG: format_address(transport.address)})

    # -- Cluster protocol --

    @property
    def table(self) -> MemberTable:
        """The member table (after start)."""
        if self._table is None:
            raise ClusterError(f"{self!r} has not been started (use async with)")
        return self._table

    @property
    def local_member(self) -> Member:
        return self.table.local

    @property
    def address(self) -> tuple[str, int]:
        """Where this node gossips (UDP and TCP)."""
        return self.local_member.address

    def members(self) -> list[Member]:
        return self.table.members()

    async def join(self, *seeds: Address) -> int:
        """Push-pull with each seed over TCP; returns how many answered. One more
        push-pull with the first that answered follows ``config.join_sync_delay``
        later, in the background.

        Each seed is ``"host:port"`` or ``(host, port)``. Raises
        :class:`~tinyagents.errors.InvalidAddress` (a ``ValueError``) before any
        traffic when a seed is neither, and :class:`~tinyagents.cluster.JoinFailed`
        when no seed answered.
        """
        await trio.lowlevel.checkpoint()
        addresses = [parse_address(seed, what="seed") for seed in seeds]
        if self._left:
            raise ClusterError(f"cannot join: {self!r} has left the cluster, for good")
        self.table  # noqa: B018 - raises when not started
        if not seeds:
            return 0
        names = [format_address(address) for address in addresses]
        joined: list[tuple[str, int]] = []
        errors = []
        for name, address in zip(names, addresses, strict=True):
            try:
                await self._push_pull(address, join=True)
            except (*_NETWORK_ERRORS, ClusterError, ValueError, TypeError) as error:
                errors.append(f"{name}: {error}")
            else:
                joined.append(address)
        if not joined:
            raise JoinFailed(f"could not join through {', '.join(errors)}", names)
        if self.config.join_sync_delay > 0 and self._nursery is not None:
            self._nursery.start_soon(self._join_sync, joined[0])
        return len(joined)

    async def _join_sync(self, address: tuple[str, int]) -> None:
        """The push-pull ``join_sync_delay`` after a join (see :class:`GossipConfig`)."""
        await trio.sleep(self.config.join_sync_delay)
        if self._left:
            return
        try:
            await self._push_pull(address, join=False)
        except (*_NETWORK_ERRORS, ClusterError, ValueError, TypeError) as error:
            log.debug("the push-pull after joining through %s failed: %s", address, error)

    async def leave(self) -> None:
        """Broadcast Serf's leave intent (:func:`serf_leave_intent`), then our leave (a
        dead message from ourselves), each time waiting until it has been gossiped as many
        times as it will be (at most ``config.leave_timeout`` each, as Serf waits its
        ``BroadcastTimeout`` twice); idempotent."""
        if self._left or self._table is None:
            await trio.lowlevel.checkpoint()
            return
        self._left = True
        table = self._table
        peers = any(m.state is MemberState.ALIVE and m.id != self._id for m in table.members())
        if peers:
            # Serf's leave intent first, as Serf's Leave does: without it, Serf agents
            # would list us failed rather than left. Other nodes of ours ignore it.
            intent_sent = trio.Event()
            table.broadcasts.queue(
                _LEAVE_INTENT + self._id, serf_leave_intent(self._id), intent_sent
            )
            with trio.move_on_after(self.config.leave_timeout):
                await intent_sent.wait()
        finished = trio.Event()
        table.leave(trio.current_time(), finished)
        if peers:
            with trio.move_on_after(self.config.leave_timeout):
                await finished.wait()
        else:
            await trio.lowlevel.checkpoint()

    # -- lifecycle --

    async def __aenter__(self) -> Self:
        if self._table is not None:
            raise ClusterError(f"{self!r} was already started: a cluster starts once")
        if not self._system.running:
            raise SystemNotRunning(
                f"cannot start a cluster on actor system {self._system.name!r}: it is not running"
            )
        host, port = self._bind
        listeners: list[trio.SocketListener] = []
        for _ in range(20):
            udp = trio.socket.socket(
                trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET,
                trio.socket.SOCK_DGRAM,
            )
            await udp.bind((host, port))
            actual = udp.getsockname()[1]
            try:
                listeners = await trio.open_tcp_listeners(actual, host=host)
            except OSError:
                udp.close()
                if port:
                    raise
                continue
            break
        else:  # pragma: no cover - 20 collisions in a row
            raise ClusterError("could not bind UDP and TCP on one port")
        self._udp = udp
        local = Member(self._id, (host, actual), self._local_meta(), versions=self._versions)
        self._table = MemberTable(local, self.config, self._on_event, trio.current_time())
        self._running = self._run(listeners)
        await self._running.__aenter__()
        return self

    @asynccontextmanager
    async def _run(self, listeners: list[trio.SocketListener]) -> AsyncIterator[None]:
        try:
            async with open_service_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive_loop)
                nursery.start_soon(trio.serve_listeners, self._handle_stream, listeners)
                nursery.start_soon(self._probe_loop)
                nursery.start_soon(self._gossip_loop)
                nursery.start_soon(self._push_pull_loop)
                nursery.start_soon(self._timer_loop)
                if self.config.reconnect_interval > 0:
                    nursery.start_soon(self._reconnect_loop)
                system = self._system
                if system._cluster is None:
                    system._cluster = self
                system._metrics.add_collector(self._collect_metrics)
                try:
                    yield
                finally:
                    system._metrics.remove_collector(self._collect_metrics)
                    if system._cluster is self:
                        system._cluster = None
                    nursery.cancel_scope.cancel()
        finally:
            if self._udp is not None:
                self._udp.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._running is not None
        if exc is None:
            try:
                await self.leave()
            except BaseException as error:
                if not await self._running.__aexit__(type(error), error, error.__traceback__):
                    raise
                return None
        return await self._running.__aexit__(exc_type, exc, tb)

    def _collect_metrics(self) -> list[Sample]:
        stats = self.stats
        return [
            Sample("tinyagents_gossip_probes_total", "counter", {}, stats.probes),
            Sample("tinyagents_gossip_suspicions_total", "counter", {}, stats.probes_failed),
            Sample("tinyagents_gossip_members", "gauge", {}, len(self.table.members())),
        ]

    # -- packets --

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % _U32
        return self._seq

    def _member_at(self, addr: tuple[str, int]) -> Member | None:
        for node in self.table.nodes.values():
            if node.member.address == addr:
                return node.member
        return None

    async def _send(self, addr: tuple[str, int], messages: Sequence[Message | bytes]) -> None:
        """Send ``messages`` with as many queued broadcasts as fit in one packet."""
        parts = [m if isinstance(m, bytes) else encode_message(m) for m in messages]
        target = self._member_at(addr)
        overhead = 4 + 2 * len(parts) + 5
        if self._label:
            overhead += 2 + len(self._label.encode())
        if self._keyring is not None:
            overhead += 1 + 12 + 16
        avail = UDP_BUFFER_SIZE - overhead - sum(len(p) for p in parts)
        if avail > 0:
            parts += self.table.broadcasts.take(2, avail, self.table.num_live())
        if not parts:
            return
        await self._send_raw(addr, parts, target)

    async def _send_raw(
        self, addr: tuple[str, int], parts: Sequence[bytes], target: Member | None
    ) -> None:
        data = encode_packet(
            parts,
            crc=target is not None and target.versions.pmax >= 5,
            keyring=self._keyring,
            label=self._label,
        )
        assert self._udp is not None
        try:
            async with self._send_lock:
                await self._udp.sendto(data, addr)
            self.stats.packets_sent += 1
        except OSError as error:
            log.debug("sending to %s failed: %s", addr, error)

    async def _receive_loop(self) -> None:
        assert self._udp is not None
        while True:
            try:
                data, sender = await self._udp.recvfrom(65_536)
            except OSError:
                # an ICMP error for an earlier send (a peer gone away): keep receiving,
                # but through a checkpoint, so a socket failing over and over cannot spin
                await trio.lowlevel.checkpoint()
                continue
            self.stats.packets_received += 1
            try:
                packet = decode_packet(data, keyring=self._keyring)
            except MalformedMessage:
                self.stats.malformed_packets += 1
                continue
            if packet.label != self._label:
                self.stats.malformed_packets += 1
                continue
            self.stats.malformed_parts += len(packet.errors)
            for message in packet.messages:
                try:
                    await self._handle_packet_message(message, (sender[0], sender[1]))
                except (MalformedMessage, ValueError, TypeError) as error:
                    log.debug("rejected %r: %s", message, error)
                    self.stats.rejected_messages += 1

    async def _handle_packet_message(self, message: Message, sender: tuple[str, int]) -> None:
        now = trio.current_time()
        table = self.table
        if isinstance(message, Ping):
            if message.node and message.node != self._id:
                return
            to = sender
            if message.source_port:
                to = (ip_from_bytes(message.source_addr), message.source_port)
            await self._send(to, [Ack(message.seq_no)])
        elif isinstance(message, IndirectPing):
            assert self._nursery is not None
            self._nursery.start_soon(self._relay_ping, message, sender)
        elif isinstance(message, Ack):
            pending = self._pending.get(message.seq_no)
            if pending is not None:
                pending.acked.set()
                if pending.on_ack is not None:
                    pending.on_ack()
        elif isinstance(message, Nack):
            pending = self._pending.get(message.seq_no)
            if pending is not None:
                pending.nacks += 1
        elif isinstance(message, Alive):
            table.alive(message, now)
        elif isinstance(message, Suspect):
            table.suspect(message, now)
        elif isinstance(message, Dead):
            table.dead(message, now)
        # user messages (Serf's) are not ours to read

    async def _relay_ping(self, request: IndirectPing, sender: tuple[str, int]) -> None:
        requester = sender
        try:
            target = (ip_from_bytes(request.target), request.port)
            if request.source_port:
                requester = (ip_from_bytes(request.source_addr), request.source_port)
        except ValueError:
            self.stats.rejected_messages += 1
            return
        seq = self._next_seq()
        pending = _Pending()
        self._pending[seq] = pending
        try:
            await self._send(target, [Ping(seq, request.node)])
            with trio.move_on_after(self.config.probe_timeout):
                await pending.acked.wait()
            if pending.acked.is_set():
                await self._send(requester, [Ack(request.seq_no)])
            elif request.nack:
                await self._send(requester, [Nack(request.seq_no)])
        finally:
            del self._pending[seq]

    # -- streams --

    async def _read_frame(self, stream: trio.abc.Stream) -> Message:
        decoder = StreamDecoder(self._keyring)
        while True:
            data = bytes(await stream.receive_some(65_536))
            if not data:
                frame = decoder.feed_eof()
                break
            got = decoder.feed(data)
            if got is not None:
                frame = got
                break
        if frame.label != self._label:
            raise MalformedMessage(f"stream label {frame.label!r} is not ours")
        return frame.message

    async def _write_frame(self, stream: trio.abc.Stream, message: Message) -> None:
        await stream.send_all(encode_stream(message, keyring=self._keyring, label=self._label))

    async def _handle_stream(self, stream: trio.SocketStream) -> None:
        self.stats.streams_received += 1
        try:
            with trio.fail_after(self.config.tcp_timeout):
                message = await self._read_frame(stream)
                if isinstance(message, PushPull):
                    try:
                        self.table.verify_versions(message.nodes)
                    except ClusterError as error:
                        await self._write_frame(stream, ErrorResponse(str(error)))
                        return
                    await self._write_frame(stream, PushPull(False, self.table.push_state()))
                    self.table.merge(message.nodes, trio.current_time())
                elif isinstance(message, Ping) and message.node in ("", self._id):
                    await self._write_frame(stream, Ack(message.seq_no))
        except (MalformedMessage, trio.TooSlowError, ValueError, TypeError):
            self.stats.malformed_streams += 1
        except _NETWORK_ERRORS:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _push_pull(self, addr: tuple[str, int], *, join: bool) -> None:
        with trio.fail_after(self.config.tcp_timeout):
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await self._write_frame(stream, PushPull(join, self.table.push_state()))
                reply = await self._read_frame(stream)
        if isinstance(reply, ErrorResponse):
            raise ClusterError(f"{addr[0]}:{addr[1]} refused the push-pull: {reply.error}")
        if not isinstance(reply, PushPull):
            raise MalformedMessage(f"a push-pull was answered by {type(reply).__name__}")
        self.table.verify_versions(reply.nodes)
        self.table.merge(reply.nodes, trio.current_time())

    async def _tcp_ping(self, member: Member, ping: Ping) -> _TcpPing:
        """Ping ``member`` over TCP: ``ACKED``; ``REFUSED`` when its port refused the
        connection (nothing listens there: the node is gone); ``FAILED`` otherwise."""
        try:
            stream = await trio.open_tcp_stream(*member.address)
        except OSError as error:
            return _TcpPing.REFUSED if _refused(error) else _TcpPing.FAILED
        try:
            async with stream:
                await self._write_frame(stream, ping)
                reply = await self._read_frame(stream)
        except (*_NETWORK_ERRORS, MalformedMessage):
            return _TcpPing.FAILED
        if isinstance(reply, Ack) and reply.seq_no == ping.seq_no:
            return _TcpPing.ACKED
        return _TcpPing.FAILED

    # -- loops --

    async def _timer_loop(self) -> None:
        """Declare suspects dead at their suspicion's exact deadline (as memberlist's
        per-suspicion timers do); a tick of a tenth of the probe interval picks up new
        suspicions and deadlines moved by confirmations."""
        tick = self.config.probe_interval / 10
        while True:
            next_deadline = min(
                (
                    node.suspicion.deadline
                    for node in self.table.nodes.values()
                    if node.suspicion is not None
                ),
                default=math.inf,
            )
            await trio.sleep_until(min(next_deadline, trio.current_time() + tick))
            self.table.expire(trio.current_time())

    async def _gossip_loop(self) -> None:
        while True:
            await trio.sleep(self.config.gossip_interval)
            now = trio.current_time()
            candidates = [
                n.member
                for n in self.table.nodes.values()
                if n.member.id != self._id
                and (
                    n.member.state in (MemberState.ALIVE, MemberState.SUSPECT)
                    or (
                        n.member.state is MemberState.DEAD
                        and now - n.state_change <= self.config.gossip_to_the_dead_time
                    )
                )
            ]
            for member in random.sample(candidates, min(self.config.gossip_nodes, len(candidates))):
                if not self.table.broadcasts:
                    break
                await self._send(member.address, [])

    def _on_event(self, event: MemberEvent) -> None:
        """Every member event of the table: remember failed members (for
        :meth:`_reconnect_loop`), then publish it."""
        member = event.member
        if isinstance(event, MemberFailed):
            if self.config.reconnect_interval > 0:  # else nothing would ever prune them
                self._failed[member.id] = (member.address, trio.current_time())
        elif isinstance(event, MemberJoined | MemberLeft):
            self._failed.pop(member.id, None)
        self._system.events.publish(event)

    async def _reconnect_loop(self) -> None:
        """Serf's reconnect: join a random failed member again, now and then (see
        :attr:`GossipConfig.reconnect_interval`)."""
        config = self.config
        while True:
            await trio.sleep(config.reconnect_interval)
            now = trio.current_time()
            for name, (_, since) in list(self._failed.items()):
                if now - since > config.reconnect_timeout:
                    del self._failed[name]
            if not self._failed or self._left:
                continue
            if random.random() > len(self._failed) / max(1, self.table.num_live()):
                continue
            name = random.choice(sorted(self._failed))
            address = self._failed[name][0]
            self.stats.reconnects += 1
            try:
                await self._push_pull(address, join=True)
            except (*_NETWORK_ERRORS, ClusterError, ValueError, TypeError) as error:
                log.debug("reconnecting to the failed member %s failed: %s", name, error)
            else:
                log.info("reconnected to the failed member %s at %s", name, address)

    async def _push_pull_loop(self) -> None:
        while True:
            await trio.sleep(self.config.push_pull_interval)
            peers = [
                m for m in self.table.members() if m.id != self._id and m.state is MemberState.ALIVE
            ]
            if peers:
                peer = random.choice(peers)
                try:
                    await self._push_pull(peer.address, join=False)
                except (*_NETWORK_ERRORS, ClusterError, ValueError, TypeError) as error:
                    log.debug("push-pull with %s failed: %s", peer.id, error)

    async def _probe_loop(self) -> None:
        """memberlist's probe ticker: a probe on every tick of ``probe_interval``, the
        first after a random stagger; a probe that runs past the next tick (a failed one
        waits the interval scaled by awareness) is followed at once by the next, and the
        ticks it overran are skipped, as Go's ticker drops them."""
        order: list[str] = []
        interval = self.config.probe_interval
        tick = trio.current_time() + random.uniform(0, interval)
        while True:
            await trio.sleep_until(tick)
            now = trio.current_time()
            tick += interval * (math.floor((now - tick) / interval) + 1)
            if self._left:
                continue
            target: Member | None = None
            for _ in range(len(self.table.nodes) + 1):
                if not order:
                    self.table.reap(trio.current_time())
                    order = [name for name in self.table.nodes if name != self._id]
                    random.shuffle(order)
                    if not order:
                        break
                node = self.table.nodes.get(order.pop())
                if node is not None and node.member.state in (
                    MemberState.ALIVE,
                    MemberState.SUSPECT,
                ):
                    target = node.member
                    break
            if target is not None:
                await self._probe(target)

    async def _probe(self, target: Member) -> None:
        table = self.table
        config = self.config
        start = trio.current_time()
        interval = table.awareness.scale(config.probe_interval)
        # as memberlist: awareness lengthens the wait for indirect acks, not the UDP ack's
        timeout = config.probe_timeout
        seq = self._next_seq()
        pending = _Pending()
        self._pending[seq] = pending
        self.stats.probes += 1
        local = table.local
        ping = Ping(seq, target.id, ip_to_bytes(local.host), local.port, local.id)
        try:
            messages: list[Message] = [ping]
            if target.state is MemberState.SUSPECT:
                messages.append(Suspect(target.incarnation, target.id, local.id))
            await self._send(target.address, messages)
            with trio.move_on_after(timeout):
                await pending.acked.wait()
            if pending.acked.is_set():
                table.awareness.apply(-1)
                return
            helpers = [
                m
                for m in table.members()
                if m.id not in (self._id, target.id) and m.state is MemberState.ALIVE
            ]
            helpers = random.sample(helpers, min(config.indirect_checks, len(helpers)))
            expected_nacks = 0
            for helper in helpers:
                nack = helper.versions.pmax >= 4
                expected_nacks += nack
                request = IndirectPing(
                    seq,
                    ip_to_bytes(target.host),
                    target.port,
                    target.id,
                    nack,
                    ip_to_bytes(local.host),
                    local.port,
                    local.id,
                )
                await self._send(helper.address, [request])
            refused = False

            async def tcp_fallback(scope: trio.CancelScope) -> None:
                nonlocal refused
                outcome = await self._tcp_ping(target, ping)
                if outcome is _TcpPing.ACKED:
                    pending.acked.set()
                elif outcome is _TcpPing.REFUSED:
                    # Its port refused us: nothing listens there, so no indirect ack can
                    # come. Suspect it now rather than at the end of the interval (where
                    # memberlist would); a node that is alive elsewhere refutes.
                    refused = True
                    scope.cancel()

            with trio.move_on_at(start + interval) as waiting:
                async with open_service_nursery() as nursery:
                    if config.tcp_pings and target.versions.pmax >= 3:
                        nursery.start_soon(tcp_fallback, waiting)
                    await pending.acked.wait()
                    nursery.cancel_scope.cancel()
            if pending.acked.is_set():  # an indirect ack, or the TCP fallback got through
                table.awareness.apply(-1)
                return
            self.stats.probes_failed += 1
            if refused:  # a refusal says the network works: our health is not in doubt
                self.stats.probes_refused += 1
            else:
                table.awareness.apply(
                    max(0, expected_nacks - pending.nacks) if expected_nacks > 0 else 1
                )
            current = table.nodes[target.id].member
            table.suspect(Suspect(current.incarnation, target.id, self._id), trio.current_time())
        finally:
            del self._pending[seq]
