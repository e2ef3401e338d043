"""The Replicator among real nodes on 127.0.0.1 (an ActorSystem, a Transport, a
GossipCluster and a Replicator each), on the mock clock: concurrent updates converge,
a partition heals, late and restarted nodes catch up, consistency levels are kept or
fail with typed errors, and nothing a peer sends crashes a node."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from faults import cut_push_pulls, cut_transport, faulty

from tinyagents import ActorSystem
from tinyagents.cluster import GossipCluster, GossipConfig, LocalCluster
from tinyagents.crdt import (
    GCounter,
    Key,
    LWWMap,
    ORSet,
    PNCounter,
    ReadAll,
    ReadFrom,
    ReadLocal,
    ReadMajority,
    Replicator,
    ReplicatorConfig,
    WriteAll,
    WriteLocal,
    WriteMajority,
    WriteTo,
    digest,
)
from tinyagents.crdt._replicator import _Deltas, _Entry, _Status
from tinyagents.errors import (
    KeyDeleted,
    KeyTypeMismatch,
    ReadIncomplete,
    SystemNotRunning,
    TransportError,
    UpdateIncomplete,
)
from tinyagents.transport import Transport
from tinyagents.transport._service import Peer

VISITS = Key("visits", PNCounter)
TAGS = Key("tags", ORSet)
GUARD = 120  # mock seconds
GOSSIP = GossipConfig.scaled(0.1)
INTERVAL = 0.5


@pytest.fixture(autouse=True)
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@attrs.define
class Node:
    system: ActorSystem
    cluster: GossipCluster
    replicator: Replicator

    @property
    def name(self) -> str:
        return self.system.name


@asynccontextmanager
async def open_node(
    name: str,
    *,
    gossip_port: int = 0,
    interval: float = INTERVAL,
    gossip: GossipConfig = GOSSIP,
    **config: Any,
) -> AsyncIterator[Node]:
    async with (
        ActorSystem(name) as system,
        Transport(system),
        GossipCluster(system, bind=("127.0.0.1", gossip_port), config=gossip) as cluster,
        Replicator(
            system, cluster, config=ReplicatorConfig(gossip_interval=interval, **config)
        ) as replicator,
    ):
        yield Node(system, cluster, replicator)


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (state that other nodes' traffic changes)."""
    while not condition():  # noqa: ASYNC110 - polls state that other nodes change
        await trio.sleep(0.05)


async def wait_members(nodes: Sequence[Node], count: int | None = None) -> None:
    count = len(nodes) if count is None else count
    await until(lambda: all(len(node.cluster.members()) == count for node in nodes))


@asynccontextmanager
async def open_cluster(names: str, **options: Any) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(open_node(name, **options)) for name in names]
        for node in nodes[1:]:
            await node.cluster.join(nodes[0].cluster.address)
        await wait_members(nodes)
        yield nodes


async def converge(nodes: Sequence[Node], key: Key[Any], check: Callable[[Any], bool]) -> list[Any]:
    """Wait until every node's copy of ``key`` passes ``check``; the copies."""
    while True:
        copies = [node.replicator.peek(key) for node in nodes]
        if all(copy is not None and check(copy) for copy in copies):
            return copies
        await trio.sleep(0.05)


def increment(replicator: Replicator, n: int = 1) -> Callable[[PNCounter], Any]:
    return lambda counter: counter.increment(replicator.replica_id, n)


def put_own_name(replicator: Replicator) -> Callable[[LWWMap[Any]], Any]:
    return lambda m: m.put(replicator.replica_id, replicator.node, 1)


# -- convergence -----------------------------------------------------------------------


