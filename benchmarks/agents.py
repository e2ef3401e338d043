"""Agent benchmarks: many agents on one provider, against an OpenAI stub with a latency.

Run from the repository root::

    python benchmarks/agents.py          # full run, about 2-3 minutes
    python benchmarks/agents.py --quick  # smoke run for CI, about 30 s

Every figure is taken against :class:`~tinyagents.testing._openai_stub.OpenAIStub`, a
real HTTP server on 127.0.0.1 in this very process, whose replies (``StubReply`` with a
``delay``) come a fixed latency after each request. Three questions, answered in one run:

1. **Fan-out**: a :class:`~tinyagents.team.Broadcast` team of 200 agents on one
   :class:`~tinyagents.llm.openai.OpenAI` adapter whose transport allows 200 concurrent
   requests. How long does one prompt to the team take, as a multiple of the stub's
   latency L? (Target: <= 1.3 L.)
2. **Crowd**: 10,000 agents, one prompt each, all at once, through one adapter with 100
   connections. Wall time against the pool-bound ideal ``ceil(10000 / 100) * L'``, and
   how fast the agents spawn.
3. **Overhead**: sequential asks to one agent against sequential ``provider.chat``
   calls with the same request, the stub answering at once, as a time ratio.

The stub shares the process (and one CPU) with the code under test, so at hundreds or
thousands of concurrent requests it can be the bottleneck itself. Each fan-out and crowd
figure is therefore printed below two floors measured the same way: the stub alone (a
minimal keep-alive HTTP/1.1 client on raw trio sockets, one connection per pool slot)
and raw ``httpx`` POSTs of the adapter's exact body through the same kind of transport.
What the adapter and the agents cost is the distance between those floors and their own
figure; the last column gives every distance per request.

httpx's own connection pool (httpcore 1.0) is quadratic in the number of idle
connections and of queued requests, which makes 200 warm connections cost seconds per
burst. The fan-out is therefore measured twice: with one ``httpx.AsyncHTTPTransport``
pool of 200 (what a user writes today) and with :class:`SplitPool`, the same 200
connections as 20 pools of 10 behind a FIFO admission semaphore. The crowd uses
:class:`SplitPool` only: through one pool its 10,000 requests would take many minutes.

Every timed figure is the best of several runs (the collector off while timing, unless
``--gc``), timed with ``time.perf_counter`` around the operations only. A miss is
reported, not asserted: the script always exits 0 unless a benchmark itself fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import platform
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

import attrs
import httpx
import trio
import trio.testing
from _common import garbage_collection

from tinyagents import Actor, ActorRef, ActorSystem, Context
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.llm import ChatRequest, Message
from tinyagents.llm.openai import OpenAI
from tinyagents.team import Broadcast
from tinyagents.testing import RecordedRequest, StubReply
from tinyagents.testing._openai_stub import OpenAIStub

MODEL = "bench-model"
PROMPT = "Say something."
ANSWER = StubReply(text="Something.", chunk_size=len("Something."))
"""The stub's answer: one piece of text, so its ``delay`` is the whole latency."""
API_KEY = "bench-key"
TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""Generous HTTP timeouts: requests waiting for a connection must not time out."""
ASK_TIMEOUT = 600.0
SHARD = 10
"""Connections per httpcore pool in a :class:`SplitPool`."""

# -- sizes and timing ------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run of the whole script."""

    team: int
    """Agents in the Broadcast team, and connections in its adapter's transport."""
    latency: float
    """L: the stub's latency in the fan-out figures, in seconds."""
    crowd: int
    """Agents in the crowd, one prompt each."""
    crowd_pool: int
    """Connections in the crowd's adapter transport."""
    crowd_latency: float
    """L': the stub's latency in the crowd figures, in seconds."""
    calls: int
    """Sequential calls per repeat of the overhead figure, on each side."""
    repeats: int
    slow_repeats: int
    """Repeats of the figures that take seconds each: a warm pool of ``team``
    connections in one httpcore pool, and the crowd."""


