"""Actor micro-benchmarks: tinyagents against raw trio and against pykka.

Run from the repository root::

    python benchmarks/actors.py          # full run, a few minutes at most
    python benchmarks/actors.py --quick  # smoke run for CI, well under 20 s

Four figures are measured for tinyagents and for two peers, a hand-written raw trio
equivalent (the floor of what a trio actor can cost) and pykka's ``ThreadingActor``
(the thread-based actor library tinyagents replaces):

1. tell throughput (messages/s), timed from the first send until the receiver has
   handled the last message;
2. ask round trips/s: sequential request/reply, each awaiting its reply;
3. spawn rate (actors/s), timed until every new actor is running and idle;
4. memory per idle actor (bytes): the growth of tracemalloc-traced memory, in a
   separate pass so that tracing does not slow the timed runs.

Every timed figure is the best of several runs, since a shared machine is noisy. The
results are printed as one table of rows (measurement, tinyagents, peer, ratio,
target), with PASS or MISS against each target. A miss is reported, not asserted:
the script always exits 0 unless a benchmark itself fails.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import math
import os
import platform
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import pykka
import trio
import trio.testing
from _common import garbage_collection

from tinyagents import Actor, ActorSystem, Context
from tinyagents.router import Broadcast, ConsistentHash, LeastLoaded, Random, RoundRobin

# -- sizes and timing ------------------------------------------------------------------


class Counts(NamedTuple):
    """How many operations one measurement does with each implementation.

    They differ so that each timed run lasts long enough (about 0.3-1 s) to time
    reliably, whatever the implementation's speed.
    """

    tinyagents: int
    trio: int
    pykka: int


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run of the whole script."""

    tell: Counts
    router: int
    ask: Counts
    spawn: Counts
    memory: Counts
    repeats: int


FULL = Sizes(
    tell=Counts(tinyagents=300_000, trio=100_000, pykka=100_000),
    router=100_000,
    ask=Counts(tinyagents=15_000, trio=20_000, pykka=15_000),
    spawn=Counts(tinyagents=20_000, trio=30_000, pykka=2_000),
    memory=Counts(tinyagents=100_000, trio=100_000, pykka=5_000),
    repeats=5,
)
QUICK = Sizes(
    tell=Counts(tinyagents=50_000, trio=20_000, pykka=20_000),
    router=20_000,
    ask=Counts(tinyagents=3_000, trio=4_000, pykka=3_000),
    spawn=Counts(tinyagents=4_000, trio=6_000, pykka=300),
    memory=Counts(tinyagents=10_000, trio=10_000, pykka=500),
    repeats=3,
)


@dataclass(frozen=True)
class Timer:
    """Runs timed measurements: best of ``repeats``, the collector on only if asked."""

    repeats: int
    collect_garbage: bool

    def rate(self, run: Callable[[int], float], n: int) -> float:
        """Operations per second of the fastest of the calls ``run(n)``; each call does
        ``n`` operations and returns the seconds they took."""
        best = math.inf
        for _ in range(self.repeats):
            with garbage_collection(self.collect_garbage):
                best = min(best, run(n))
        return n / best


def in_trio(function: Callable[[int], Coroutine[Any, Any, float]]) -> Callable[[int], float]:
    """Run an async measurement in a fresh ``trio.run`` (its startup is not timed)."""

    def run(n: int) -> float:
        return trio.run(function, n)

    return run


class Tracing:
    """Traces memory with tracemalloc within a ``with`` block (off again after it).

    ``growth()`` is how much the traced memory grew since the block began, each
    reading taken after a full garbage collection.
    """

    def __enter__(self) -> Tracing:
        gc.collect()
        tracemalloc.start()
        self._before = self._traced()
        return self

    def __exit__(self, *exc_info: object) -> None:
        tracemalloc.stop()

    @staticmethod
    def _traced() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    def growth(self) -> int:
        return self._traced() - self._before


# -- tinyagents ------------------------------------------------------------------------


class Counter(Actor):
    """Counts messages and sets ``done`` when the ``expected``-th one arrives."""

    def __init__(self, expected: int, done: trio.Event) -> None:
        self.expected = expected
        self.done = done
        self.count = 0

    async def receive(self, ctx: Context, message: object) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()


class Echo(Actor):
    """Replies with the message it was asked."""

    async def receive(self, ctx: Context, message: object) -> object:
        return message


class Idle(Actor):
    """Does nothing; it only waits for messages."""

    async def receive(self, ctx: Context, message: object) -> None:
        return None


