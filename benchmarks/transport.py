"""Transport benchmarks: remote tell and ask over loopback against a raw trio TCP echo.

Run from the repository root::

    python benchmarks/transport.py          # full run, well under a minute
    python benchmarks/transport.py --quick  # smoke run for CI, a few seconds

Two nodes (two ``ActorSystem`` s, each with its ``Transport``) run in this process and
talk over 127.0.0.1. Side by side, in the same run:

1. remote tell throughput (messages/s): node a tells N short strings to a counting actor
   on node b, timed from the first tell until b has handled the last;
2. remote ask round trips/s: sequential asks to an echo actor on node b, each awaiting
   its reply;
3. the limit: a raw trio TCP echo of the same payloads, framed the same way (a 4-byte
   length and msgpack), one frame out and its echo back per round trip, and a raw
   pipelined one-way stream of the same frames for the throughput.

Each figure is the best of a few runs. Ratios are tinyagents / raw; the targets are
remote ask >= 0.5x the raw echo's round trips and remote tell >= 100,000 messages/s. A
miss is reported, not asserted: the script exits 0 unless a benchmark itself fails.
"""

from __future__ import annotations

import argparse
import struct
from functools import partial
from typing import Any

import msgpack
import trio
from _common import garbage_collection

from tinyagents import Actor, ActorSystem, Context
from tinyagents.transport import Transport

PAYLOAD = "a short message of about forty bytes!!!"
LENGTH = struct.Struct(">I")


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


class Counter(Actor):
    def __init__(self) -> None:
        self.expected = 0
        self.seen = 0
        self.done = trio.Event()

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, int):  # a new round: how many to expect
            self.expected, self.seen, self.done = message, 0, trio.Event()
            return None
        self.seen += 1
        if self.seen == self.expected:
            self.done.set()
        return None


# -- tinyagents ---------------------------------------------------------------------


async def tinyagents_figures(tells: int, asks: int, runs: int) -> tuple[float, float]:
    counter = Counter()
    async with (
        ActorSystem("a") as system_a,
        Transport(system_a),
        ActorSystem("b") as system_b,
        Transport(system_b) as transport_b,
    ):
        await system_b.spawn(Echo, name="echo")
        await system_b.spawn(lambda: counter, name="counter")
        host, port = transport_b.address
        echo = system_a.ref_for(f"tinyagents://b@{host}:{port}/user/echo")
        sink = system_a.ref_for(f"tinyagents://b@{host}:{port}/user/counter")
        for _ in range(300):  # warm up: the connection, the codec, the caches
            await echo.ask(PAYLOAD, timeout=10)
        best_tell = best_ask = 0.0
        for _ in range(runs):
            await sink.ask(tells, timeout=10)
            start = trio.current_time()
            for _ in range(tells):
                await sink.tell(PAYLOAD)
            await counter.done.wait()
            best_tell = max(best_tell, tells / (trio.current_time() - start))
            start = trio.current_time()
            for _ in range(asks):
                await echo.ask(PAYLOAD, timeout=10)
            best_ask = max(best_ask, asks / (trio.current_time() - start))
        return best_tell, best_ask


# -- raw trio TCP -------------------------------------------------------------------


async def read_frame(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    while len(buffer) < 4 or len(buffer) < 4 + LENGTH.unpack_from(buffer)[0]:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError
        buffer += data
    (size,) = LENGTH.unpack_from(buffer)
    frame = bytes(buffer[4 : 4 + size])
    del buffer[: 4 + size]
    return frame


async def raw_figures(tells: int, asks: int, runs: int) -> tuple[float, float]:
    frame = LENGTH.pack(len(packed := msgpack.packb(PAYLOAD))) + packed
    received = trio.Event()
    expected = 0

    async def echo_server(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        try:
            while True:
                data = msgpack.unpackb(await read_frame(stream, buffer))
                reply = msgpack.packb(data)
                await stream.send_all(LENGTH.pack(len(reply)) + reply)
        except (EOFError, trio.BrokenResourceError):
            pass

    async def sink_server(stream: trio.SocketStream) -> None:
        nonlocal received
        buffer = bytearray()
        seen = 0
        try:
            while True:
                msgpack.unpackb(await read_frame(stream, buffer))
                seen += 1
                if seen == expected:
                    seen = 0
                    received.set()
        except (EOFError, trio.BrokenResourceError):
            pass

    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, host="127.0.0.1")
        (echo_listener,) = await nursery.start(serve, echo_server, 0)
        (sink_listener,) = await nursery.start(serve, sink_server, 0)
        echo = await trio.open_tcp_stream("127.0.0.1", echo_listener.socket.getsockname()[1])
        sink = await trio.open_tcp_stream("127.0.0.1", sink_listener.socket.getsockname()[1])
        buffer = bytearray()
        for _ in range(300):
            await echo.send_all(frame)
            await read_frame(echo, buffer)
        best_tell = best_ask = 0.0
        for _ in range(runs):
            expected = tells
            received = trio.Event()
            start = trio.current_time()
            batch = 256  # frames ready together go in one write, as the transport does
            for sent in range(0, tells, batch):
                await sink.send_all(frame * min(batch, tells - sent))
            await received.wait()
            best_tell = max(best_tell, tells / (trio.current_time() - start))
            start = trio.current_time()
            for _ in range(asks):
                await echo.send_all(frame)
                msgpack.unpackb(await read_frame(echo, buffer))
            best_ask = max(best_ask, asks / (trio.current_time() - start))
        await echo.aclose()
        await sink.aclose()
        nursery.cancel_scope.cancel()
    return best_tell, best_ask


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def run(quick: bool) -> None:
    tells, asks, runs = (20_000, 2_000, 2) if quick else (200_000, 20_000, 3)
    with garbage_collection(False):
        raw_tell, raw_ask = await raw_figures(tells, asks, runs)
        tell, ask = await tinyagents_figures(tells, asks, runs)
    print(
        f"tinyagents transport benchmarks, {'quick' if quick else 'full'} run: "
        f"{tells:,} tells, {asks:,} asks, best of {runs}, over 127.0.0.1"
    )
    print(f"  {'measurement':<28}{'tinyagents':>14}{'raw trio TCP':>14}{'ratio':>9}  target")
    ask_ratio = ask / raw_ask
    print(
        f"  {'remote ask round trips/s':<28}{ask:>14,.0f}{raw_ask:>14,.0f}{ask_ratio:>8.2f}x"
        f"  >= 0.5x  {verdict(ask_ratio >= 0.5)}"
    )
    print(
        f"  {'remote tell messages/s':<28}{tell:>14,.0f}{raw_tell:>14,.0f}"
        f"{tell / raw_tell:>8.2f}x  >= 100,000/s  {verdict(tell >= 100_000)}"
    )
    print("ratio = tinyagents / raw. Targets are goals: a MISS is reported, not asserted.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the transport against raw trio TCP")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    trio.run(run, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
