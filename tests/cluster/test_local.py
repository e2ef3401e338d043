"""LocalCluster: a one-node cluster whose member events go to ``system.events``."""

from __future__ import annotations

import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.cluster import (
    Cluster,
    ClusterError,
    JoinFailed,
    LocalCluster,
    Member,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberUpdated,
    ProtocolVersions,
)
from tinyagents.errors import SystemNotRunning


def _drain(events: trio.abc.ReceiveChannel[object]) -> list[object]:
    received = []
    while True:
        try:
            received.append(events.receive_nowait())
        except trio.WouldBlock:
            return received


async def test_a_local_cluster_publishes_joined_then_left_on_system_events() -> None:
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberEvent) as events,
    ):
        async with LocalCluster(system, tags={"role": "worker"}) as cluster:
            local = cluster.local_member
            assert local.id == "app"
            assert local.tags == {"role": "worker"}
            assert cluster.members() == [local]
            assert _drain(events) == [MemberJoined(local)]
        left = cluster.local_member
        assert left.state is MemberState.LEFT
        assert cluster.members() == []
        assert _drain(events) == [MemberLeft(left)]


async def test_leave_is_idempotent_and_final() -> None:
    async with ActorSystem("app") as system, system.events.subscribe(MemberLeft) as events:
        async with LocalCluster(system, id="node-1") as cluster:
            await cluster.leave()
            await cluster.leave()
            assert [e.member.id for e in _drain(events)] == ["node-1"]
            with pytest.raises(ClusterError, match="has left the cluster"):
                await cluster.join()
            with pytest.raises(ClusterError, match="has left the cluster"):
                await cluster.update(meta=b"x")
        assert _drain(events) == []  # leaving the block after leave() publishes nothing more


async def test_join_without_seeds_returns_0_and_with_seeds_raises() -> None:
    async with ActorSystem("app") as system, LocalCluster(system) as cluster:
        assert await cluster.join() == 0
        with pytest.raises(JoinFailed, match="single node in-process: it cannot join") as info:
            await cluster.join("10.0.0.2:7946", ("10.0.0.3", 7946))
        assert info.value.seeds == ("10.0.0.2:7946", "10.0.0.3:7946")
        assert cluster.members() == [cluster.local_member]


async def test_update_raises_the_incarnation_and_publishes_member_updated() -> None:
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberUpdated) as events,
        LocalCluster(system, meta=b"db") as cluster,
    ):
        assert cluster.local_member.tags == {"role": "db"}
        member = await cluster.update(tags={"role": "web", "zone": "a"})
        assert member is cluster.local_member
        assert member.incarnation == 1
        assert member.tags == {"role": "web", "zone": "a"}
        assert _drain(events) == [MemberUpdated(member)]
        await cluster.update(meta=b"")
        assert cluster.local_member.incarnation == 2
        with pytest.raises(TypeError, match="meta or tags"):
            await cluster.update()
        with pytest.raises(TypeError, match="not both"):
            await cluster.update(meta=b"", tags={})


async def test_the_local_member_is_configurable() -> None:
    versions = ProtocolVersions(pcur=3)
    async with (
        ActorSystem("app") as system,
        LocalCluster(
            system, id="n1", address=("10.1.1.1", 7000), meta=b"x", versions=versions
        ) as cluster,
    ):
        assert cluster.local_member == Member("n1", ("10.1.1.1", 7000), b"x", versions=versions)
        assert repr(cluster) == "<LocalCluster 'n1' running>"


async def test_a_local_cluster_satisfies_the_protocol() -> None:
    async with ActorSystem("app") as system, LocalCluster(system) as cluster:
        assert isinstance(cluster, Cluster)
        protocol: Cluster = cluster
        assert protocol.members() == [protocol.local_member]


async def test_it_needs_a_running_system_and_starts_once() -> None:
    system = ActorSystem("idle")
    with pytest.raises(SystemNotRunning, match="not running"):
        async with LocalCluster(system):
            pass  # pragma: no cover
    async with ActorSystem("app") as system:
        cluster = LocalCluster(system)
        with pytest.raises(ClusterError, match="has not been started"):
            await cluster.join()
        assert cluster.members() == []
        async with cluster:
            pass
        with pytest.raises(ClusterError, match="already started"):
            async with cluster:
                pass  # pragma: no cover


async def test_no_subscriber_no_problem_and_other_subscribers_see_everything() -> None:
    async with ActorSystem("app") as system:
        async with LocalCluster(system):
            pass
        async with system.events.subscribe() as events:
            async with LocalCluster(system, id="second"):
                pass
            kinds = [type(event) for event in _drain(events)]
        assert kinds == [MemberJoined, MemberLeft]


def test_meta_and_tags_are_exclusive() -> None:
    with pytest.raises(TypeError, match="not both"):
        LocalCluster(ActorSystem("app"), meta=b"", tags={})