async def ta_tell_nowait(n: int) -> float:
    done = trio.Event()
    async with ActorSystem("bench") as system:
        ref = await system.spawn(partial(Counter, n, done))
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for i in range(n):
            ref.tell_nowait(i)
        await done.wait()
        elapsed = time.perf_counter() - start
    return elapsed


async def ta_tell(n: int) -> float:
    done = trio.Event()
    async with ActorSystem("bench") as system:
        ref = await system.spawn(partial(Counter, n, done))
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for i in range(n):
            await ref.tell(i)
        await done.wait()
        elapsed = time.perf_counter() - start
    return elapsed


class SharedCounter(Actor):
    """Counts into a shared tally and sets ``done`` when it reaches ``expected``."""

    def __init__(self, tally: list[int], expected: int, done: trio.Event) -> None:
        self.tally = tally
        self.expected = expected
        self.done = done

    async def receive(self, ctx: Context, message: object) -> None:
        self.tally[0] += 1
        if self.tally[0] == self.expected:
            self.done.set()


ROUTERS: dict[str, Callable[[list[Any]], Any]] = {
    "RoundRobin": RoundRobin,
    "Random": Random,
    "LeastLoaded": LeastLoaded,
    "ConsistentHash": lambda refs: ConsistentHash(refs, key=str),
    "Broadcast": Broadcast,
}
ROUTEES = 4


def ta_router_tell(kind: str) -> Callable[[int], float]:
    """``tell_nowait`` through a router of ``kind`` over 4 counting routees, timed until
    every routee has handled its share (every message, for Broadcast)."""

    async def run(n: int) -> float:
        done = trio.Event()
        tally = [0]
        expected = n * (ROUTEES if kind == "Broadcast" else 1)
        async with ActorSystem("bench") as system:
            routees = [
                await system.spawn(partial(SharedCounter, tally, expected, done))
                for _ in range(ROUTEES)
            ]
            router = await system.spawn(ROUTERS[kind](routees))
            await trio.testing.wait_all_tasks_blocked()
            start = time.perf_counter()
            for i in range(n):
                router.tell_nowait(i)
            await done.wait()
            elapsed = time.perf_counter() - start
        return elapsed

    return in_trio(run)


async def ta_ask(n: int) -> float:
    async with ActorSystem("bench") as system:
        ref = await system.spawn(Echo)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for i in range(n):
            await ref.ask(i)
        elapsed = time.perf_counter() - start
    return elapsed


async def ta_spawn(n: int) -> float:
    async with ActorSystem("bench") as system:
        refs = []
        start = time.perf_counter()
        for _ in range(n):
            refs.append(await system.spawn(Idle))
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
    return elapsed


async def ta_memory(n: int) -> float:
    async with ActorSystem("bench") as system:
        with Tracing() as tracing:
            refs = []
            for _ in range(n):
                refs.append(await system.spawn(Idle))
            await trio.testing.wait_all_tasks_blocked()
            per_actor = tracing.growth() / len(refs)
    return per_actor


# -- raw trio --------------------------------------------------------------------------


async def trio_tell(n: int) -> float:
    send, receive = trio.open_memory_channel[int](math.inf)
    done = trio.Event()

    async def drain() -> None:
        count = 0
        async for _ in receive:
            count += 1
            if count == n:
                done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for i in range(n):
            send.send_nowait(i)
        await done.wait()
        elapsed = time.perf_counter() - start
        await send.aclose()
    return elapsed


