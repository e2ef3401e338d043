"""CRDT replication benchmarks: convergence of 8 and 32 nodes, deltas against full state.

Run from the repository root::

    python benchmarks/crdt.py          # full run: 10,000 increments and 1,000 adds
    python benchmarks/crdt.py --quick  # smoke run for CI: a tenth of that

For each cluster size (8 and 32 nodes), that many nodes run in this process, each an
``ActorSystem`` with its ``Transport``, ``GossipCluster`` and ``Replicator``, talking over
127.0.0.1. Once every node sees every other, the updates start on all nodes at once:
10,000 ``PNCounter`` increments and 1,000 ``ORSet`` adds, spread evenly over the nodes,
each a local write (``WriteLocal``). The figures:

1. **convergence**: the time from the first update until every node's counter reads
   10,000 and every node's set holds 1,000 elements, in seconds and in gossip rounds
   (the replicator's ``gossip_interval``, ``--interval``);
2. **bytes on the wire per update**: what the replicators really sent (deltas, plus the
   full states of anti-entropy) divided by the number of updates, against what a
   replicator that ships the full state to every other node on every update (the
   snapshot sync of the Go original) would send for the same updates; the ratio is
   full state / deltas. Bytes are those of the encoded values; the transport's own
   totals (frames, envelopes and digests included) are printed beside them.

A figure is measured, never asserted: the script exits 0 unless a benchmark fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
import trio
import trio.lowlevel
from _common import garbage_collection

from tinyagents import ActorRef, ActorSystem
from tinyagents.cluster import GossipCluster
from tinyagents.crdt import Key, ORSet, PNCounter, Replicator, ReplicatorConfig
from tinyagents.transport import Codec, Transport

COUNTER = Key("hits", PNCounter)
SET = Key("seen", ORSet)
DEADLINE = 120.0  # seconds a cluster may take to form or converge before the run fails


@attrs.define
class Node:
    system: ActorSystem
    transport: Transport
    cluster: GossipCluster
    replicator: Replicator


@attrs.frozen
class Figures:
    nodes: int
    increments: int
    adds: int
    interval: float
    local_seconds: float  # until every node made its own updates
    converged_seconds: float  # until every node saw every update
    replicated_bytes: int  # values the replicators sent (deltas and full states)
    transport_bytes: int  # everything the transports sent meanwhile
    full_state_bytes: int  # what full-state shipping would send for the same updates


class _NoRefs:
    """Wire hooks for values without refs or channels (the CRDTs): encoding only."""

    peer = "benchmark"

    def ref_to_wire(self, ref: ActorRef) -> list[object]:
        raise AssertionError("a CRDT holds no refs")

    def ref_from_wire(self, data: list[object]) -> ActorRef:
        raise AssertionError("a CRDT holds no refs")

    def channel_to_wire(self, channel: trio.abc.SendChannel[Any]) -> int:
        raise AssertionError("a CRDT holds no channels")

    def channel_from_wire(self, stream_id: int) -> trio.abc.SendChannel[Any]:
        raise AssertionError("a CRDT holds no channels")


def encoded_size(codec: Codec, value: object) -> int:
    return len(codec.to_wire(value, _NoRefs())[1])


def shares(total: int, parts: int) -> list[int]:
    """``total`` split in ``parts`` as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def full_state_shipping_bytes(
    replicas: Sequence[str], increments: int, adds: int, codec: Codec
) -> int:
    """The encoded bytes a full-state replicator sends for the same updates: after each
    one, the whole new state of its key to each of the ``len(replicas) - 1`` others.
    (The updates are replayed in the same spread over the replicas, interleaved.)"""
    others = len(replicas) - 1
    total = 0
    counter = PNCounter()
    for replica, n in zip(replicas, shares(increments, len(replicas)), strict=True):
        for _ in range(n):
            counter = counter.increment(replica)[0]
            total += encoded_size(codec, counter) * others
    elements = ORSet[str]()
    for replica, n in zip(replicas, shares(adds, len(replicas)), strict=True):
        for i in range(n):
            elements = elements.add(replica, f"{replica}-{i}")[0]
            total += encoded_size(codec, elements) * others
    return total


async def wait_until(condition: Any, what: str) -> None:
    """Poll ``condition`` every 5 ms (the granularity of the convergence figures)."""
    with trio.move_on_after(DEADLINE) as scope:
        while not condition():  # noqa: ASYNC110 - polls state the nodes' traffic changes
            await trio.sleep(0.005)
    if scope.cancelled_caught:
        raise RuntimeError(f"no {what} after {DEADLINE:g} s")


async def run_node(
    name: str, config: ReplicatorConfig, stop: trio.Event, *, task_status: trio.TaskStatus[Node]
) -> None:
    async with (
        ActorSystem(name) as system,
        Transport(system) as transport,
        GossipCluster(system, bind=("127.0.0.1", 0)) as cluster,
        Replicator(system, cluster, config=config) as replicator,
    ):
        task_status.started(Node(system, transport, cluster, replicator))
        await stop.wait()