async def test_concurrent_updates_on_five_nodes_converge() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("abcde") as nodes:
            async with trio.open_nursery() as nursery:
                for i, node in enumerate(nodes):

                    async def work(r: Replicator = node.replicator, i: int = i) -> None:
                        for _ in range(20):
                            await r.update(VISITS, increment(r, i + 1))
                            await r.update(TAGS, lambda s: s.add(r.replica_id, f"{r.node}-{i}"))
                            await trio.sleep(0.01)
                        await r.update(VISITS, lambda c: c.decrement(r.replica_id, 3))

                    nursery.start_soon(work)
            expected = 20 * (1 + 2 + 3 + 4 + 5) - 5 * 3
            counters = await converge(nodes, VISITS, lambda c: c.value == expected)
            assert len(set(counters)) == 1
            sets = await converge(nodes, TAGS, lambda s: len(s) == 5)
            assert sets[0].elements == {f"{name}-{i}" for i, name in enumerate("abcde")}
            # equal states have equal digests on every node
            assert len({digest(copy) for copy in counters}) == 1
            stats = nodes[0].replicator.stats
            assert stats.delta_messages_sent > 0
            assert stats.undecodable == stats.type_conflicts == 0


async def test_eight_nodes_converge_and_an_add_wins_over_a_concurrent_remove() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("abcdefgh") as nodes:
            a, b = nodes[0].replicator, nodes[1].replicator
            await a.update(TAGS, lambda s: s.add(a.replica_id, "shared"), write=WriteAll())
            await converge(nodes, TAGS, lambda s: "shared" in s)
            # within one gossip round: b removes what it saw while a adds it again
            await b.update(TAGS, lambda s: s.remove(b.replica_id, "shared"))
            await a.update(TAGS, lambda s: s.add(a.replica_id, "shared"))
            assert "shared" not in b.peek(TAGS)
            await trio.sleep(3 * INTERVAL)
            sets = await converge(nodes, TAGS, lambda s: True)
            assert all(s.elements == {"shared"} for s in sets)


async def test_a_partition_heals_and_both_sides_converge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut = cut_transport(monkeypatch)
    with trio.fail_after(GUARD):
        async with open_cluster("abcd", timeout=2.0) as nodes:
            left, right = nodes[:2], nodes[2:]
            for x in left:
                for y in right:
                    cut.add(frozenset((x.name, y.name)))
            for node in nodes:
                r = node.replicator
                await r.update(VISITS, increment(r, 10))
            # each side converges on its own updates only
            await converge(left, VISITS, lambda c: c.value == 20)
            await converge(right, VISITS, lambda c: c.value == 20)
            # a majority cannot be reached across the cut: the write still stands locally
            a = nodes[0].replicator
            with pytest.raises(UpdateIncomplete) as failure:
                await a.update(VISITS, increment(a, 1), write=WriteMajority(), timeout=1)
            assert failure.value.acks == 2
            assert failure.value.required == 3
            assert a.peek(VISITS).value == 21
            assert a.stats.writes_incomplete == 1
            await trio.sleep(5 * INTERVAL)
            assert nodes[3].replicator.peek(VISITS).value == 20
            cut.clear()  # heal: anti-entropy brings the full states across
            counters = await converge(nodes, VISITS, lambda c: c.value == 41)
            assert len(set(counters)) == 1
            assert nodes[3].replicator.stats.full_states_sent > 0