class Pending:
    """A raw trio reply slot: the server stores the value, then sets the event."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: object = None


async def trio_ask(n: int) -> float:
    send, receive = trio.open_memory_channel[tuple[int, Pending]](math.inf)

    async def serve() -> None:
        async for value, pending in receive:
            pending.value = value
            pending.event.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for i in range(n):
            pending = Pending()
            send.send_nowait((i, pending))
            await pending.event.wait()
        elapsed = time.perf_counter() - start
        await send.aclose()
    return elapsed


async def trio_two_channel_ask(n: int) -> float:
    """A raw trio round trip over two memory channels: requests one way, replies back."""
    requests, serve_requests = trio.open_memory_channel[int](math.inf)
    send_reply, replies = trio.open_memory_channel[int](math.inf)

    async def serve() -> None:
        async for value in serve_requests:
            send_reply.send_nowait(value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for i in range(n):
            requests.send_nowait(i)
            await replies.receive()
        elapsed = time.perf_counter() - start
        await requests.aclose()
    return elapsed


async def idle_worker(receive: trio.MemoryReceiveChannel[object]) -> None:
    async for _ in receive:
        pass


async def trio_spawn_actors(nursery: trio.Nursery, n: int) -> list[trio.MemorySendChannel[object]]:
    """Start ``n`` raw trio "actors": one task and one memory channel each."""
    channels = []
    for _ in range(n):
        send, receive = trio.open_memory_channel[object](math.inf)
        nursery.start_soon(idle_worker, receive)
        channels.append(send)
    await trio.testing.wait_all_tasks_blocked()
    return channels


async def trio_spawn(n: int) -> float:
    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        await trio_spawn_actors(nursery, n)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


async def trio_memory(n: int) -> float:
    async with trio.open_nursery() as nursery:
        with Tracing() as tracing:
            channels = await trio_spawn_actors(nursery, n)
            per_actor = tracing.growth() / len(channels)
        nursery.cancel_scope.cancel()
    return per_actor


# -- pykka -----------------------------------------------------------------------------

_PING = object()
"""Asked once before timing so that the pykka actor is known to be running."""


class PykkaCounter(pykka.ThreadingActor):
    def __init__(self, expected: int, done: threading.Event) -> None:
        super().__init__()
        self.expected = expected
        self.done = done
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message is _PING:
            return None
        self.count += 1
        if self.count == self.expected:
            self.done.set()
        return None


class PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


class PykkaIdle(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return None


def pykka_tell(n: int) -> float:
    done = threading.Event()
    ref = PykkaCounter.start(n, done)
    try:
        ref.ask(_PING)
        start = time.perf_counter()
        for i in range(n):
            ref.tell(i)
        done.wait()
        return time.perf_counter() - start
    finally:
        ref.stop()


def pykka_ask(n: int) -> float:
    ref = PykkaEcho.start()
    try:
        ref.ask(_PING)
        start = time.perf_counter()
        for i in range(n):
            ref.ask(i)
        return time.perf_counter() - start
    finally:
        ref.stop()


@contextmanager
def on_one_cpu() -> Iterator[None]:
    """Run the calling thread, and the threads it starts meanwhile, on one CPU.

    pykka's ask is a hand-off between two threads. On an otherwise idle machine with
    several CPUs the actor's thread is often woken on another CPU, which can cost far
    more than the hand-off itself (rates from ~12,000 to ~90,000 asks/s were seen on one
    machine depending on placement). On one CPU it is at its fastest and steadiest, so
    that is what the target compares against. (Elsewhere than Linux: unchanged.)
    """
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pykka_ask_one_cpu(n: int) -> float:
    with on_one_cpu():
        return pykka_ask(n)


def pykka_spawn(n: int) -> float:
    try:
        start = time.perf_counter()
        for _ in range(n):
            PykkaIdle.start()
        return time.perf_counter() - start
    finally:
        pykka.ActorRegistry.stop_all()


def pykka_memory(n: int) -> float:
    try:
        with Tracing() as tracing:
            refs = [PykkaIdle.start() for _ in range(n)]
            for ref in refs:  # each has started and handled a message: all are idle now
                ref.ask(_PING)
            return tracing.growth() / len(refs)
    finally:
        pykka.ActorRegistry.stop_all()


# -- reporting -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on the ratio tinyagents / peer: ``>=`` for rates, ``<=`` for costs."""

    op: Literal[">=", "<="]
    ratio: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.ratio if self.op == ">=" else ratio <= self.ratio

    def __str__(self) -> str:
        return f"{self.op} {self.ratio:g}x"


@dataclass(frozen=True)
class Row:
    """One comparison: a tinyagents figure against a peer's figure for the same work."""

    name: str
    unit: str
    tinyagents: float
    peer_name: str
    peer: float
    target: Target | None = None

    @property
    def ratio(self) -> float:
        return self.tinyagents / self.peer


