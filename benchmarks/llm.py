"""The LLM layer's overhead over raw httpx, against a local stub that answers at once.

Run from the repository root::

    python benchmarks/llm.py          # full run, about 1-2 minutes
    python benchmarks/llm.py --quick  # smoke run for CI, about 10-15 s

In one run, side by side, against the same OpenAI-dialect stub server on 127.0.0.1
(:class:`~tinyagents.testing._openai_stub.OpenAIStub`, in this process):

1. latency: sequential ``provider.chat`` calls against raw ``httpx`` POSTs of the very
   same bytes (the body the adapter sent, as the stub recorded it), as a time ratio
   (target <= 1.10x);
2. throughput: the same with 32 concurrent callers, as a ratio of calls per second
   (target >= 1/1.10, that is 0.91x);
3. streaming: chunks per second through ``provider.chat(..., stream=...)``, read from
   the channel by another task as they come, against raw ``aiter_lines`` plus
   ``json.loads`` over the very same stream (target >= 0.8x).

The stub costs most of each call; both sides pay it equally, so the ratios show what
the adapter adds. Each timed figure is the best of several runs, the two sides taking
turns (so that a slow spell of a shared machine hits both); the sequential calls are
timed in runs of 100, short enough to fit between slow spells. The cyclic garbage
collector is off while timing unless ``--gc``. Speed is measured here, never asserted in
tests: the script exits 0 whether or not a target is met.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx
import trio
from _common import garbage_collection

from tinyagents.llm import ChatRequest, Chunk, Message
from tinyagents.llm.openai import OpenAI
from tinyagents.testing import RecordedRequest, StubReply
from tinyagents.testing._openai_stub import OpenAIStub

CONCURRENCY = 32
BLOCK = 100
"""Sequential calls per timed run of the latency figure."""
API_KEY = "bench-key"
MODEL = "bench-model"

# -- sizes and timing ------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run of the whole script."""

    calls: int
    """Calls per repeat: sequential (in runs of ``BLOCK``), or per timed run spread over
    ``CONCURRENCY`` callers."""
    stream_chunks: int
    """Text chunks in the streamed answer."""
    repeats: int


FULL = Sizes(calls=2_000, stream_chunks=20_000, repeats=5)
QUICK = Sizes(calls=300, stream_chunks=3_000, repeats=3)


Run = Callable[[], Awaitable[float]]


async def best_of_both(
    repeats: int, collect_garbage: bool, ours: Run, theirs: Run
) -> tuple[float, float]:
    """The fewest seconds of ``ours()`` and of ``theirs()``, run in turns ``repeats``
    times each."""
    best = [math.inf, math.inf]
    for _ in range(repeats):
        for index, run in enumerate((ours, theirs)):
            with garbage_collection(collect_garbage):
                best[index] = min(best[index], await run())
    return best[0], best[1]


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


# -- the stub ----------------------------------------------------------------------------


class BenchStub(OpenAIStub):
    """The OpenAI stub with counters for ids: its random ids (``secrets.choice`` per
    character, 61 per answer) cost about a quarter of its time, which both sides would
    pay, blurring the ratios."""

    def __init__(self, sizes: Sizes) -> None:
        super().__init__(responder=self.answer)
        self.short = StubReply(text="The quick brown fox jumps over the lazy dog.")
        self.long = StubReply(text="x" * sizes.stream_chunks, chunk_size=1)
        self._answers = 0

    def answer(self, request: RecordedRequest) -> StubReply:
        body = request.json if isinstance(request.json, dict) else {}
        return self.long if body.get("stream") else self.short

    def completion_id(self) -> str:
        self._answers += 1
        return f"chatcmpl-bench{self._answers}"

    def response_headers(self) -> list[tuple[str, str]]:
        return [("x-request-id", f"req_bench{self._answers}")]


# -- the measurements ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on the ratio tinyagents / raw: ``<=`` for times, ``>=`` for rates."""

    op: Literal[">=", "<="]
    ratio: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.ratio if self.op == ">=" else ratio <= self.ratio

    def __str__(self) -> str:
        return f"{self.op} {self.ratio:.2f}x"


@dataclass(frozen=True)
class Row:
    """One tinyagents figure against raw httpx's figure for the same work."""

    name: str
    unit: str
    tinyagents: float
    raw: float
    target: Target

    @property
    def ratio(self) -> float:
        return self.tinyagents / self.raw


