"""Three gossip nodes in one process: they join, list their members, and see one leave.

Each node is a :class:`~tinyagents.cluster.GossipCluster` (memberlist's protocol: SWIM
with Lifeguard) on its own actor system and its own free port of 127.0.0.1. The timings
are memberlist's LAN defaults scaled down tenfold (a probe every 100 ms), so that the
whole run takes a couple of seconds. Nodes 2 and 3 join node 1; once every node sees
all three, each prints its member list (id, address, state, tags). Then node 3 leaves
gracefully, and nodes 1 and 2 print the ``MemberLeft`` event they receive on
``system.events``. Everything stays on loopback: no network is needed.

Run it with::

    python examples/cluster-gossip/main.py
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio

from tinyagents import ActorSystem
from tinyagents.cluster import GossipCluster, GossipConfig, Member, MemberJoined, MemberLeft

CONFIG = GossipConfig.scaled(0.1)
"""memberlist's LAN timings, ten times shorter: fine on loopback, too eager for a LAN."""


def describe(member: Member) -> str:
    host, port = member.address
    tags = ", ".join(f"{key}={value}" for key, value in sorted(member.tags.items()))
    return f"{member.id:<7} {host}:{port:<5}  {member.state.label:<7} {{{tags}}}"


async def wait_for_members(cluster: GossipCluster, system: ActorSystem, count: int) -> None:
    """Wait until ``cluster`` sees ``count`` members, woken by its ``MemberJoined`` events."""
    async with system.events.subscribe(MemberJoined) as joined:
        while len(cluster.members()) < count:
            await joined.receive()


async def watch_for_leave(
    cluster: GossipCluster,
    system: ActorSystem,
    who: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Print the ``MemberLeft`` event about ``who`` when this node receives it."""
    async with system.events.subscribe(MemberLeft) as events:
        task_status.started()  # subscribed: no event can be missed from here on
        async for event in events:
            if event.member.id == who:
                print(f"[{cluster.local_member.id}] saw {who} leave: {describe(event.member)}")
                return


async def main() -> None:
    names = ["node-1", "node-2", "node-3"]
    async with AsyncExitStack() as stack:
        systems = [await stack.enter_async_context(ActorSystem(name)) for name in names]
        clusters = [
            await stack.enter_async_context(
                GossipCluster(
                    system,
                    id=system.name,
                    bind=("127.0.0.1", 0),
                    tags={"role": "demo", "index": str(index)},
                    config=CONFIG,
                )
            )
            for index, system in enumerate(systems, start=1)
        ]
        first = clusters[0]
        print(f"node-1 listens on {first.address[0]}:{first.address[1]}")

        with trio.fail_after(10):
            for cluster in clusters[1:]:
                await cluster.join(first.address)
                print(f"{cluster.local_member.id} joined through node-1")
            for cluster, system in zip(clusters, systems, strict=True):
                await wait_for_members(cluster, system, len(clusters))

        for cluster in clusters:
            print(f"\nmembers seen by {cluster.local_member.id}:")
            for member in cluster.members():
                print(f"  {describe(member)}")
        print()

        leaving = clusters[2]
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for cluster, system in zip(clusters[:2], systems[:2], strict=True):
                    await nursery.start(watch_for_leave, cluster, system, leaving.local_member.id)
                print(f"{leaving.local_member.id} leaves gracefully")
                await leaving.leave()

        for cluster in clusters[:2]:
            remaining = ", ".join(member.id for member in cluster.members())
            print(f"[{cluster.local_member.id}] members now: {remaining}")
    print("all nodes stopped")


if __name__ == "__main__":
    trio.run(main)
