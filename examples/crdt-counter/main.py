"""Three nodes keep one PNCounter, each changing its own replica, and converge.

Each node is an :class:`~tinyagents.ActorSystem` with a
:class:`~tinyagents.transport.Transport`, a :class:`~tinyagents.cluster.GossipCluster`
and a :class:`~tinyagents.crdt.Replicator`, on free ports of 127.0.0.1. Once the three
see each other, every node counts on its own at the same moment, without asking the
others (``WriteLocal``): node-1 adds 10 visits, node-2 adds 20, node-3 adds 30 and
takes 5 back. Each node subscribes to the key and prints its replica every time it
changes, so you see the deltas arrive, gossip round after gossip round (every 0.25 s
here, 2 s by default), until the three replicas read the same 55. No consensus, no
leader: merging the replicas gives the same counter whatever the order.

Finally node-1 reads with ``ReadMajority`` (its replica merged with one other node's)
and node-3 writes with ``WriteAll`` (it returns once every node has the change).

Offline: the only network is 127.0.0.1. Run it with::

    python examples/crdt-counter/main.py
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import attrs
import trio

from tinyagents import ActorSystem
from tinyagents.cluster import GossipCluster, GossipConfig
from tinyagents.crdt import Key, PNCounter, ReadMajority, Replicator, ReplicatorConfig, WriteAll
from tinyagents.transport import Transport

VISITS = Key("visits", PNCounter)
GOSSIP = GossipConfig.scaled(0.1)  # memberlist's timings, ten times shorter (loopback)
REPLICATION = ReplicatorConfig(gossip_interval=0.25)
WORK = {"node-1": (10, 0), "node-2": (20, 0), "node-3": (30, 5)}  # increments, decrements
TOTAL = sum(up - down for up, down in WORK.values())


@attrs.define
class Node:
    name: str
    cluster: GossipCluster
    replicator: Replicator


def describe(counter: PNCounter) -> str:
    """The value and what each replica contributed (ids are node:incarnation)."""
    parts = []
    for replica in sorted(set(counter.increments.counts) | set(counter.decrements.counts)):
        up = counter.increments.counts.get(replica, 0)
        down = counter.decrements.counts.get(replica, 0)
        parts.append(f"{replica.split(':')[0]} +{up}" + (f" -{down}" if down else ""))
    return f"{counter.value:>3}  ({', '.join(parts)})"


async def watch(node: Node, start: float, *, task_status: trio.TaskStatus[None]) -> None:
    """Print ``node``'s replica at each change, until it reads the total."""
    async with node.replicator.subscribe(VISITS) as changes:
        task_status.started()
        async for counter in changes:
            elapsed = trio.current_time() - start
            print(f"  {elapsed:5.2f}s  {node.name}: {describe(counter)}")
            if counter.value == TOTAL:
                return


async def count(node: Node) -> None:
    """This node's own work: local writes only, each applied at once."""
    r = node.replicator
    ups, downs = WORK[node.name]
    for _ in range(ups):
        await r.update(VISITS, lambda c: c.increment(r.replica_id))
    if downs:
        await r.update(VISITS, lambda c: c.decrement(r.replica_id, downs))


async def main() -> None:
    async with AsyncExitStack() as stack:
        nodes = []
        for name in WORK:
            system = await stack.enter_async_context(ActorSystem(name))
            await stack.enter_async_context(Transport(system))
            cluster = await stack.enter_async_context(GossipCluster(system, config=GOSSIP))
            replicator = await stack.enter_async_context(
                Replicator(system, cluster, config=REPLICATION)
            )
            nodes.append(Node(name, cluster, replicator))
        for node in nodes[1:]:
            await node.cluster.join(nodes[0].cluster.address)
        while any(len(node.cluster.members()) < len(nodes) for node in nodes):  # noqa: ASYNC110
            await trio.sleep(0.05)
        print(f"3 nodes see each other; each counts on its own, expecting {TOTAL} in the end:")

        start = trio.current_time()
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for node in nodes:
                    await nursery.start(watch, node, start)
                for node in nodes:
                    nursery.start_soon(count, node)
        print(f"converged after {trio.current_time() - start:.2f}s: every replica reads {TOTAL}")

        first, _, third = nodes
        merged = await first.replicator.get(VISITS, read=ReadMajority(), timeout=5)
        assert merged is not None
        print(f"node-1 reads with ReadMajority: {merged.value}")
        r = third.replicator
        await r.update(VISITS, lambda c: c.increment(r.replica_id, 45), write=WriteAll(), timeout=5)
        values = []
        for node in nodes:
            counter = node.replicator.peek(VISITS)
            values.append(f"{node.name} {counter.value if counter else None}")
        print(f"node-3 adds 45 with WriteAll; on return every node has it: {', '.join(values)}")


if __name__ == "__main__":
    trio.run(main)