async def measure(sizes: Sizes, repeats: int, collect_garbage: bool) -> list[Row]:
    request = ChatRequest(model=MODEL, messages=[Message.user("Say something.")])
    stream_request = ChatRequest(model=MODEL, messages=[Message.user("Stream.")])
    async with BenchStub(sizes) as stub:
        url = stub.base_url + stub.chat_path
        headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
        async with (
            OpenAI(api_key=API_KEY, base_url=stub.base_url) as provider,
            httpx.AsyncClient() as raw,
        ):
            # warm up both clients, and learn the exact bytes the adapter sends
            await provider.chat(request)
            payload = stub.requests[-1].body
            send, receive = trio.open_memory_channel[Chunk](math.inf)
            await provider.chat(stream_request, stream=send)
            async for _ in receive:
                pass
            stream_payload = stub.requests[-1].body
            assert json.loads(stream_payload).get("stream") is True
            (await raw.post(url, content=payload, headers=headers)).raise_for_status()
            stub.requests.clear()

            async def raw_call() -> None:
                response = await raw.post(url, content=payload, headers=headers)
                response.raise_for_status()
                response.json()

            async def sequentially(call: Callable[[], Awaitable[object]]) -> float:
                start = time.perf_counter()
                for _ in range(BLOCK):
                    await call()
                elapsed = time.perf_counter() - start
                stub.requests.clear()
                return elapsed

            per_caller = sizes.calls // CONCURRENCY

            async def concurrently(call: Callable[[], Awaitable[object]]) -> float:
                async def caller() -> None:
                    for _ in range(per_caller):
                        await call()

                start = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for _ in range(CONCURRENCY):
                        nursery.start_soon(caller)
                elapsed = time.perf_counter() - start
                stub.requests.clear()
                return elapsed

            async def adapter_stream() -> float:
                send, receive = trio.open_memory_channel[Chunk](math.inf)
                chunks = 0

                async def consume() -> None:  # as the chunks come, as a caller would
                    nonlocal chunks
                    async for chunk in receive:
                        chunks += bool(chunk.delta)

                start = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(consume)
                    await provider.chat(stream_request, stream=send)
                elapsed = time.perf_counter() - start
                stub.requests.clear()
                if chunks != sizes.stream_chunks:
                    raise RuntimeError(f"{chunks} chunks, not {sizes.stream_chunks}")
                return elapsed

            async def raw_stream() -> float:
                start = time.perf_counter()
                chunks = 0
                async with raw.stream(
                    "POST", url, content=stream_payload, headers=headers
                ) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if line.startswith("data: {"):
                            data = json.loads(line[6:])
                            for choice in data.get("choices", ()):
                                chunks += bool(choice.get("delta", {}).get("content"))
                elapsed = time.perf_counter() - start
                stub.requests.clear()
                if chunks != sizes.stream_chunks:
                    raise RuntimeError(f"{chunks} chunks, not {sizes.stream_chunks}")
                return elapsed

            progress(f"latency: {sizes.calls:,} sequential calls each, per repeat")
            adapter_seq, raw_seq = await best_of_both(
                repeats * max(1, sizes.calls // BLOCK),
                collect_garbage,
                lambda: sequentially(lambda: provider.chat(request)),
                lambda: sequentially(raw_call),
            )
            progress(f"throughput: {per_caller * CONCURRENCY:,} calls from {CONCURRENCY} callers")
            adapter_conc, raw_conc = await best_of_both(
                repeats,
                collect_garbage,
                lambda: concurrently(lambda: provider.chat(request)),
                lambda: concurrently(raw_call),
            )
            progress(f"streaming: {sizes.stream_chunks:,} chunks each")
            adapter_str, raw_str = await best_of_both(
                repeats, collect_garbage, adapter_stream, raw_stream
            )

    concurrent_calls = per_caller * CONCURRENCY
    return [
        Row(
            "latency per call",
            "ms",
            adapter_seq / BLOCK * 1e3,
            raw_seq / BLOCK * 1e3,
            Target("<=", 1.10),
        ),
        Row(
            f"throughput, {CONCURRENCY} callers",
            "calls/s",
            concurrent_calls / adapter_conc,
            concurrent_calls / raw_conc,
            Target(">=", 1 / 1.10),
        ),
        Row(
            "streamed chunks",
            "chunks/s",
            sizes.stream_chunks / adapter_str,
            sizes.stream_chunks / raw_str,
            Target(">=", 0.8),
        ),
    ]


# -- reporting -------------------------------------------------------------------------


def _number(value: float, unit: str) -> str:
    return f"{value:,.3f} {unit}" if unit == "ms" else f"{value:,.0f} {unit}"


def print_table(rows: list[Row]) -> None:
    """Print the rows as an aligned table."""
    header = ("measurement", "tinyagents", "raw httpx", "ratio", "target", "")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.name,
                _number(row.tinyagents, row.unit),
                _number(row.raw, row.unit),
                f"{row.ratio:.2f}x",
                str(row.target),
                "PASS" if row.target.met(row.ratio) else "MISS",
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    right = {1, 2, 3}  # numbers are right-aligned
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LLM adapter overhead against raw httpx")
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

    started = time.perf_counter()
    rows = trio.run(measure, sizes, repeats, args.gc)
    elapsed = time.perf_counter() - started
    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("tinyagents", "trio", "httpx", "httpcore")
    )
    print(
        f"tinyagents LLM benchmarks, {'quick' if args.quick else 'full'} run: "
        f"{platform.python_implementation()} {platform.python_version()}, {versions}, "
        f"{os.cpu_count()} CPUs"
    )
    blocks = repeats * max(1, sizes.calls // BLOCK)
    print(
        f"best of {repeats} runs (latency: of {blocks} runs of {BLOCK} calls), sides in "
        f"turns, garbage collector {'on' if args.gc else 'off'}; OpenAI stub in this "
        "process, answering at once"
    )
    print()
    print_table(rows)
    print()
    print(
        "ratio = tinyagents / raw httpx: a time ratio for latency (lower is better), a "
        "rate ratio otherwise (higher is better). Targets are goals: a MISS is reported, "
        f"not an error. Took {elapsed:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
