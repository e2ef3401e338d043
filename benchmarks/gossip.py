"""Gossip cluster benchmarks: membership convergence, and failure detection against Serf.

Run from the repository root::

    python benchmarks/gossip.py          # full run, about a minute and a half
    python benchmarks/gossip.py --quick  # smoke run for CI, under a minute

Every node runs with memberlist's LAN timings (``GossipConfig()``: a probe every 1 s,
gossip every 200 ms, push-pull every 30 s, suspicion multiplier 4), all on 127.0.0.1:

1. time to full membership, for 8, 16 and 32 :class:`~tinyagents.cluster.GossipCluster`
   nodes in this one process: every node is started, then all but the first join the
   first at once; timed until every node lists all of them as members (information: no
   target);
2. time to detect a failure: three members, one of them killed without a leave, timed
   until both survivors have marked it failed. Ours: three ``GossipCluster`` nodes, one
   cancelled (its sockets close, it says nothing), waiting for ``MemberFailed`` on the
   survivors' ``system.events``. Serf's: three real ``serf agent`` processes
   (:class:`~tinyagents.testing.SerfAgent`, the same LAN defaults), one killed with
   SIGKILL, polling ``serf members`` of the survivors until it shows ``failed`` (the
   polling adds some tens of milliseconds to Serf's figure). The target is ours <= Serf's.

Failure detection depends on which member probes the dead one first and when, so each
figure is the median of several trials. The results are printed as a table with PASS or
MISS against each target; a miss is reported, not asserted: the script always exits 0
unless a benchmark itself fails. Without ``serf`` on ``PATH`` the Serf comparison is
skipped, and the output says so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import attrs
import trio
import trio.testing

from tinyagents import ActorSystem
from tinyagents.cluster import GossipCluster, GossipConfig, MemberFailed, MemberJoined
from tinyagents.testing import SerfAgent
from tinyagents.testing._serf import SerfNotInstalled, serf_binary

# -- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run of the whole script."""

    cluster_sizes: tuple[int, ...]
    membership_trials: int
    failure_trials: int


FULL = Sizes(cluster_sizes=(8, 16, 32), membership_trials=3, failure_trials=5)
QUICK = Sizes(cluster_sizes=(8, 16, 32), membership_trials=1, failure_trials=2)

CONFIG = GossipConfig()
"""memberlist's ``DefaultLANConfig``, which Serf's agent uses too."""
FAILURE_NODES = 3
TIMEOUT = 60.0
"""The longest any one measurement may take before the script gives up on it."""


# -- our nodes ---------------------------------------------------------------------------


@attrs.frozen
class Node:
    """A running gossip node, and the scope that stops it without a leave."""

    system: ActorSystem
    cluster: GossipCluster
    scope: trio.CancelScope


