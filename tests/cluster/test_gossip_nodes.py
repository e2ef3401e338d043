"""GossipCluster with 3 to 16 real nodes on loopback: convergence, failure detection, a
rejoin after a restart, a paused node refuting its suspicion, and packet loss.

The timings are memberlist's LAN defaults scaled down (:meth:`GossipConfig.scaled`), the
sockets are real: conditions are awaited by polling, bounded by generous deadlines, and
no test asserts how long anything took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
from faults import cut_push_pulls, faulty

from tinyagents import ActorSystem
from tinyagents.cluster import MemberFailed, MemberState, MemberSuspect
from tinyagents.cluster._gossip import GossipCluster, GossipConfig

FAST = GossipConfig.scaled(0.1, tcp_timeout=10.0)
"""Probes every 100 ms; but a join's push-pull (a bound, not a rhythm) may take long on a
loaded machine (scaled, it would be 1 s: a join was seen to fail so)."""
DEADLINE = 30.0
"""How long any awaited condition may take: far beyond what it needs, for loaded machines."""


async def _until(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polls state that other nodes change
            await trio.sleep(0.05)


def _view(cluster: GossipCluster) -> dict[str, str]:
    return {m.id: m.state.label for m in cluster.members()}


def _drain(subscription: Any) -> list[Any]:
    """The events received so far."""
    events = []
    while True:
        try:
            events.append(subscription.receive_nowait())
        except trio.WouldBlock:
            return events


def _state(cluster: GossipCluster, name: str) -> MemberState | None:
    node = cluster.table.nodes.get(name)
    return None if node is None else node.member.state


@attrs.define
class _Node:
    cluster: GossipCluster
    scope: trio.CancelScope
    stopped: trio.Event

    async def stop(self) -> None:
        """Stop without leaving (as a crash), and wait until its sockets are closed."""
        self.scope.cancel()
        await self.stopped.wait()


async def _serve(
    system: ActorSystem,
    name: str,
    config: GossipConfig,
    *,
    task_status: trio.TaskStatus[_Node] = trio.TASK_STATUS_IGNORED,
) -> None:
    stopped = trio.Event()
    try:
        with trio.CancelScope() as scope:
            async with GossipCluster(system, id=name, config=config) as cluster:
                task_status.started(_Node(cluster, scope, stopped))
                await trio.sleep_forever()
    finally:
        stopped.set()


@asynccontextmanager
async def _cluster(
    system: ActorSystem, names: list[str], config: GossipConfig = FAST
) -> AsyncIterator[tuple[trio.Nursery, dict[str, _Node]]]:
    """Nodes started in a nursery (not joined yet); all stopped, without leaving, at the
    end."""
    async with trio.open_nursery() as nursery:
        nodes = {}
        for name in names:
            nodes[name] = await nursery.start(_serve, system, name, config)
        yield nursery, nodes
        nursery.cancel_scope.cancel()


async def _join_all(nodes: dict[str, _Node]) -> None:
    """Every node joins through the first one; then wait until all see all alive."""
    [seed, *others] = [n.cluster for n in nodes.values()]
    for cluster in others:
        assert await cluster.join(seed.address) == 1
    everyone = dict.fromkeys(nodes, "alive")
    await _until(lambda: all(_view(n.cluster) == everyone for n in nodes.values()))


def _names(n: int) -> list[str]:
    return [f"n{i:02d}" for i in range(n)]


async def test_sixteen_nodes_converge() -> None:
    async with (
        ActorSystem("app") as system,
        _cluster(system, _names(16)) as (_, nodes),
    ):
        await _join_all(nodes)
        for node in nodes.values():
            assert node.cluster.stats.malformed_packets == 0
            assert node.cluster.stats.rejected_messages == 0


async def test_a_node_stopped_without_leaving_is_failed_by_all_seven_others() -> None:
    names = _names(8)
    victim = names[3]
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberFailed) as failures,
        _cluster(system, names) as (_, nodes),
    ):
        await _join_all(nodes)
        await nodes[victim].stop()
        survivors = [n.cluster for name, n in nodes.items() if name != victim]
        await _until(lambda: all(_state(c, victim) is MemberState.FAILED for c in survivors))
        rest = dict.fromkeys((n for n in names if n != victim), "alive")
        await _until(lambda: all(_view(c) == rest for c in survivors))
        victims = [e.member for e in _drain(failures) if e.member.id == victim]
        assert len(victims) == len(survivors)  # one MemberFailed from each survivor
        assert all(m.state is MemberState.FAILED for m in victims)


async def test_a_restarted_node_rejoins_with_a_higher_incarnation() -> None:
    # memberlist's DeadNodeReclaimTime: a failed name may come back from a new address
    # (with the default 0 it could only once the others forgot it, after
    # gossip_to_the_dead_time)
    config = attrs.evolve(FAST, dead_node_reclaim_time=0.05)
    names = _names(4)
    victim = names[2]
    async with (
        ActorSystem("app") as system,
        _cluster(system, names, config) as (nursery, nodes),
    ):
        await _join_all(nodes)
        old_address = nodes[victim].cluster.address
        await nodes[victim].stop()
        survivors = [n.cluster for name, n in nodes.items() if name != victim]
        await _until(lambda: all(_state(c, victim) is MemberState.FAILED for c in survivors))
        failed_at = max(c.table.nodes[victim].member.incarnation for c in survivors)

        restarted: _Node = await nursery.start(_serve, system, victim, config)
        new_address = restarted.cluster.address
        assert new_address != old_address
        assert await restarted.cluster.join(survivors[0].address) == 1

        def back() -> bool:
            for cluster in survivors:
                node = cluster.table.nodes.get(victim)
                if node is None or node.member.state is not MemberState.ALIVE:
                    return False
                if node.member.address != new_address or node.member.incarnation <= failed_at:
                    return False
            return True

        await _until(back)
        # it learnt of its own death from the seed and refuted it
        assert restarted.cluster.local_member.incarnation > failed_at
        everyone = dict.fromkeys(names, "alive")
        await _until(lambda: all(_view(c) == everyone for c in [*survivors, restarted.cluster]))


async def test_a_paused_node_refutes_its_suspicion_and_is_never_failed() -> None:
    # no TCP fallback ping (memberlist's DisableTcpPings): only UDP can answer a probe,
    # and a suspicion timeout (4 s) well beyond the pause
    config = attrs.evolve(FAST, tcp_pings=False, suspicion_mult=40)
    names = _names(5)
    paused = names[1]
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberSuspect, MemberFailed) as events,
        _cluster(system, names, config) as (_, nodes),
    ):
        udp = faulty(nodes[paused].cluster)
        await _join_all(nodes)
        before = nodes[paused].cluster.local_member.incarnation
        others = [n.cluster for name, n in nodes.items() if name != paused]

        udp.paused = True  # neither hears nor says anything, but is not dead
        await _until(lambda: all(_state(c, paused) is MemberState.SUSPECT for c in others))
        udp.paused = False

        def refuted() -> bool:
            for cluster in others:
                member = cluster.table.nodes[paused].member
                if member.state is not MemberState.ALIVE or member.incarnation <= before:
                    return False
            return True

        await _until(refuted)
        assert udp.dropped > 0
        assert nodes[paused].cluster.local_member.incarnation > before
        everyone = dict.fromkeys(names, "alive")
        await _until(lambda: all(_view(n.cluster) == everyone for n in nodes.values()))
        assert events.dropped == 0
        about_it = [e for e in _drain(events) if e.member.id == paused]
        assert any(isinstance(e, MemberSuspect) for e in about_it)
        assert not any(isinstance(e, MemberFailed) for e in about_it)


async def test_twenty_percent_packet_loss_converges_without_false_failures() -> None:
    names = _names(8)
    # probes every 250 ms: a suspicion then lasts 1 s at least, which a loaded process
    # (8 nodes in one thread) cannot mistake for a failure, while 20 % loss still could
    config = GossipConfig.scaled(0.25, tcp_timeout=10.0)
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberFailed) as failures,
        _cluster(system, names, config) as (_, nodes),
    ):
        sockets = [faulty(n.cluster, loss=0.2, seed=i) for i, n in enumerate(nodes.values())]
        await _join_all(nodes)
        # a few probe periods: each node probes each other one about twice
        await trio.sleep(2 * len(names) * config.probe_interval)
        everyone = dict.fromkeys(names, "alive")
        await _until(lambda: all(_view(n.cluster) == everyone for n in nodes.values()))
        assert all(s.dropped > 0 for s in sockets)
        assert failures.dropped == 0
        assert _drain(failures) == []  # nobody was ever declared failed


async def test_the_push_pull_after_a_join_tells_early_joiners_of_later_ones() -> None:
    # no gossip, no probes and no periodic push-pull: what the first joiner knows can
    # only come from its join and from the push-pull that follows it
    config = attrs.evolve(
        FAST, gossip_nodes=0, probe_interval=1000.0, push_pull_interval=1000.0,
        join_sync_delay=2.0,
    )  # fmt: skip
    names = _names(6)
    async with ActorSystem("app") as system, _cluster(system, names, config) as (_, nodes):
        [seed, first, *later] = [n.cluster for n in nodes.values()]
        for cluster in [first, *later]:
            assert await cluster.join(seed.address) == 1
        # the first joiner met the seed alone; the seed has met everyone
        assert set(_view(first)) == {names[0], names[1]}
        assert set(_view(seed)) == set(names)
        await _until(lambda: set(_view(first)) == set(names))
        assert first.stats.streams_received == 0  # it asked: nobody pushed to it


@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
async def test_after_a_partition_heals_failed_members_are_joined_again(
    reconnect: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no TCP pings and no periodic push-pull: once each side has failed (and then
    # forgotten) the other, only the reconnect of failed members brings them together
    interval = 0.2
    config = attrs.evolve(
        FAST,
        tcp_pings=False,
        push_pull_interval=1e6,
        join_sync_delay=0.0,
        gossip_to_the_dead_time=0.5,
        reconnect_interval=interval if reconnect else 0.0,
    )
    partition = cut_push_pulls(monkeypatch)
    async with ActorSystem("app") as system, _cluster(system, ["a", "b"], config) as (_, nodes):
        a, b = nodes["a"].cluster, nodes["b"].cluster
        udp = faulty(a)
        await _join_all(nodes)

        partition.on = udp.paused = True
        # each side fails the other, then forgets it (gossip_to_the_dead_time)
        await _until(lambda: "b" not in a.table.nodes and "a" not in b.table.nodes)
        partition.on = udp.paused = False

        if reconnect:
            everyone = {"a": "alive", "b": "alive"}
            await _until(lambda: _view(a) == everyone and _view(b) == everyone)
            assert a.stats.reconnects + b.stats.reconnects >= 1
        else:
            await trio.sleep(20 * interval)  # as long as 20 reconnect rounds would take
            assert _view(a) == {"a": "alive"}
            assert _view(b) == {"b": "alive"}
            assert a.stats.reconnects == b.stats.reconnects == 0