def _number(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def print_table(rows: list[Row]) -> None:
    """Print rows as an aligned table; rows without a target are for information."""
    header = ("measurement", "tinyagents", "peer", "peer figure", "ratio", "target", "")
    lines = [header]
    for row in rows:
        if row.target is None:
            target, verdict = "-", ""
        else:
            target, verdict = str(row.target), "PASS" if row.target.met(row.ratio) else "MISS"
        lines.append(
            (
                row.name,
                _number(row.tinyagents, row.unit),
                row.peer_name,
                _number(row.peer, row.unit),
                f"{row.ratio:.2f}x",
                target,
                verdict,
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    right = {1, 3, 4}  # numbers are right-aligned
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths).rstrip())


# -- main ------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def measure(sizes: Sizes, timer: Timer) -> list[Row]:
    """Run every benchmark and return the comparison rows."""
    at_least, at_most = partial(Target, ">="), partial(Target, "<=")

    def announce(what: str, counts: Counts) -> None:
        progress(
            f"{what}: {counts.tinyagents:,} tinyagents, {counts.trio:,} trio, "
            f"{counts.pykka:,} pykka"
        )

    announce("tell (messages)", sizes.tell)
    n = sizes.tell
    tell_nowait = timer.rate(in_trio(ta_tell_nowait), n.tinyagents)
    tell = timer.rate(in_trio(ta_tell), n.tinyagents)
    trio_tell_rate = timer.rate(in_trio(trio_tell), n.trio)
    pykka_tell_rate = timer.rate(pykka_tell, n.pykka)

    progress(f"router tells: {sizes.router:,} through each router, {ROUTEES} routees")
    routed = {kind: timer.rate(ta_router_tell(kind), sizes.router) for kind in ROUTERS}

    announce("ask (round trips)", sizes.ask)
    n = sizes.ask
    ask = timer.rate(in_trio(ta_ask), n.tinyagents)
    trio_ask_rate = timer.rate(in_trio(trio_ask), n.trio)
    trio_two_channel_rate = timer.rate(in_trio(trio_two_channel_ask), n.trio)
    pykka_ask_rate = timer.rate(pykka_ask, n.pykka)
    pykka_one_cpu_rate = timer.rate(pykka_ask_one_cpu, n.pykka)

    announce("spawn (actors)", sizes.spawn)
    n = sizes.spawn
    spawn = timer.rate(in_trio(ta_spawn), n.tinyagents)
    trio_spawn_rate = timer.rate(in_trio(trio_spawn), n.trio)
    pykka_spawn_rate = timer.rate(pykka_spawn, n.pykka)

    announce("memory (idle actors)", sizes.memory)
    n = sizes.memory
    with garbage_collection(False):  # Tracing collects before each reading
        memory = in_trio(ta_memory)(n.tinyagents)
        trio_memory_per_actor = in_trio(trio_memory)(n.trio)
        pykka_memory_per_actor = pykka_memory(n.pykka)

    return [
        Row("tell_nowait", "msg/s", tell_nowait, "trio send_nowait", trio_tell_rate, at_least(0.5)),
        Row("await tell", "msg/s", tell, "trio send_nowait", trio_tell_rate, at_least(0.5)),
        Row("tell_nowait", "msg/s", tell_nowait, "pykka tell", pykka_tell_rate, at_least(2.5)),
        Row("await tell", "msg/s", tell, "pykka tell", pykka_tell_rate, at_least(2.5)),
        *(
            Row(
                f"via {kind}",
                "msg/s",
                rate,
                "direct tell_nowait",
                tell_nowait,
                at_least(0.6) if kind == "RoundRobin" else None,
            )
            for kind, rate in routed.items()
        ),
        Row("ask", "asks/s", ask, "trio two channels", trio_two_channel_rate, at_least(0.9)),
        Row("ask", "asks/s", ask, "trio channel+Event", trio_ask_rate),
        Row("ask", "asks/s", ask, "pykka ask, one CPU", pykka_one_cpu_rate, at_least(1.5)),
        Row("ask", "asks/s", ask, "pykka ask, any CPU", pykka_ask_rate),
        Row("spawn", "actors/s", spawn, "trio task+channel", trio_spawn_rate, at_least(0.5)),
        Row("spawn", "actors/s", spawn, "pykka start", pykka_spawn_rate),
        Row("idle actor", "B", memory, "trio task+channel", trio_memory_per_actor, at_most(1.5)),
        Row("idle actor", "B", memory, "pykka actor", pykka_memory_per_actor),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tinyagents against raw trio and pykka")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--repeats", type=int, metavar="N", help="timed runs per figure; the fastest counts"
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="keep the cyclic garbage collector on during timed runs (off by default)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = sizes.repeats if args.repeats is None else max(1, args.repeats)
    timer = Timer(repeats=repeats, collect_garbage=args.gc)

    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("tinyagents", "trio", "pykka")
    )
    started = time.perf_counter()
    rows = measure(sizes, timer)
    elapsed = time.perf_counter() - started
    memory = sizes.memory
    print(
        f"tinyagents actor benchmarks, {'quick' if args.quick else 'full'} run: "
        f"{platform.python_implementation()} {platform.python_version()}, {versions}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"rates: best of {repeats} runs, garbage collector {'on' if args.gc else 'off'}; "
        f"memory: tracemalloc growth per idle actor, {memory.tinyagents:,} tinyagents, "
        f"{memory.trio:,} trio, {memory.pykka:,} pykka actors (thread stacks not traced)"
    )
    print()
    print_table(rows)
    print()
    print(
        "ratio = tinyagents / peer. Targets are goals: a MISS is reported, "
        f"not an error. Took {elapsed:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
