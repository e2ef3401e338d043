"""The transport with a GossipCluster: members advertise their transport address in
their tags, refs need only a node id, and a node that leaves ends its watches and asks."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

from tinyagents import Actor, ActorSystem, Context, StopReason, Terminated
from tinyagents.cluster import GossipCluster, MemberJoined
from tinyagents.errors import NodeUnreachable, NoMembers
from tinyagents.registry import RingRegistry
from tinyagents.transport import TRANSPORT_TAG, Transport

GUARD = 20


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


class Watcher(Actor):
    def __init__(self, box: list[Any], got: trio.Event) -> None:
        self.box = box
        self.got = got

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, Terminated):
            self.box.append(message)
            self.got.set()
            return None
        ctx.watch(message)
        return "watching"


async def test_members_advertise_their_transport_and_leaving_ends_watches() -> None:
    with trio.fail_after(GUARD):
        async with (
            ActorSystem("a") as system_a,
            Transport(system_a) as transport_a,
            GossipCluster(system_a, tags={"role": "asker"}) as cluster_a,
        ):
            assert cluster_a.local_member.id == "a"
            assert cluster_a.local_member.tags[TRANSPORT_TAG] == "{}:{}".format(
                *transport_a.address
            )
            assert cluster_a.local_member.tags["role"] == "asker"
            box: list[Any] = []
            got = trio.Event()
            watcher = await system_a.spawn(lambda: Watcher(box, got), name="watcher")
            async with (
                ActorSystem("b") as system_b,
                Transport(system_b),
                GossipCluster(system_b) as cluster_b,
            ):
                await system_b.spawn(Echo, name="echo")
                async with system_a.events.subscribe(MemberJoined) as joined:
                    await cluster_b.join(cluster_a.address)
                    async for event in joined:
                        if event.member.id == "b":
                            break
                await trio.testing.wait_all_tasks_blocked()  # a's transport saw the event
                # no address in the URI: the cluster's tags said where b listens
                echo = system_a.ref_for("tinyagents://b/user/echo")
                assert await echo.ask("found through gossip", timeout=10) == "found through gossip"
                assert await watcher.ask(echo, timeout=10) == "watching"
            # b left the cluster (and stopped): the watch ends with NodeUnreachable
            await got.wait()
            (notice,) = box
            assert notice.reason in (StopReason.NODE_UNREACHABLE, StopReason.STOPPED)
            try:
                await system_a.ref_for("tinyagents://b/user/echo").ask("gone?", timeout=math.inf)
            except NodeUnreachable:
                pass
            else:
                raise AssertionError("an ask to a node that left must fail")


async def test_a_member_is_reachable_as_soon_as_the_cluster_lists_it() -> None:
    # the transport also follows member events, but they arrive later: a ref made
    # the moment members() shows the node must not be a dead letter meanwhile
    with trio.fail_after(GUARD):
        async with (
            ActorSystem("a") as system_a,
            Transport(system_a),
            GossipCluster(system_a) as cluster_a,
            ActorSystem("b") as system_b,
            Transport(system_b),
            GossipCluster(system_b) as cluster_b,
        ):
            await system_a.spawn(Echo, name="echo")
            await cluster_b.join(cluster_a.address)
            assert "a" in {member.id for member in cluster_b.members()}
            echo = system_b.ref_for("tinyagents://a/user/echo")
            assert await echo.ask("at once", timeout=10) == "at once"


class Named(Actor):
    def __init__(self, node: str) -> None:
        self.node = node

    async def receive(self, ctx: Context, message: Any) -> Any:
        return (self.node, message)


async def test_a_ring_registry_places_keys_on_members_and_reaches_them() -> None:
    with trio.fail_after(GUARD):
        async with (
            ActorSystem("a") as system_a,
            Transport(system_a),
            GossipCluster(system_a) as cluster_a,
            ActorSystem("b") as system_b,
            Transport(system_b),
            GossipCluster(system_b) as cluster_b,
        ):
            await system_a.spawn(lambda: Named("a"), name="shard")
            await system_b.spawn(lambda: Named("b"), name="shard")
            ring = RingRegistry(system_a, cluster_a, "/user/shard")
            assert ring.members == ["a"]
            async with system_a.events.subscribe(MemberJoined) as joined:
                await cluster_b.join(cluster_a.address)
                async for event in joined:
                    if event.member.id == "b":
                        break
            await trio.testing.wait_all_tasks_blocked()
            assert ring.members == ["a", "b"]
            other = RingRegistry(system_b, cluster_b, "/user/shard")
            owners: dict[str, str] = {}
            for i in range(40):
                key = f"customer-{i}"
                owner = ring.node_for(key)
                assert other.node_for(key) == owner  # every node agrees
                # (a tuple crosses nodes as a list, as msgpack has one array type)
                assert list(await ring.ref_for(key).ask(key, timeout=10)) == [owner, key]
                owners[key] = owner
            assert set(owners.values()) == {"a", "b"}
            only_b = RingRegistry(system_a, cluster_a, "/user/shard", select=lambda m: m.id == "b")
            assert {only_b.node_for(key) for key in owners} == {"b"}
            nobody = RingRegistry(system_a, cluster_a, "/user/shard", select=lambda m: False)
            with pytest.raises(NoMembers):
                nobody.ref_for("anything")


def test_a_ring_registry_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="ActorSystem"):
        RingRegistry(object(), object(), "/user/shard")  # type: ignore[arg-type]