async def test_a_partition_seen_by_the_failure_detector_leaves_one_side_a_majority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # each side declares the other failed; the nodes that failed without leaving still
    # count in N, so the minority cannot reach a majority of its own and a ReadMajority
    # after the heal still overlaps the majority's WriteMajority
    cut = cut_transport(monkeypatch)
    partition = cut_push_pulls(monkeypatch)
    # no TCP pings and no periodic push-pull: only the cut decides who is reachable
    gossip = attrs.evolve(GOSSIP, tcp_pings=False, push_pull_interval=1e6)
    with trio.fail_after(GUARD):
        async with open_cluster("abcde", interval=1000.0, gossip=gossip) as nodes:
            major, minor = nodes[:3], nodes[3:]
            sockets = {node.name: faulty(node.cluster) for node in nodes}
            partition.on = True
            for x in major:
                for y in minor:
                    cut.add(frozenset((x.name, y.name)))
                    sockets[x.name].cut.add(y.cluster.address)
                    sockets[y.name].cut.add(x.cluster.address)
            await wait_members(major, 3)
            await wait_members(minor, 2)

            a, d = major[0].replicator, minor[0].replicator
            await a.update(VISITS, increment(a, 5), write=WriteMajority())  # a, b and c
            start = trio.current_time()
            with pytest.raises(UpdateIncomplete) as failure:
                await d.update(VISITS, increment(d, 1), write=WriteMajority(), timeout=30)
            assert trio.current_time() - start < 1  # known at once, not after the timeout
            assert (failure.value.acks, failure.value.required) == (1, 3)
            assert "unreachable (failed, not left): a, b, c" in failure.value.reason
            with pytest.raises(ReadIncomplete):
                await d.get(VISITS, read=ReadMajority(), timeout=30)
            assert d.peek(VISITS).value == 1  # d's write stands locally

            # heal: the reconnect of failed members joins the two sides again
            partition.on = False
            cut.clear()
            for wrapper in sockets.values():
                wrapper.cut.clear()
            await wait_members(nodes, 5)
            counter = await minor[1].replicator.get(VISITS, read=ReadMajority())
            assert counter.value >= 5  # the majority's write is seen
            await d.update(VISITS, increment(d, 1), write=WriteMajority())
            for node in nodes:  # and both sides' writes meet on every node
                counter = await node.replicator.get(VISITS, read=ReadAll())
                assert counter.value == 7


async def test_a_node_that_left_stops_counting_and_a_failed_one_counts_until_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("ab", interval=1000.0, unreachable_timeout=5.0) as (a, b):
            r = a.replicator
            async with trio.open_nursery() as nursery:

                async def run(name: str, *, task_status: trio.TaskStatus[Node]) -> None:
                    async with open_node(name, interval=1000.0) as node:
                        await node.cluster.join(a.cluster.address)
                        task_status.started(node)
                        await trio.sleep_forever()

                # c leaves gracefully: N is 2 again at once, and a majority is a and b
                c = await nursery.start(run, "c")
                await wait_members([a, b, c], 3)
                await c.cluster.leave()
                await wait_members([a, b], 2)
                await r.update(VISITS, increment(r), write=WriteAll())
                nursery.cancel_scope.cancel()

            async with trio.open_nursery() as nursery:
                d_scope = trio.CancelScope()

                async def run_d(*, task_status: trio.TaskStatus[None]) -> None:
                    with d_scope:
                        async with open_node("d", interval=1000.0) as node:
                            await node.cluster.join(a.cluster.address)
                            await wait_members([a, b, node], 3)
                            task_status.started()
                            await trio.sleep_forever()

                await nursery.start(run_d)
                d_scope.cancel()  # killed: it fails, it does not leave
                await wait_members([a, b], 2)
                with pytest.raises(UpdateIncomplete) as failure:
                    await r.update(VISITS, increment(r), write=WriteAll())
                assert failure.value.required == 3
                assert "unreachable (failed, not left): d" in failure.value.reason
                await r.update(VISITS, increment(r), write=WriteMajority())  # 2 of 3
                await trio.sleep(5)
                await r.update(VISITS, increment(r), write=WriteAll())  # d is forgotten


async def test_a_node_that_joins_late_catches_up() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("abc") as nodes:
            for node in nodes:
                r = node.replicator
                await r.update(VISITS, increment(r, 5))
                await r.update(Key("profile", LWWMap), put_own_name(r))
            await converge(nodes, VISITS, lambda c: c.value == 15)
            await trio.sleep(10 * INTERVAL)  # no more deltas: only anti-entropy can help
            async with open_node("late") as late:
                await late.cluster.join(nodes[0].cluster.address)
                everyone = [*nodes, late]
                await converge([late], VISITS, lambda c: c.value == 15)
                maps = await converge(everyone, Key("profile", LWWMap), lambda m: len(m) == 3)
                assert dict(maps[3].items()) == {"a": 1, "b": 1, "c": 1}
                assert late.replicator.keys() == ["profile", "visits"]