async def run_node(
    name: str,
    *,
    task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one node until its scope is cancelled (which stops it without a leave)."""
    with trio.CancelScope() as scope:
        async with (
            ActorSystem(name) as system,
            GossipCluster(system, id=name, bind=("127.0.0.1", 0), config=CONFIG) as cluster,
        ):
            task_status.started(Node(system, cluster, scope))
            await trio.sleep_forever()


async def wait_until(node: Node, kind: type, done: Callable[[], bool]) -> float:
    """Wait until ``done()`` holds, rechecking on each ``kind`` event of the node's
    system; return the time it first held."""
    async with node.system.events.subscribe(kind) as events:
        while not done():
            await events.receive()
    return time.perf_counter()


async def gather(functions: list[Callable[[], Awaitable[float]]]) -> list[float]:
    """Run the functions concurrently; their results, in order."""
    results = [0.0] * len(functions)

    async def run(index: int) -> None:
        results[index] = await functions[index]()

    async with trio.open_nursery() as nursery:
        for index in range(len(functions)):
            nursery.start_soon(run, index)
    return results


async def start_nodes(nursery: trio.Nursery, count: int, prefix: str) -> list[Node]:
    nodes: list[Node] = []
    for index in range(count):
        nodes.append(await nursery.start(run_node, f"{prefix}-{index + 1}"))
    return nodes


def converged(node: Node, count: int) -> Callable[[], bool]:
    return lambda: len(node.cluster.members()) >= count


async def full_membership(count: int) -> float:
    """Seconds from all joins starting until all ``count`` nodes list all of them."""
    async with trio.open_nursery() as nursery:
        nodes = await start_nodes(nursery, count, "node")
        seed = nodes[0].cluster.address
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as waiting:
                ends: list[float] = []

                async def wait(node: Node) -> None:
                    ends.append(await wait_until(node, MemberJoined, converged(node, count)))

                for node in nodes:
                    waiting.start_soon(wait, node)
                await trio.testing.wait_all_tasks_blocked()  # every waiter is subscribed
                start = time.perf_counter()
                for node in nodes[1:]:
                    waiting.start_soon(node.cluster.join, seed)
        nursery.cancel_scope.cancel()
    return max(ends) - start


async def our_failure_detection() -> float:
    """Seconds from a node's death until both other nodes have marked it failed."""
    async with trio.open_nursery() as nursery:
        nodes = await start_nodes(nursery, FAILURE_NODES, "ours")
        with trio.fail_after(TIMEOUT):
            for node in nodes[1:]:
                await node.cluster.join(nodes[0].cluster.address)
            await gather(
                [
                    partial(wait_until, node, MemberJoined, converged(node, FAILURE_NODES))
                    for node in nodes
                ]
            )
            victim, survivors = nodes[-1], nodes[:-1]
            name = victim.cluster.local_member.id

            async def detect(node: Node) -> float:
                async with node.system.events.subscribe(MemberFailed) as events:
                    async for event in events:
                        if event.member.id == name:
                            break
                return time.perf_counter()

            async with trio.open_nursery() as waiting:
                ends: list[float] = []

                async def wait(node: Node) -> None:
                    ends.append(await detect(node))

                for node in survivors:
                    waiting.start_soon(wait, node)
                await trio.testing.wait_all_tasks_blocked()
                start = time.perf_counter()
                victim.scope.cancel()
        nursery.cancel_scope.cancel()
    return max(ends) - start


# -- Serf --------------------------------------------------------------------------------


async def serf_failure_detection() -> float:
    """Seconds from a Serf agent's SIGKILL until both other agents list it ``failed``."""
    async with (
        SerfAgent("serf-1", log_level="warn") as first,
        SerfAgent("serf-2", join=[first], log_level="warn") as second,
        SerfAgent("serf-3", join=[first], log_level="warn") as victim,
    ):
        agents = [first, second, victim]
        with trio.fail_after(TIMEOUT):
            for agent in agents:  # everyone sees everyone alive
                for other in agents:
                    await agent.await_status(other.name, "alive", timeout=TIMEOUT)
            survivors = agents[:-1]
            start = time.perf_counter()
            victim.kill()
            ends = await gather([partial(seen_failed, agent, victim.name) for agent in survivors])
        return max(ends) - start


async def seen_failed(agent: SerfAgent, name: str) -> float:
    """Poll the agent's members as fast as the CLI answers until ``name`` is failed."""
    while True:
        members = await agent.amembers()
        if any(m.name == name and m.status == "failed" for m in members):
            return time.perf_counter()


# -- reporting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One figure; ``peer`` and ``target`` (the most ours / peer may be) when compared."""

    name: str
    ours: float
    peer_name: str = ""
    peer: float | None = None
    target: float | None = None


def print_table(rows: list[Row]) -> None:
    header = ("measurement", "tinyagents", "peer", "peer figure", "ratio", "target", "")
    lines = [header]
    for row in rows:
        peer = ratio = target = verdict = "-"
        if row.peer is not None:
            peer = f"{row.peer:.2f} s"
            value = row.ours / row.peer
            ratio = f"{value:.2f}x"
            if row.target is not None:
                target = f"<= {row.target:g}x"
                verdict = "PASS" if value <= row.target else "MISS"
        lines.append(
            (
                row.name,
                f"{row.ours:.2f} s",
                row.peer_name or "-",
                peer,
                ratio,
                target,
                verdict if verdict != "-" else "",
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    right = {1, 3, 4}
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths).rstrip())


# -- main ----------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def median_of(trials: int, function: Callable[[], Awaitable[float]]) -> tuple[float, list[float]]:
    figures = [trio.run(function) for _ in range(trials)]
    return statistics.median(figures), figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gossip membership and failure detection")
    parser.add_argument("--quick", action="store_true", help="fewer trials, for a smoke run")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    try:
        serf: str | None = serf_binary()
    except SerfNotInstalled:
        serf = None

    started = time.perf_counter()
    rows: list[Row] = []
    details: list[str] = []
    for count in sizes.cluster_sizes:
        progress(f"full membership of {count} nodes, {sizes.membership_trials} trial(s)")

        async def membership(count: int = count) -> float:
            return await full_membership(count)

        figure, figures = median_of(sizes.membership_trials, membership)
        rows.append(Row(f"full membership, {count} nodes", figure))
        details.append(f"membership {count}: " + ", ".join(f"{f:.2f}" for f in figures))

    progress(f"failure detection, ours: {sizes.failure_trials} trial(s)")
    ours, figures = median_of(sizes.failure_trials, our_failure_detection)
    details.append("failure, ours: " + ", ".join(f"{f:.2f}" for f in figures))
    if serf is not None:
        progress(f"failure detection, Serf: {sizes.failure_trials} trial(s)")
        theirs, figures = median_of(sizes.failure_trials, serf_failure_detection)
        details.append("failure, Serf: " + ", ".join(f"{f:.2f}" for f in figures))
        rows.append(Row("failure marked failed", ours, "Serf agents", theirs, target=1.0))
        serf_version = subprocess.run(
            [serf, "version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[:1]
    else:
        rows.append(Row("failure marked failed", ours))
    elapsed = time.perf_counter() - started

    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}" for package in ("tinyagents", "trio")
    )
    print(
        f"tinyagents gossip benchmarks, {'quick' if args.quick else 'full'} run: "
        f"{platform.python_implementation()} {platform.python_version()}, {versions}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "timings: memberlist's LAN defaults (probe 1 s, gossip 0.2 s, push-pull 30 s, "
        f"suspicion mult 4); figures are medians of {sizes.membership_trials} "
        f"(membership) and {sizes.failure_trials} (failure) trials, on 127.0.0.1"
    )
    print(f"failure detection: {FAILURE_NODES} members, one killed, until both others mark it")
    print()
    print_table(rows)
    print()
    print("trials (s): " + "; ".join(details))
    if serf is None:
        print("Serf comparison skipped: `serf` is not installed (apt-get install -y serf).")
    else:
        print(f"Serf: {serf} ({' '.join(serf_version) or 'version unknown'})")
    print(
        "ratio = tinyagents / Serf. Targets are goals: a MISS is reported, "
        f"not an error. Took {elapsed:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