FULL = Sizes(
    team=200,
    latency=1.0,
    crowd=10_000,
    crowd_pool=100,
    crowd_latency=0.1,
    calls=1_000,
    repeats=5,
    slow_repeats=1,
)
QUICK = Sizes(
    team=50,
    latency=1.0,
    crowd=1_000,
    crowd_pool=100,
    crowd_latency=0.1,
    calls=500,
    repeats=2,
    slow_repeats=1,
)


@dataclass(frozen=True)
class Timer:
    """Runs timed measurements: best of ``repeats``, the collector on only if asked."""

    repeats: int
    collect_garbage: bool

    async def best(self, run: Callable[[], Awaitable[float]], repeats: int | None = None) -> float:
        """The fewest seconds of the calls ``run()``, each returning the seconds it took."""
        best = math.inf
        for _ in range(self.repeats if repeats is None else repeats):
            with garbage_collection(self.collect_garbage):
                best = min(best, await run())
        return best


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


# -- the stub and its floor ------------------------------------------------------------


class LatencyStub(OpenAIStub):
    """An :class:`OpenAIStub` that answers every request with ``ANSWER``, ``latency``
    seconds after it arrived.

    The latency is ``StubReply.delay``: before a non-streamed answer the stub waits
    ``delay`` per streamed piece (``StubReply.generate``), and ``ANSWER`` is one piece.
    Its ids are counters: the stub's random ids (``secrets.choice`` per character, 61
    per answer) cost about a quarter of its time.
    """

    def __init__(self) -> None:
        super().__init__(responder=self.answer)
        self._reply = ANSWER
        self._answers = 0

    @property
    def latency(self) -> float:
        return self._reply.delay

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._reply = attrs.evolve(ANSWER, delay=seconds)

    def answer(self, request: RecordedRequest) -> StubReply:
        return self._reply

    def completion_id(self) -> str:
        self._answers += 1
        return f"chatcmpl-bench{self._answers}"

    def response_headers(self) -> list[tuple[str, str]]:
        return [("x-request-id", f"req_bench{self._answers}")]


_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")