async def test_a_killed_node_restarted_catches_up_and_loses_no_increment() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("ab") as (a, b):
            async with trio.open_nursery() as nursery:
                ports: list[int] = []

                async def run_c(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                    with trio.CancelScope() as scope:
                        async with open_node("c") as c:
                            ports.append(c.cluster.address[1])
                            await c.cluster.join(a.cluster.address)
                            await wait_members([a, b, c])
                            r = c.replicator
                            await r.update(VISITS, increment(r, 7), write=WriteAll())
                            task_status.started(scope)
                            await trio.sleep_forever()

                scope = await nursery.start(run_c)
                await converge([a, b], VISITS, lambda c: c.value == 7)
                scope.cancel()  # killed: no leave, no goodbye
                await wait_members([a, b], 2)  # the cluster found it failed
                await a.replicator.update(VISITS, increment(a.replicator, 1))

            # restarted on the same gossip port, with nothing
            async with open_node("c", gossip_port=ports[0]) as c:
                r = c.replicator
                # an increment before it has caught up is not lost: it is a new replica
                await r.update(VISITS, increment(r, 100))
                await c.cluster.join(a.cluster.address)
                counters = await converge([a, b, c], VISITS, lambda c: c.value == 108)
                assert len(set(counters)) == 1
                assert r.replica_id.startswith("c:")
                assert len(counters[0].increments.counts) == 3  # a, and c's two lives


# -- consistency levels ----------------------------------------------------------------


async def test_write_majority_then_read_majority_reads_its_own_write() -> None:
    with trio.fail_after(GUARD):
        # gossip rounds far apart: only the write and the read carry the value
        async with open_cluster("abcde", interval=1000.0) as nodes:
            a, e = nodes[0].replicator, nodes[4].replicator
            await a.update(VISITS, increment(a, 42), write=WriteMajority())
            holders = [node for node in nodes if node.replicator.peek(VISITS) is not None]
            assert len(holders) >= 3
            counter = await e.get(VISITS, read=ReadMajority())
            assert counter is not None
            assert counter.value == 42
            assert e.peek(VISITS).value == 42  # what the read found was merged here
            counter = await nodes[1].replicator.get(VISITS, read=ReadAll())
            assert counter.value == 42


async def test_write_to_n_counts_this_node_and_caps_at_the_cluster() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("abc", interval=1000.0) as nodes:
            a = nodes[0].replicator
            await a.update(VISITS, increment(a), write=WriteTo(2))
            assert sum(node.replicator.peek(VISITS) is not None for node in nodes) >= 2
            await a.update(VISITS, increment(a), write=WriteTo(10))  # capped at 3
            assert all(node.replicator.peek(VISITS).value == 2 for node in nodes)
            counter = await nodes[2].replicator.get(VISITS, read=ReadFrom(2))
            assert counter.value == 2


async def test_levels_fail_fast_when_too_few_nodes_are_left_and_after_the_timeout(
    clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(GUARD):
        async with (
            open_node("a", interval=1000.0) as a,
            ActorSystem("b") as system_b,
            Transport(system_b),
            GossipCluster(system_b, config=GOSSIP) as cluster_b,
        ):
            # b is a member with a transport, but runs no replicator
            await cluster_b.join(a.cluster.address)
            await wait_members([a], 2)
            r = a.replicator
            start = trio.current_time()
            with pytest.raises(UpdateIncomplete) as failure:
                await r.update(VISITS, increment(r, 3), write=WriteAll(), timeout=30)
            assert trio.current_time() - start < 30  # b said no at once
            assert "b" in failure.value.reason
            assert r.peek(VISITS).value == 3  # the update stands
            with pytest.raises(ReadIncomplete) as read_failure:
                await r.get(VISITS, read=ReadAll(), timeout=30)
            assert read_failure.value.replies == 1
            assert r.stats.reads_incomplete == 1


async def test_a_write_that_gets_no_answer_fails_after_exactly_its_timeout(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue = Peer.enqueue
    lost: list[str] = []

    def black_hole(
        self: Peer, item: list[object], meta: object = None, *, now: bool = False
    ) -> None:
        if self.node == "b":
            lost.append(self.node)
            return
        enqueue(self, item, meta, now=now)

    with trio.fail_after(GUARD):
        async with open_cluster("ab", interval=1000.0) as (a, _):
            monkeypatch.setattr(Peer, "enqueue", black_hole)
            r = a.replicator
            start = trio.current_time()
            with pytest.raises(UpdateIncomplete) as failure:
                await r.update(VISITS, increment(r), write=WriteMajority(), timeout=2.5)
            assert trio.current_time() - start == pytest.approx(2.5)
            assert "within 2.5 s" in failure.value.reason
            assert "stands locally" in str(failure.value)
            assert lost


# -- subscriptions and deletion --------------------------------------------------------


async def test_subscribers_see_changes_from_every_node_and_end_on_delete() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("ab") as (a, b):
            seen: list[int] = []
            subscribed = trio.Event()

            async def watch() -> None:
                await a.replicator.update(VISITS, lambda c: (c, c))  # the key exists
                async with a.replicator.subscribe(VISITS) as changes:
                    subscribed.set()
                    async for counter in changes:
                        seen.append(counter.value)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await subscribed.wait()
                rb = b.replicator
                await rb.update(VISITS, increment(rb, 4))
                await converge([a], VISITS, lambda c: c.value == 4)
                await trio.sleep(INTERVAL)
                await rb.delete(VISITS)
            assert seen[0] == 0
            assert seen[-1] == 4
            assert seen == sorted(seen)
            # deleted everywhere, and for good
            with pytest.raises(KeyDeleted):
                await a.replicator.update(VISITS, increment(a.replicator))
            with pytest.raises(KeyDeleted):
                b.replicator.peek(VISITS)
            names = a.replicator.keys()
            assert "visits" not in names


async def test_a_slow_subscriber_gets_the_latest_state_not_a_backlog() -> None:
    async with ActorSystem("solo") as system:
        cluster = LocalCluster(system)
        async with cluster, Replicator(system, cluster) as r:
            await r.update(VISITS, increment(r))
            async with r.subscribe(VISITS) as changes:
                for _ in range(100):
                    await r.update(VISITS, increment(r))
                first = await changes.__anext__()
                assert first.value == 101
                await r.update(VISITS, increment(r))
                assert (await changes.__anext__()).value == 102


async def test_a_deletion_missed_by_a_node_is_not_undone_by_its_old_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enqueue = Peer.enqueue
    cut = {"c"}

    def lossy(self: Peer, item: list[object], meta: object = None, *, now: bool = False) -> None:
        if self.node in cut or self.transport.node in cut:
            return
        enqueue(self, item, meta, now=now)

    with trio.fail_after(GUARD):
        async with open_cluster("abc") as nodes:
            a, c = nodes[0].replicator, nodes[2].replicator
            await a.update(VISITS, increment(a, 2), write=WriteAll())
            monkeypatch.setattr(Peer, "enqueue", lossy)
            await a.delete(VISITS)
            await trio.sleep(4 * INTERVAL)
            assert c.peek(VISITS).value == 2  # c missed it
            cut.clear()
            await until(lambda: c.keys().count("visits") == 0)
            await trio.sleep(4 * INTERVAL)
            for node in nodes:
                with pytest.raises(KeyDeleted):
                    node.replicator.peek(VISITS)


# -- bounded messages ------------------------------------------------------------------


async def test_many_keys_travel_in_messages_under_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every message a replicator sends, measured as the codec encodes it
    sizes: dict[str, list[int]] = {}
    send = Replicator._send

    def measuring(self: Replicator, node: str, message: object) -> None:
        assert self._codec is not None
        assert self._hooks is not None
        _, payload = self._codec.to_wire(message, self._hooks)
        sizes.setdefault(type(message).__name__, []).append(len(payload))
        send(self, node, message)

    def largest() -> int:
        return max(size for found in sizes.values() for size in found)

    monkeypatch.setattr(Replicator, "_send", measuring)
    with trio.fail_after(GUARD):
        async with open_cluster("ab", max_message_bytes=2048) as (a, b):
            r = a.replicator
            keys = [Key(f"a-counter-with-a-long-name-{i}", GCounter) for i in range(300)]
            for key in keys:
                await r.update(key, lambda c: c.increment(r.replica_id, 1))
            await until(lambda: len(b.replicator.keys()) == 300)
            assert sum(map(len, sizes.values())) > 5  # split in several messages
            assert largest() <= 2048
            # deletions of many keys in one round: the list of their ids is split too
            sizes.clear()
            for key in keys[:200]:
                await r.delete(key)
            await until(lambda: len(b.replicator.keys()) == 100)
            assert len(sizes["_Deltas"]) > 1  # the ids went in more than one message
            assert largest() <= 2048
            # a late node gets everything by anti-entropy, digests of live and deleted
            # keys included, in bounded messages too
            sizes.clear()
            async with open_node("c", max_message_bytes=2048) as c:
                await c.cluster.join(a.cluster.address)
                await until(lambda: len(c.replicator.keys()) == 100)
                await until(lambda: len(c.replicator._deleted) == 200)
            assert len(sizes["_Status"]) > 1
            assert largest() <= 2048


async def test_anti_entropy_runs_every_few_rounds() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("ab", anti_entropy_every=3) as (a, b):
            ra = a.replicator
            await ra.update(VISITS, increment(ra))
            await converge([a, b], VISITS, lambda c: c.value == 1)
            statuses = ra.stats.status_messages_sent
            await trio.sleep(12 * INTERVAL + INTERVAL / 2)
            assert ra.stats.status_messages_sent - statuses in (4, 5)


# -- what peers send -------------------------------------------------------------------


async def test_garbage_and_conflicting_values_from_a_peer_are_counted_not_fatal() -> None:
    with trio.fail_after(GUARD):
        async with open_cluster("ab") as (a, b):
            ra = a.replicator
            await ra.update(VISITS, increment(ra, 1))
            ref = b.system.ref_for("tinyagents://a/user/replicator")
            bad = [
                _Entry("visits", "tinyagents.GCounter", b"\x93\x01\x02"),  # does not decode
                _Entry("visits", "tinyagents.GCounter", gcounter_payload(a)),  # wrong type
                _Entry("other", "no.such.Type", b"\x90"),  # unknown type id
                _Entry("plain", "", b"\xa3abc"),  # not replicated data
            ]
            await ref.tell(_Deltas("b", bad, []))
            await ref.tell(_Status("b", 5, 0, {"visits": b"x"}))  # zero chunks
            await ref.tell("what is this?")
            await until(lambda: ra.stats.undecodable >= 3 and ra.stats.type_conflicts >= 1)
            assert ra.stats.undecodable >= 3
            assert ra.stats.type_conflicts == 1
            assert ra.peek(VISITS).value == 1
            # and it goes on replicating
            rb = b.replicator
            await rb.update(VISITS, increment(rb, 1), write=WriteAll())
            assert ra.peek(VISITS).value == 2


def gcounter_payload(node: Node) -> bytes:
    codec = node.system._transport.codec  # type: ignore[union-attr]
    _, payload = codec.to_wire(GCounter().increment("x")[0], node.replicator._hooks)
    return payload


# -- arguments and lifecycle -----------------------------------------------------------


async def test_keys_levels_and_functions_are_checked() -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        Key("", GCounter)
    with pytest.raises(TypeError, match="replicated data type"):
        Key("x", dict)
    async with ActorSystem("solo") as system:
        cluster = LocalCluster(system)
        async with cluster, Replicator(system, cluster) as r:
            with pytest.raises(TypeError, match="write must be one of"):
                await r.update(VISITS, increment(r), write=ReadLocal())  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="read must be one of"):
                await r.get(VISITS, read=WriteLocal())  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="not a PNCounter"):
                await r.update(VISITS, lambda c: GCounter())  # type: ignore[arg-type,return-value]
            with pytest.raises(ZeroDivisionError):
                await r.update(VISITS, lambda c: 1 / 0)  # type: ignore[arg-type,return-value]
            assert r.peek(VISITS) is None  # nothing changed
            await r.update(VISITS, increment(r))
            with pytest.raises(KeyTypeMismatch) as mismatch:
                await r.update(Key("visits", GCounter), lambda c: c.increment(r.replica_id))
            assert isinstance(mismatch.value, TypeError)
            with pytest.raises(TypeError, match="expected a Key"):
                r.peek("visits")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="timeout"):
                await r.get(VISITS, timeout=-1)
            # one node: every level is reached by this node alone
            assert (await r.get(VISITS, read=ReadAll())).value == 1
            await r.update(VISITS, increment(r), write=WriteAll())
        with pytest.raises(SystemNotRunning):
            await r.update(VISITS, increment(r))
    with pytest.raises(ValueError, match="actor name"):
        Replicator(system, cluster, name="a/b")
    with pytest.raises(TypeError, match="ActorSystem"):
        Replicator(cluster, cluster)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gossip_interval"):
        ReplicatorConfig(gossip_interval=0)
    with pytest.raises(ValueError, match="max_message_bytes"):
        ReplicatorConfig(max_message_bytes=10)
    with pytest.raises(ValueError, match="anti_entropy_every"):
        ReplicatorConfig(anti_entropy_every=0)