async def measure(size: int, increments: int, adds: int, interval: float) -> Figures:
    config = ReplicatorConfig(gossip_interval=interval, timeout=30.0)
    stop = trio.Event()
    # each node in its own task, so that all leave the cluster at once at the end
    async with trio.open_nursery() as nursery:
        nodes: list[Node] = [
            await nursery.start(run_node, f"n{i:02}", config, stop) for i in range(size)
        ]
        for node in nodes[1:]:
            await node.cluster.join(nodes[0].cluster.address)
        await wait_until(
            lambda: all(len(node.cluster.members()) == size for node in nodes), "membership"
        )
        await trio.sleep(2 * interval)  # every replicator has met every other
        replicated_before = sum(
            node.replicator.stats.delta_bytes_sent + node.replicator.stats.full_state_bytes_sent
            for node in nodes
        )
        transport_before = sum(node.transport.stats.bytes_sent for node in nodes)

        def converged() -> bool:
            for node in nodes:
                counter = node.replicator.peek(COUNTER)
                elements = node.replicator.peek(SET)
                if counter is None or counter.value != increments:
                    return False
                if elements is None or len(elements) != adds:
                    return False
            return True

        async def work(node: Node, increments: int, adds: int) -> None:
            r = node.replicator
            pending = [("inc", i) for i in range(increments)] + [("add", i) for i in range(adds)]
            # interleave the two kinds, so both keys change all along
            pending.sort(key=lambda item: item[1] / (increments if item[0] == "inc" else adds))
            for n, (kind, i) in enumerate(pending):
                if kind == "inc":
                    await r.update(COUNTER, lambda c: c.increment(r.replica_id))
                else:
                    await r.update(SET, lambda s, i=i: s.add(r.replica_id, f"{r.node}-{i}"))
                if n % 50 == 49:
                    await trio.lowlevel.checkpoint()  # the other nodes' updates run meanwhile

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for node, n_inc, n_add in zip(
                nodes, shares(increments, size), shares(adds, size), strict=True
            ):
                nursery.start_soon(work, node, n_inc, n_add)
        local = time.perf_counter() - start
        await wait_until(converged, "convergence")
        converged_after = time.perf_counter() - start
        replicated = (
            sum(
                node.replicator.stats.delta_bytes_sent + node.replicator.stats.full_state_bytes_sent
                for node in nodes
            )
            - replicated_before
        )
        transport_bytes = sum(node.transport.stats.bytes_sent for node in nodes) - transport_before
        replicas = [node.replicator.replica_id for node in nodes]
        stop.set()
    full = full_state_shipping_bytes(replicas, increments, adds, Codec())
    return Figures(
        size, increments, adds, interval, local, converged_after, replicated, transport_bytes, full
    )


def report(figures: list[Figures], quick: bool) -> None:
    first = figures[0]
    print(
        f"tinyagents CRDT benchmarks, {'quick' if quick else 'full'} run: "
        f"{first.increments:,} PNCounter increments and {first.adds:,} ORSet adds, spread "
        f"over the nodes, gossip every {first.interval:g} s, over 127.0.0.1"
    )
    print(
        f"  {'nodes':>5}{'local writes s':>16}{'converged s':>13}{'rounds':>8}"
        f"{'delta B/update':>16}{'full B/update':>15}{'full/delta':>12}{'wire B/update':>15}"
    )
    for f in figures:
        updates = f.increments + f.adds
        delta = f.replicated_bytes / updates
        full = f.full_state_bytes / updates
        print(
            f"  {f.nodes:>5}{f.local_seconds:>16.3f}{f.converged_seconds:>13.3f}"
            f"{f.converged_seconds / f.interval:>8.1f}{delta:>16,.1f}{full:>15,.0f}"
            f"{full / delta:>11.0f}x{f.transport_bytes / updates:>15,.1f}"
        )
    print(
        "delta B/update: encoded values the replicators sent (deltas and anti-entropy),\n"
        "per update; full B/update: a replicator shipping the whole new state to every\n"
        "other node on each update; wire B/update: all transport bytes (frames, digests)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CRDT replication over the cluster")
    parser.add_argument("--quick", action="store_true", help="a tenth of the updates")
    parser.add_argument(
        "--interval", type=float, default=0.2, help="the replicators' gossip interval (s)"
    )
    parser.add_argument(
        "--nodes", type=int, nargs="+", default=[8, 32], help="cluster sizes to measure"
    )
    args = parser.parse_args(argv)
    increments, adds = (1_000, 100) if args.quick else (10_000, 1_000)
    figures = []
    with garbage_collection(False):
        for size in args.nodes:
            print(f"measuring {size} nodes...", file=sys.stderr)
            figures.append(trio.run(measure, size, increments, adds, args.interval))
    report(figures, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