class RawConnection:
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads the whole
    answer: about the least a client can do, so its timings are the stub's own cost."""

    def __init__(self, stream: trio.SocketStream, request: bytes) -> None:
        self.stream = stream
        self.request = request
        self.buffer = b""

    @classmethod
    async def open(cls, stub: OpenAIStub, body: bytes) -> RawConnection:
        head = (
            f"POST {stub.base_path}{stub.chat_path} HTTP/1.1\r\n"
            f"host: {stub.host}:{stub.port}\r\n"
            "content-type: application/json\r\n"
            f"authorization: Bearer {API_KEY}\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        stream = await trio.open_tcp_stream(stub.host, stub.port)
        return cls(stream, head.encode() + body)

    async def call(self) -> None:
        await self.stream.send_all(self.request)
        buffer = self.buffer
        while b"\r\n\r\n" not in buffer:
            buffer += await self._receive()
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"the stub answered {head[:40]!r}")
        match = _CONTENT_LENGTH.search(head)
        if match is None:
            raise RuntimeError("the stub's answer has no content-length")
        length = int(match[1])
        while len(rest) < length:
            rest += await self._receive()
        self.buffer = rest[length:]

    async def _receive(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            raise RuntimeError("the stub closed the connection")
        return data


@contextlib.asynccontextmanager
async def raw_connections(
    stub: OpenAIStub, body: bytes, n: int
) -> AsyncIterator[list[RawConnection]]:
    """``n`` raw connections to ``stub``, each of which has served one request."""
    opened: list[RawConnection] = []
    try:
        for _ in range(n):
            opened.append(await RawConnection.open(stub, body))
        async with trio.open_nursery() as nursery:
            for connection in opened:
                nursery.start_soon(connection.call)
        stub.requests.clear()
        yield opened
    finally:
        for connection in opened:
            await connection.stream.aclose()


async def stub_alone(stub: OpenAIStub, connections: list[RawConnection], requests: int) -> float:
    """``requests`` requests over ``connections``, each connection sending its next
    request as soon as it has the previous answer; the seconds from the first request
    to the last answer."""
    remaining = requests

    async def work(connection: RawConnection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await connection.call()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for connection in connections:
            nursery.start_soon(work, connection)
    elapsed = time.perf_counter() - start
    stub.requests.clear()
    return elapsed


# -- transports and clients ------------------------------------------------------------


def limits(connections: int) -> httpx.Limits:
    """A pool of ``connections`` connections, all of which may be kept alive (httpx
    keeps 20 by default, and httpcore 1.0 then closes every connection that turns idle
    while the pool holds more than 20)."""
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def one_pool(connections: int) -> httpx.AsyncHTTPTransport:
    """The plain transport: one httpcore pool of ``connections`` connections."""
    return httpx.AsyncHTTPTransport(limits=limits(connections))


class _Admitted(httpx.AsyncByteStream):
    """A response body that frees its request's place when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()


class SplitPool(httpx.AsyncBaseTransport):
    """``connections`` connections as httpcore pools of ``SHARD`` connections each, in
    front of which at most ``connections`` requests are let in at once (the others wait
    in a FIFO trio semaphore); each request goes to the pool with the fewest requests.

    A workaround for httpcore 1.0's pool, whose bookkeeping
    (``AsyncConnectionPool._assign_requests_to_connections``, run whenever a request
    starts or ends) costs idle connections x connections, plus queued requests x
    connections: quadratic in a pool of hundreds of idle connections, and in a queue of
    thousands of requests. Here no request queues inside httpcore, and each pool is
    small. A request keeps its place until its response is closed, which is when its
    connection is back in its pool.
    """

    def __init__(self, connections: int) -> None:
        shards = math.ceil(connections / SHARD)
        self.connections = connections
        self._pools = [one_pool(SHARD) for _ in range(shards)]
        self._busy = [0] * shards
        self._places = trio.Semaphore(connections)

    def __str__(self) -> str:
        return f"{len(self._pools)} pools of {SHARD}"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._places.acquire()
        index = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[index] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._busy[index] -= 1
                self._places.release()

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Admitted(response.stream, release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def adapter(stub: OpenAIStub, transport: httpx.AsyncBaseTransport | None = None) -> OpenAI:
    """The adapter under test, on ``transport`` (None: httpx's default one)."""
    return OpenAI(api_key=API_KEY, base_url=stub.base_url, timeout=TIMEOUT, transport=transport)


def chat_request() -> ChatRequest:
    """The request an agent without a system prompt sends for ``PROMPT``."""
    return ChatRequest(model=MODEL, messages=[Message.user(PROMPT)])


async def adapter_body(stub: OpenAIStub) -> bytes:
    """The body the adapter sends for ``chat_request()``, byte for byte."""
    async with adapter(stub) as provider:
        await provider.chat(chat_request())
    body = stub.requests[-1].body
    stub.requests.clear()
    return body


async def timed_concurrently(call: Callable[[], Awaitable[object]], n: int) -> float:
    """Start ``n`` calls at once; the seconds until the last one has finished."""

    async def run() -> None:
        await call()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(run)
    return time.perf_counter() - start


async def raw_httpx(
    stub: OpenAIStub,
    body: bytes,
    transport: httpx.AsyncBaseTransport,
    n: int,
    timer: Timer,
    repeats: int | None,
    *,
    warm_up: bool,
) -> float:
    """``n`` concurrent raw httpx POSTs of ``body`` through ``transport``, after one
    untimed burst if ``warm_up``: the best time of ``repeats`` bursts (None: the
    timer's)."""
    url = stub.base_url + stub.chat_path
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=TIMEOUT, transport=transport) as client:

        async def post() -> None:
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()
            response.json()

        async def burst() -> float:
            elapsed = await timed_concurrently(post, n)
            stub.requests.clear()
            return elapsed

        if warm_up:
            await burst()
        best = await timer.best(burst, repeats)
    return best


# -- reporting -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on a row's ratio: ``<=`` for times, ``>=`` for rates."""

    op: Literal[">=", "<="]
    ratio: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.ratio if self.op == ">=" else ratio <= self.ratio

    def __str__(self) -> str:
        return f"{self.op} {self.ratio:g}x"


@dataclass(frozen=True)
class Row:
    """One figure against a reference figure (or a bound) for the same work; ``note``
    is printed after the verdict."""

    name: str
    unit: str
    figure: float
    reference_name: str
    reference: float
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.figure / self.reference


def _number(value: float, unit: str) -> str:
    if unit in ("s", "ms"):
        return f"{value:,.3f} {unit}"
    return f"{value:,.0f} {unit}"


def print_table(sections: list[tuple[str, list[Row]]]) -> None:
    """Print every section's rows as one aligned table, each under its title; rows
    without a target are for information."""
    header = ("measurement", "figure", "reference", "ref. figure", "ratio", "target", "", "")
    table: list[tuple[str, ...] | str] = [header]
    for title, rows in sections:
        table.append(title)
        for row in rows:
            if row.target is None:
                target, verdict = "-", ""
            else:
                met = row.target.met(row.ratio)
                target, verdict = str(row.target), "PASS" if met else "MISS"
            table.append(
                (
                    "  " + row.name,
                    _number(row.figure, row.unit),
                    row.reference_name,
                    _number(row.reference, row.unit),
                    f"{row.ratio:.2f}x",
                    target,
                    verdict,
                    row.note,
                )
            )
    cells = [line for line in table if isinstance(line, tuple)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    right = {1, 3, 4}  # numbers are right-aligned
    for index, line in enumerate(table):
        if isinstance(line, str):
            print(line)
            continue
        print(
            "  ".join(
                cell.rjust(width) if column in right else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            print("  ".join("-" * width for width in widths[:-1]))


# -- 1. fan-out: a Broadcast team ------------------------------------------------------


async def prompt_team(
    stub: OpenAIStub, transport: httpx.AsyncBaseTransport, n: int, timer: Timer, repeats: int
) -> tuple[float, float]:
    """A Broadcast team of ``n`` agents on one adapter over ``transport``: the time of
    its first prompt (new connections), and the best time of ``repeats`` more."""
    async with (
        adapter(stub, transport) as provider,
        ActorSystem("bench", ask_timeout=ASK_TIMEOUT) as system,
    ):
        members = [
            await system.spawn(Agent(f"agent{i}", provider, MODEL), name=f"agent{i}")
            for i in range(n)
        ]
        team = await system.spawn(Broadcast(members), name="team")

        async def ask() -> float:
            start = time.perf_counter()
            response = await team.ask(Prompt(PROMPT))
            elapsed = time.perf_counter() - start
            stub.requests.clear()
            assert isinstance(response, Response)
            failed = [part for part in response.parts if not part.ok]
            if failed or len(response.parts) != n:
                raise RuntimeError(f"{len(failed)} of {n} members failed: {failed[:1]}")
            return elapsed

        with garbage_collection(timer.collect_garbage):
            first = await ask()
        best = await timer.best(ask, repeats)
    return first, best


async def fan_out(sizes: Sizes, timer: Timer) -> list[Row]:
    n, latency = sizes.team, sizes.latency
    rows: list[Row] = []

    def row(name: str, seconds: float, target: Target | None = None) -> None:
        note = f"L + {n} x {(seconds - latency) / n * 1e3:.2f} ms"
        rows.append(Row(name, "s", seconds, "L", latency, target, note))

    async with LatencyStub() as stub:
        stub.latency = latency
        body = await adapter_body(stub)
        plain, split = f"1 pool of {n}", str(SplitPool(n))

        progress(f"fan-out floor: {n} concurrent requests, stub alone on {n} raw sockets")
        async with raw_connections(stub, body, n) as connections:
            row(
                "stub alone (raw sockets)",
                await timer.best(lambda: stub_alone(stub, connections, n)),
            )
        progress(f"fan-out floor: {n} concurrent raw httpx POSTs, {plain}")
        seconds = await raw_httpx(
            stub, body, one_pool(n), n, timer, sizes.slow_repeats, warm_up=True
        )
        row(f"raw httpx, {plain}", seconds)
        progress(f"fan-out floor: {n} concurrent raw httpx POSTs, {split}")
        seconds = await raw_httpx(stub, body, SplitPool(n), n, timer, None, warm_up=True)
        row(f"raw httpx, {split}", seconds)

        for described, transport, repeats in (
            (plain, one_pool(n), sizes.slow_repeats),
            (split, SplitPool(n), timer.repeats),
        ):
            progress(f"fan-out: a Broadcast team of {n} agents, {described}")
            first, best = await prompt_team(stub, transport, n, timer, repeats)
            row(f"Broadcast of {n} agents, {described}", best, Target("<=", 1.3))
            row("  its first prompt (cold pool)", first)
    return rows


# -- 2. a crowd of agents --------------------------------------------------------------


class Idle(Actor):
    """Does nothing; it only waits for messages."""

    async def receive(self, ctx: Context, message: object) -> None:
        return None


async def ask_each(refs: list[ActorRef]) -> float:
    """Ask every agent one prompt, all at once; the seconds until the last answer."""

    async def ask(ref: ActorRef) -> None:
        response = await ref.ask(Prompt(PROMPT))
        if not isinstance(response, Response):
            raise TypeError(f"an agent answered {response!r}")

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for ref in refs:
            nursery.start_soon(ask, ref)
    return time.perf_counter() - start


async def spawn_and_ask(
    stub: OpenAIStub, n: int, connections: int, timer: Timer, repeats: int
) -> tuple[float, float]:
    """Spawn ``n`` agents on one adapter, then ask each one prompt: the best seconds of
    the spawns (until every agent is idle) and of the asks, over ``repeats`` runs."""
    spawned = asked = math.inf
    async with adapter(stub, SplitPool(connections)) as provider:
        for _ in range(repeats):
            with garbage_collection(timer.collect_garbage):
                async with ActorSystem("bench", ask_timeout=ASK_TIMEOUT) as system:
                    start = time.perf_counter()
                    refs = [
                        await system.spawn(Agent(f"agent{i}", provider, MODEL)) for i in range(n)
                    ]
                    await trio.testing.wait_all_tasks_blocked()
                    spawned = min(spawned, time.perf_counter() - start)
                    asked = min(asked, await ask_each(refs))
                    stub.requests.clear()
    return spawned, asked


async def spawn_idle(n: int) -> float:
    async with ActorSystem("bench") as system:
        start = time.perf_counter()
        for _ in range(n):
            await system.spawn(Idle)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
    return elapsed


async def crowd(sizes: Sizes, timer: Timer) -> list[Row]:
    n, pool, latency = sizes.crowd, sizes.crowd_pool, sizes.crowd_latency
    ideal = math.ceil(n / pool) * latency
    repeats = sizes.slow_repeats
    rows: list[Row] = []

    def row(name: str, seconds: float) -> None:
        note = f"{seconds / n * 1e3:.2f} ms per request"
        rows.append(Row(name, "s", seconds, "ideal", ideal, None, note))

    async with LatencyStub() as stub:
        stub.latency = latency
        body = await adapter_body(stub)
        split = str(SplitPool(pool))

        progress(f"crowd floor: {n:,} requests, stub alone on {pool} raw sockets")
        async with raw_connections(stub, body, pool) as connections:
            seconds = await timer.best(lambda: stub_alone(stub, connections, n), repeats)
        row(f"stub alone ({pool} raw sockets)", seconds)
        progress(f"crowd floor: {n:,} concurrent raw httpx POSTs, {split}")
        raw = await raw_httpx(stub, body, SplitPool(pool), n, timer, repeats, warm_up=False)
        row(f"raw httpx, {split}", raw)
        progress(f"crowd: spawning {n:,} agents, then one prompt to each, {split}")
        spawned, asked = await spawn_and_ask(stub, n, pool, timer, repeats)
        row(f"{n:,} agents, one ask each, {split}", asked)
    rows.append(
        Row(
            f"{n:,} agents",
            "s",
            asked,
            "raw httpx",
            raw,
            None,
            f"{(asked - raw) / n * 1e3:+.2f} ms per request",
        )
    )
    progress(f"crowd reference: spawning {n:,} idle actors")
    idle = await timer.best(lambda: spawn_idle(n))
    rows.append(Row(f"spawn {n:,} agents", "agents/s", n / spawned, "Idle actors", n / idle))
    return rows


# -- 3. the overhead of an agent over its provider -------------------------------------


BLOCK = 100
"""Calls per timed block of the overhead figure."""


async def overhead(sizes: Sizes, timer: Timer) -> list[Row]:
    """Sequential asks and chats in blocks of ``BLOCK`` calls, the two taking turns
    block by block (a slow spell of a shared machine then hits both alike); each
    side's fastest block counts."""
    n = sizes.calls
    progress(f"overhead: {n:,} sequential agent asks and provider.chat calls, no latency")
    async with (
        LatencyStub() as stub,
        adapter(stub) as provider,
        ActorSystem("bench", ask_timeout=ASK_TIMEOUT) as system,
    ):
        agent = await system.spawn(Agent("agent", provider, MODEL), name="agent")
        request = chat_request()
        await agent.ask(Prompt(PROMPT))  # warm up: the connection is open
        stub.requests.clear()

        async def chats() -> float:
            start = time.perf_counter()
            for _ in range(BLOCK):
                await provider.chat(request)
            elapsed = time.perf_counter() - start
            stub.requests.clear()
            return elapsed

        async def asks() -> float:
            start = time.perf_counter()
            for _ in range(BLOCK):
                await agent.ask(Prompt(PROMPT))
            elapsed = time.perf_counter() - start
            stub.requests.clear()
            return elapsed

        chat = ask = math.inf
        for _ in range(timer.repeats):
            with garbage_collection(timer.collect_garbage):
                for _ in range(max(1, n // BLOCK)):
                    chat = min(chat, await chats())
                    ask = min(ask, await asks())
    per_chat, per_ask = chat / BLOCK * 1e3, ask / BLOCK * 1e3
    note = f"{(per_ask - per_chat) * 1e3:+.0f} us per ask"
    return [Row("agent ask", "ms", per_ask, "provider.chat", per_chat, Target("<=", 1.1), note)]


# -- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tinyagents agents on one provider")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--repeats", type=int, metavar="N", help="timed runs per figure; the fastest counts"
    )
    parser.add_argument(
        "--latency", type=float, metavar="SECONDS", help="L, the stub's latency in the fan-out"
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="keep the cyclic garbage collector on during timed runs (off by default)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.latency is not None:
        sizes = replace(sizes, latency=max(0.0, args.latency))
    repeats = sizes.repeats if args.repeats is None else max(1, args.repeats)
    timer = Timer(repeats=repeats, collect_garbage=args.gc)

    started = time.perf_counter()
    sections = [
        (
            f"1. one prompt to a Broadcast team of {sizes.team} agents, stub latency "
            f"L = {sizes.latency:g} s, {sizes.team} connections",
            trio.run(fan_out, sizes, timer),
        ),
        (
            f"2. {sizes.crowd:,} agents, one prompt each, {sizes.crowd_pool} connections, "
            f"stub latency L' = {sizes.crowd_latency:g} s, ideal = ceil(n / connections) * L'",
            trio.run(crowd, sizes, timer),
        ),
        (
            "3. sequential asks to one agent against provider.chat calls, no latency",
            trio.run(overhead, sizes, timer),
        ),
    ]
    elapsed = time.perf_counter() - started
    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("tinyagents", "trio", "httpx", "httpcore")
    )
    print(
        f"tinyagents agent benchmarks, {'quick' if args.quick else 'full'} run: "
        f"{platform.python_implementation()} {platform.python_version()}, {versions}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"best of {repeats} runs ({sizes.slow_repeats} for the crowd and for a warm pool "
        f"of {sizes.team} in one httpcore pool), garbage collector "
        f"{'on' if args.gc else 'off'}; the stub runs in this process"
    )
    print()
    print_table(sections)
    print()
    print(
        "ratio = figure / reference. Targets are goals: a MISS is reported, "
        f"not an error. Took {elapsed:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