async def test_a_cluster_with_other_members_needs_a_transport() -> None:
    async with (
        ActorSystem("a") as system_a,
        Transport(system_a),
        GossipCluster(system_a, config=GOSSIP) as cluster_a,
        ActorSystem("b") as system_b,
        GossipCluster(system_b, config=GOSSIP) as cluster_b,
    ):
        await cluster_b.join(cluster_a.address)
        await until(lambda: len(cluster_b.members()) == 2)
        with pytest.raises(TransportError, match="no transport"):
            async with Replicator(system_b, cluster_b):
                pass  # pragma: no cover
        with pytest.raises(ValueError, match="frame limit"):
            async with Replicator(
                system_a, cluster_a, config=ReplicatorConfig(max_message_bytes=8 * 2**20)
            ):
                pass  # pragma: no cover


async def test_the_body_s_own_exception_comes_out_of_async_with() -> None:
    async with ActorSystem("solo") as system:
        cluster = LocalCluster(system)
        async with cluster:
            with pytest.raises(ValueError, match="mine"):
                async with Replicator(system, cluster):
                    raise ValueError("mine")
            with pytest.raises(KeyboardInterrupt):
                async with Replicator(system, cluster, name="second"):
                    raise KeyboardInterrupt
            assert system.children == []  # their actors stopped


def test_levels_say_how_many_replicas_they_need() -> None:
    assert WriteLocal().required(5) == ReadLocal().required(5) == 1
    assert WriteMajority().required(5) == ReadMajority().required(4) == 3
    assert WriteMajority(min_cap=5).required(7) == 5
    assert WriteMajority(min_cap=9).required(7) == 7
    assert WriteTo(2).required(5) == 2
    assert ReadFrom(9).required(5) == 5
    assert WriteAll().required(6) == ReadAll().required(6) == 6
    with pytest.raises(ValueError, match="n must be >= 1"):
        WriteTo(0)
    assert math.isfinite(ReplicatorConfig().gossip_interval)
