"""GossipCluster: memberlist's state rules without sockets, then real nodes on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.cluster import (
    Cluster,
    JoinFailed,
    Keyring,
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
from tinyagents.cluster._errors import ClusterError
from tinyagents.cluster._gossip import (
    Awareness,
    BroadcastQueue,
    GossipCluster,
    GossipConfig,
    MemberTable,
    Suspicion,
)
from tinyagents.cluster._wire import (
    Alive,
    Dead,
    IndirectPing,
    PushNodeState,
    Suspect,
    decode_message,
    encode_packet,
    ip_to_bytes,
)
from tinyagents.errors import SystemNotRunning

LOOPBACK = ip_to_bytes("127.0.0.1")
VSN = ProtocolVersions().to_vsn()

# -- the member table, without sockets -----------------------------------------------------


def _table(n_peers: int = 0) -> tuple[MemberTable, list[MemberEvent]]:
    events: list[MemberEvent] = []
    local = Member("me", ("127.0.0.1", 7000))
    table = MemberTable(local, GossipConfig(), events.append, now=0.0)
    for i in range(n_peers):
        table.alive(_alive(f"p{i}", port=7001 + i), now=0.0)
    return table, events


def _alive(name: str, incarnation: int = 1, port: int = 7001, meta: bytes = b"") -> Alive:
    return Alive(incarnation, name, LOOPBACK, port, meta, VSN)


def _queued(table: MemberTable) -> list[object]:
    """The queued broadcasts, emptying the queue."""
    queued: list[object] = [decode_message(data) for data in table.broadcasts.take(0, 1 << 20, 10)]
    table.broadcasts = BroadcastQueue(4)
    return queued


def _last(events: list[MemberEvent]) -> MemberEvent:
    return events[-1]


def _state(table: MemberTable, name: str) -> MemberState:
    return table.nodes[name].member.state


def test_config_defaults_are_memberlists_lan_config() -> None:
    config = GossipConfig()
    assert (config.probe_interval, config.probe_timeout, config.indirect_checks) == (1.0, 0.5, 3)
    assert (config.suspicion_mult, config.suspicion_max_timeout_mult) == (4, 6)
    assert (config.gossip_interval, config.gossip_nodes, config.retransmit_mult) == (0.2, 3, 4)
    assert (config.push_pull_interval, config.tcp_timeout) == (30.0, 10.0)
    assert (config.awareness_max_multiplier, config.gossip_to_the_dead_time) == (8, 30.0)
    fast = GossipConfig.scaled(0.1, indirect_checks=1)
    assert fast.probe_interval == pytest.approx(0.1)
    assert fast.gossip_interval == pytest.approx(0.02)
    assert fast.indirect_checks == 1


def test_the_local_member_joins_and_is_broadcast() -> None:
    table, events = _table()
    assert events == [MemberJoined(table.local)]
    assert table.members() == [table.local]
    assert [type(m) for m in _queued(table)] == [Alive]


def test_a_new_node_joins_and_older_news_is_ignored() -> None:
    table, events = _table()
    assert table.local.incarnation == 1  # memberlist counts from 1
    table.alive(_alive("a", 0), now=1.0)  # and ignores an unknown node at 0
    assert "a" not in table.nodes
    table.alive(_alive("a", 5), now=1.0)
    assert [m.id for m in table.members()] == ["a", "me"]
    assert isinstance(_last(events), MemberJoined)
    before = list(events)
    table.alive(_alive("a", 4, meta=b"x"), now=2.0)
    table.alive(_alive("a", 5, meta=b"x"), now=2.0)
    assert events == before
    table.alive(_alive("a", 6, meta=b"x"), now=2.0)
    assert _last(events) == MemberUpdated(table.nodes["a"].member)
    assert table.nodes["a"].member.meta == b"x"


def test_suspicion_then_timeout_marks_failed() -> None:
    table, events = _table(n_peers=2)
    table.suspect(Suspect(1, "p0", "me"), now=10.0)
    member = table.nodes["p0"].member
    assert member.state is MemberState.SUSPECT
    assert _last(events) == MemberSuspect(member)
    assert table.members()[1].id == "p0"  # suspects are still members
    # 3 live nodes: k = 0, so the timeout is the minimum 4 * probe interval
    table.expire(13.9)
    assert _state(table, "p0") is MemberState.SUSPECT
    table.expire(14.0)
    failed = table.nodes["p0"].member
    assert failed.state is MemberState.DEAD
    assert _last(events) == MemberFailed(failed)
    assert "p0" not in [m.id for m in table.members()]


def test_an_alive_with_higher_incarnation_clears_a_suspicion() -> None:
    table, _ = _table(n_peers=1)
    table.suspect(Suspect(1, "p0", "me"), now=0.0)
    table.suspect(Suspect(0, "p0", "x"), now=0.0)  # older: ignored
    table.alive(_alive("p0", 1), now=1.0)  # not newer: the suspicion stands
    assert _state(table, "p0") is MemberState.SUSPECT
    table.alive(_alive("p0", 2), now=1.0)
    assert _state(table, "p0") is MemberState.ALIVE
    table.expire(1000.0)
    assert _state(table, "p0") is MemberState.ALIVE


def test_suspicion_and_death_about_ourselves_are_refuted() -> None:
    table, events = _table(n_peers=1)
    _queued(table)
    table.suspect(Suspect(3, "me", "p0"), now=0.0)
    assert table.local.incarnation == 4
    assert table.local.state is MemberState.ALIVE
    assert table.awareness.score == 1
    [refutation] = _queued(table)
    assert isinstance(refutation, Alive)
    assert refutation.incarnation == 4
    table.dead(Dead(4, "me", "p0"), now=0.0)
    assert table.local.incarnation == 5
    table.alive(_alive("me", 9, port=7000), now=0.0)  # someone claims a newer us
    assert table.local.incarnation == 10
    assert not [e for e in events if isinstance(e, MemberSuspect | MemberFailed)]


def test_dead_from_itself_is_a_leave_and_a_rejoin_is_a_join() -> None:
    table, events = _table(n_peers=1)
    table.dead(Dead(1, "p0", "p0"), now=0.0)
    left = table.nodes["p0"].member
    assert left.state is MemberState.LEFT
    assert _last(events) == MemberLeft(left)
    table.dead(Dead(1, "p0", "me"), now=0.0)  # already gone: nothing
    assert _last(events) == MemberLeft(left)
    table.alive(_alive("p0", 2), now=1.0)
    assert isinstance(_last(events), MemberJoined)
    assert _state(table, "p0") is MemberState.ALIVE


def test_our_own_leave() -> None:
    table, events = _table(n_peers=1)
    table.leave(now=0.0)
    assert table.local.state is MemberState.LEFT
    assert _last(events) == MemberLeft(table.local)
    table.suspect(Suspect(1, "me", "p0"), now=0.0)
    assert table.local.state is MemberState.LEFT
    assert any(isinstance(m, Dead) and m.from_node == "me" for m in _queued(table))


def test_lifeguard_confirmations_shrink_the_suspicion_timeout() -> None:
    suspicion = Suspicion(0.0, k=3, min_timeout=4.0, max_timeout=24.0, from_node="x")
    assert suspicion.deadline == 24.0
    assert not suspicion.confirm("x")
    assert suspicion.confirm("a")
    assert not suspicion.confirm("a")
    first = suspicion.deadline
    assert 4.0 < first < 24.0
    assert suspicion.confirm("b")
    assert suspicion.confirm("c")
    assert suspicion.deadline == pytest.approx(4.0)
    assert not suspicion.confirm("d")
    assert Suspicion(0.0, k=0, min_timeout=4.0, max_timeout=24.0).deadline == 4.0


def test_table_suspicion_uses_lifeguard_with_enough_nodes() -> None:
    table, _ = _table(n_peers=5)  # 6 live nodes: k = 2
    table.suspect(Suspect(1, "p0", "p1"), now=0.0)
    suspicion = table.nodes["p0"].suspicion
    assert suspicion is not None
    assert suspicion.k == 2
    assert suspicion.deadline == suspicion.max == 6 * suspicion.min
    _queued(table)
    table.suspect(Suspect(1, "p0", "p1"), now=0.0)  # the accuser is no confirmation
    assert _queued(table) == []
    table.suspect(Suspect(1, "p0", "p2"), now=0.0)  # a new confirmation: re-broadcast
    assert suspicion.min < suspicion.deadline < suspicion.max
    assert [type(m) for m in _queued(table)] == [Suspect]
    table.suspect(Suspect(1, "p0", "p3"), now=0.0)
    assert suspicion.deadline == pytest.approx(suspicion.min)
    table.expire(suspicion.deadline)
    assert _state(table, "p0") is MemberState.DEAD


def test_address_conflicts_and_reaping() -> None:
    table, events = _table(n_peers=1)
    table.alive(_alive("p0", 9, port=9999), now=1.0)  # another node claims the name
    assert table.nodes["p0"].member.port == 7001
    table.dead(Dead(1, "p0", "me"), now=1.0)
    table.alive(_alive("p0", 9, port=9999), now=2.0)  # dead, and no reclaim time
    assert _state(table, "p0") is MemberState.DEAD
    table.reap(now=1.0 + 30.0)
    assert "p0" in table.nodes
    table.reap(now=1.1 + 30.0)
    assert "p0" not in table.nodes
    table.alive(_alive("p0", 1, port=9999), now=40.0)
    assert table.nodes["p0"].member.port == 9999
    assert isinstance(_last(events), MemberJoined)
    table.dead(Dead(1, "p0", "p0"), now=41.0)
    table.alive(_alive("p0", 1, port=9998), now=41.0)  # a left node may come back
    assert table.nodes["p0"].member.port == 9998
    assert _state(table, "p0") is MemberState.ALIVE


def test_awareness_is_bounded() -> None:
    awareness = Awareness(8)
    awareness.apply(-1)
    assert awareness.scale(1.0) == 1.0
    awareness.apply(100)
    assert awareness.scale(0.5) == 4.0


def test_broadcast_queue_limits_retransmits_and_replaces() -> None:
    queue = BroadcastQueue(retransmit_mult=4)
    assert queue.retransmit_limit(1) == 4
    assert queue.retransmit_limit(10) == 8
    replaced, finished = trio.Event(), trio.Event()
    queue.queue("a", Suspect(1, "a", "b"), replaced)
    queue.queue("a", Dead(1, "a", "b"), finished)  # replaces the suspect
    assert replaced.is_set()
    assert len(queue) == 1
    for _ in range(4):
        assert not finished.is_set()
        [data] = queue.take(2, 1400, 1)
        assert isinstance(decode_message(data), Dead)
    assert finished.is_set()
    assert queue.take(2, 1400, 1) == []
    queue.queue("old", Suspect(1, "old", "b"))
    queue.queue("new", Suspect(1, "new", "b"))
    first = decode_message(queue.take(2, 40, 1)[0])  # room for one: the newest
    assert isinstance(first, Suspect)
    assert first.node == "new"
    second = decode_message(queue.take(2, 40, 1)[0])  # then the least sent
    assert isinstance(second, Suspect)
    assert second.node == "old"
    big = BroadcastQueue(retransmit_mult=4)
    big.queue("x", Suspect(1, "x" * 200, "y"))
    assert big.take(2, 50, 1) == []  # does not fit


def test_merge_and_version_check() -> None:
    table, _ = _table()
    remote = [
        PushNodeState("a", LOOPBACK, 7001, b"", 1, 0, VSN),
        PushNodeState("b", LOOPBACK, 7002, b"", 1, 3, VSN),
        PushNodeState("c", LOOPBACK, 7003, b"", 1, 2, VSN),
    ]
    table.verify_versions(remote)
    table.merge(remote, now=0.0)
    assert [m.id for m in table.members()] == ["a", "me"]  # b left before we knew it
    bad = [PushNodeState("d", LOOPBACK, 7004, b"", 1, 0, bytes([1, 5, 2, 2, 5, 1]))]
    with pytest.raises(ClusterError, match="delegate protocol version 1"):
        table.verify_versions(bad)


# -- real nodes on loopback ----------------------------------------------------------------

FAST = GossipConfig.scaled(0.1)


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polls state that other nodes change
            await trio.sleep(0.02)


def _view(cluster: GossipCluster) -> dict[str, str]:
    return {m.id: m.state.label for m in cluster.members()}


@asynccontextmanager
async def _node(system: ActorSystem, name: str, **kwargs: object) -> AsyncIterator[GossipCluster]:
    async with GossipCluster(system, id=name, config=FAST, **kwargs) as cluster:  # type: ignore[arg-type]
        yield cluster


async def test_three_nodes_converge_and_a_stopped_node_is_failed() -> None:
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberFailed) as failures,
        _node(system, "a", tags={"role": "x"}) as a,
        _node(system, "b") as b,
    ):
        assert isinstance(a, Cluster)
        with trio.CancelScope() as c_scope:
            async with _node(system, "c") as c:
                assert await b.join(a.address) == 1
                assert await c.join(f"127.0.0.1:{b.address[1]}") == 1
                everyone = {"a": "alive", "b": "alive", "c": "alive"}
                await _until(lambda: _view(a) == _view(b) == _view(c) == everyone)
                assert {m.id: dict(m.tags) for m in c.members()}["a"] == {"role": "x"}
                c_scope.cancel()  # stopped without leaving
        await _until(lambda: _view(a) == _view(b) == {"a": "alive", "b": "alive"})
        failed = failures.receive_nowait()
        assert failed.member.id == "c"
        assert failed.member.state is MemberState.FAILED
        assert a.stats.malformed_packets == b.stats.malformed_packets == 0


async def test_a_graceful_leave_is_seen_as_left() -> None:
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberLeft, MemberFailed) as gone,
        _node(system, "a") as a,
        _node(system, "b") as b,
    ):
        async with _node(system, "c") as c:
            await c.join(a.address)
            await b.join(a.address)
            await _until(lambda: len(_view(a)) == len(_view(b)) == len(_view(c)) == 3)
        assert c.local_member.state is MemberState.LEFT
        await _until(lambda: "c" not in _view(a) and "c" not in _view(b))
        for cluster in (a, b):
            assert cluster.table.nodes["c"].member.state is MemberState.LEFT
        kinds = set()
        with trio.move_on_after(0.1):
            async for event in gone:
                kinds.add(type(event))
        assert kinds == {MemberLeft}
        with pytest.raises(ClusterError, match="has left"):
            await c.join(a.address)


MALFORMED_PACKETS = [
    b"",
    b"\xfe" + os.urandom(1399),  # an unknown message type, then noise
    b"\x00\xc1",  # a ping whose body is not msgpack
    b"\x07\x05\x00",  # a truncated compound
    b"\x0c\x00\x00\x00\x00\x00\x80",  # a wrong CRC
    b"\xf4\x01L\x00\x80",  # a label the node does not use
    b"\x04\x81\xa4Node\x05",  # an alive whose node name is a number
]
REJECTED_PACKETS = [
    encode_packet([IndirectPing(1, b"", 7, "x")]),  # no target address
    encode_packet([Alive(1, "big", LOOPBACK, 1, b"m" * 600, VSN)]),  # meta over 512 bytes
]


async def test_malformed_packets_and_streams_are_counted_and_harmless() -> None:
    async with (
        ActorSystem("app") as system,
        _node(system, "a") as a,
        _node(system, "b") as b,
    ):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            for packet in MALFORMED_PACKETS + REJECTED_PACKETS:
                await sock.sendto(packet, a.address)
        stream = await trio.open_tcp_stream(*a.address)
        async with stream:
            await stream.send_all(b"\x06\xc1" + os.urandom(64))  # 0xc1 is never msgpack
        await _until(
            lambda: (
                a.stats.malformed_packets >= len(MALFORMED_PACKETS)
                and a.stats.malformed_streams >= 1
                and a.stats.rejected_messages >= len(REJECTED_PACKETS)
            )
        )
        await b.join(a.address)
        await _until(lambda: len(_view(a)) == len(_view(b)) == 2)


async def test_encrypted_and_labelled_nodes_converge_and_ignore_others() -> None:
    keyring = Keyring([bytes(range(16))])
    async with (
        ActorSystem("app") as system,
        _node(system, "a", keyring=keyring, label="L") as a,
        _node(system, "b", keyring=keyring, label="L") as b,
        _node(system, "plain") as plain,
    ):
        await b.join(a.address)
        await _until(lambda: len(_view(a)) == len(_view(b)) == 2)
        with pytest.raises(JoinFailed):
            await plain.join(a.address)
        await trio.sleep(0.3)  # probes keep succeeding through encryption
        assert _view(a) == _view(b) == {"a": "alive", "b": "alive"}


async def test_a_cluster_needs_a_running_system_and_starts_once() -> None:
    system = ActorSystem("app")
    with pytest.raises(SystemNotRunning):
        async with GossipCluster(system):
            pass  # pragma: no cover
    async with system, _node(system, "a") as a:
        with pytest.raises(ClusterError, match="already started"):
            await a.__aenter__()


async def test_join_without_seeds_and_to_nobody() -> None:
    async with ActorSystem("app") as system, _node(system, "a") as a:
        assert await a.join() == 0
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()
        with pytest.raises(JoinFailed):
            await a.join(("127.0.0.1", port))
