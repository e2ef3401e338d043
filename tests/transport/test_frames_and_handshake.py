"""Frames, the codec and the handshake against bad input: random and mutated bytes
(>= 100,000 inputs each) raise only the transport's typed errors, and a node keeps
serving its peers while a stranger sends it garbage."""

from __future__ import annotations

import random
import struct
from typing import Any

import attrs
import msgpack
import pytest
import trio
import trio.testing

from tinyagents import Actor, ActorSystem, Context
from tinyagents.agent import Prompt, Response
from tinyagents.errors import (
    CodecError,
    FrameTooLarge,
    HandshakeFailed,
    MalformedFrame,
    NotSerializable,
    UnknownMessageType,
)
from tinyagents.llm import Message, ToolCall, Usage
from tinyagents.transport import Codec, MessageRegistry, Transport, message
from tinyagents.transport._frame import FrameReader, encode_frame
from tinyagents.transport._handshake import NodeIdentity, accept_handshake, dial_handshake

FUZZ_INPUTS = 100_000
GUARD = 20


class Hooks:
    """Wire hooks without a transport: refs and channels are refused as malformed."""

    peer = "fuzzer"

    def ref_to_wire(self, ref: Any) -> list[object]:
        raise AssertionError("no refs here")

    def ref_from_wire(self, data: list[object]) -> Any:
        raise CodecError(f"no refs here: {data!r:.40}")

    def channel_to_wire(self, channel: Any) -> int:
        return 1

    def channel_from_wire(self, stream_id: int) -> Any:
        raise CodecError("no channels here")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A copy of ``data`` with a few bytes flipped, cut, inserted or duplicated."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(len(buffer) + 1)
        if choice < 0.4 and buffer:
            buffer[min(position, len(buffer) - 1)] = rng.randrange(256)
        elif choice < 0.6:
            del buffer[position:]
        elif choice < 0.8:
            buffer[position:position] = rng.randbytes(rng.randint(1, 8))
        else:
            buffer[position:position] = buffer[position : position + rng.randint(1, 16)]
    return bytes(buffer)


@message
@attrs.frozen
class Parcel:
    label: str
    weights: list[float]
    note: str | None = None


SAMPLES: list[object] = [
    "hello",
    {"n": [1, 2.5, b"x", None, True]},
    Parcel("box", [1.0, 2.5]),
    Prompt("summarise this"),
    Response(Message.assistant("done"), Usage(3, 4), agent="bot", steps=()),
    [Parcel("a", []), {"inner": Parcel("b", [3.0], note="n")}],
    Message.assistant("", [ToolCall("c1", "search", {"q": "trio"})]),
    ValueError("boom"),
]


def test_the_codec_round_trips_the_built_in_and_registered_kinds() -> None:
    codec = Codec()
    hooks = Hooks()
    for value in SAMPLES[:-1]:
        type_id, payload = codec.to_wire(value, hooks)
        back = codec.from_wire(type_id, payload, hooks)
        if isinstance(value, Prompt):  # compared by identity: compare its fields
            assert (back.text, back.stream) == (value.text, value.stream)
        else:
            assert back == value
    type_id, payload = codec.to_wire(SAMPLES[-1], hooks)
    error = codec.from_wire(type_id, payload, hooks)
    assert (error.type_name, error.text, error.node) == ("ValueError", "boom", "fuzzer")


def test_the_codec_refuses_what_cannot_cross_with_typed_errors() -> None:
    @attrs.frozen
    class Unregistered:
        value: int

    codec = Codec()
    hooks = Hooks()
    with pytest.raises(NotSerializable, match="register it with"):
        codec.to_wire(Unregistered(1), hooks)
    with pytest.raises(NotSerializable):
        codec.to_wire({"a set": {1, 2}}, hooks)
    with pytest.raises(UnknownMessageType):
        codec.from_wire("nobody.Knows", msgpack.packb({}), hooks)
    with pytest.raises(CodecError, match="does not decode"):
        codec.from_wire(Parcel.__module__ + ".Parcel", msgpack.packb({"label": 3}), hooks)
    with pytest.raises(CodecError):
        codec.from_wire("", b"\xc1", hooks)  # never a valid msgpack byte


def test_a_registry_refuses_a_taken_id_and_non_attrs_classes() -> None:
    registry = MessageRegistry()
    assert registry.get("tinyagents.Prompt") is Prompt  # the built-in types are there

    @attrs.frozen
    class One:
        x: int

    @attrs.frozen
    class Other:
        x: int

    registry.register(One, "same")
    registry.register(One, "same")  # again: nothing happens
    with pytest.raises(ValueError, match="taken"):
        registry.register(Other, "same")
    with pytest.raises(TypeError, match="attrs class"):
        registry.register(dict, "plain")
    registry.unregister(One)
    assert registry.get("same") is None


def test_fuzz_envelopes_and_payloads_raise_only_typed_errors() -> None:
    rng = random.Random(20261206)
    codec = Codec()
    hooks = Hooks()
    unpack = codec.unpacker(hooks)
    pack = codec.packer(hooks)
    seeds = [
        pack([0, "/user/echo", 1, 2, None, type_id, payload, None])
        for type_id, payload in (codec.to_wire(value, hooks) for value in SAMPLES)
    ]
    payloads = [codec.to_wire(value, hooks) for value in SAMPLES]
    outcomes = {"ok": 0, "error": 0}
    for i in range(FUZZ_INPUTS):
        data = rng.randbytes(rng.randint(0, 64)) if i % 4 == 0 else mutate(rng, rng.choice(seeds))
        try:
            unpack(data)
            outcomes["ok"] += 1
        except MalformedFrame:
            outcomes["error"] += 1
        type_id, payload = rng.choice(payloads)
        try:
            codec.from_wire(type_id, mutate(rng, payload), hooks)
        except CodecError:
            pass
    assert outcomes["ok"]
    assert outcomes["error"]


class FeedStream(trio.abc.Stream):
    """A stream that yields ``data`` in random pieces, then EOF, and swallows sends."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self.data = data
        self.rng = rng
        self.sent: list[bytes] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        pass

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.data:
            return b""
        size = self.rng.randint(1, min(len(self.data), max_bytes or 65536))
        piece, self.data = self.data[:size], self.data[size:]
        return piece

    async def aclose(self) -> None:
        pass


async def test_fuzz_the_frame_reader() -> None:
    rng = random.Random(7)
    valid = b"".join(encode_frame(rng.randbytes(rng.randint(1, 300))) for _ in range(50))
    inputs = 0
    while inputs < FUZZ_INPUTS:
        data = mutate(rng, valid) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 512))
        reader = FrameReader(FeedStream(data, rng), limit=1024)
        try:
            if rng.random() < 0.5:
                while (frame := await reader.read()) is not None:
                    assert 0 < len(frame) <= 1024
                    inputs += 1
            else:
                while frames := await reader.read_frames():
                    assert all(0 < len(frame) <= 1024 for frame in frames)
                    inputs += len(frames)
        except (MalformedFrame, FrameTooLarge):
            pass
        inputs += 1


async def test_a_frame_split_anywhere_reads_the_same() -> None:
    rng = random.Random(3)
    frames = [rng.randbytes(rng.randint(1, 5000)) for _ in range(20)]
    reader = FrameReader(FeedStream(b"".join(map(encode_frame, frames)), rng))
    assert [await reader.read() for _ in frames] == frames
    assert await reader.read() is None
    with pytest.raises(FrameTooLarge) as caught:
        await FrameReader(FeedStream(struct.pack(">I", 5000) + b"x", rng), limit=4096).read()
    assert (caught.value.size, caught.value.limit) == (5000, 4096)


class PieceStream(trio.abc.ReceiveStream):
    """A stream that yields the given pieces, one per receive (no more than asked for:
    the rest of a piece comes next), then EOF."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.receives = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        self.receives += 1
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if max_bytes is not None and len(piece) > max_bytes:
            self.pieces.insert(0, piece[max_bytes:])
            piece = piece[:max_bytes]
        return piece

    async def aclose(self) -> None:
        pass


async def test_every_complete_frame_of_one_receive_is_read_in_one_pass() -> None:
    frames = [f"frame {i}".encode() for i in range(100)]
    data = b"".join(map(encode_frame, frames))
    last = encode_frame(b"the last one")
    stream = PieceStream(data + last[:7], last[7:])
    reader = FrameReader(stream)
    assert await reader.read_frames() == frames  # in order, from one receive
    assert stream.receives == 1
    assert await reader.read_frames() == [b"the last one"]  # the split one, joined
    assert stream.receives == 2
    assert await reader.read_frames() == []  # a clean end between frames
    # a frame split anywhere, many frames per piece: the same frames, in order
    rng = random.Random(9)
    many = [rng.randbytes(rng.randint(1, 3000)) for _ in range(200)]
    reader = FrameReader(FeedStream(b"".join(map(encode_frame, many)), rng))
    read: list[bytes] = []
    while batch := await reader.read_frames():
        read += batch
    assert read == many


async def test_frames_before_a_bad_header_arrive_then_it_raises() -> None:
    good = encode_frame(b"one") + encode_frame(b"two")
    stream = PieceStream(good + struct.pack(">I", 5000) + b"x", b"never read")
    reader = FrameReader(stream, limit=4096)
    assert await reader.read_frames() == [b"one", b"two"]
    with pytest.raises(FrameTooLarge):
        await reader.read_frames()
    assert stream.receives == 1  # nothing more was read
    reader = FrameReader(PieceStream(good + struct.pack(">I", 0)))
    assert await reader.read_frames() == [b"one", b"two"]
    with pytest.raises(MalformedFrame, match="empty"):
        await reader.read_frames()
    reader = FrameReader(PieceStream(good + encode_frame(b"cut short")[:6]))
    assert await reader.read_frames() == [b"one", b"two"]
    with pytest.raises(MalformedFrame, match="ended inside a frame"):
        await reader.read_frames()


async def test_read_takes_one_frame_and_leaves_the_rest_to_later_limits() -> None:
    # a handshake frame read under a small limit, then a larger frame that came with it
    big = b"y" * 3000
    stream = PieceStream(encode_frame(b"hello") + encode_frame(big) + encode_frame(b"z"))
    reader = FrameReader(stream, limit=1024)
    assert await reader.read() == b"hello"
    reader.limit = 4096
    assert await reader.read_frames() == [big, b"z"]
    assert await reader.read() is None


LOCAL = NodeIdentity("acceptor", 11, "tinyagents", ("127.0.0.1", 1))
REMOTE = NodeIdentity("dialer", 22, "tinyagents", ("127.0.0.1", 2))


async def test_fuzz_the_handshake_raises_only_typed_errors() -> None:
    rng = random.Random(11)
    # a real dialer's first frames, recorded, to mutate
    recorder = FeedStream(b"", rng)
    with pytest.raises(HandshakeFailed):
        await dial_handshake(recorder, FrameReader(recorder), REMOTE, secret=b"0123456789")
    hello = recorder.sent[0]
    proof = encode_frame(msgpack.packb({"proof": b"\x00" * 32}))
    seed = hello + proof
    inputs = 0
    for i in range(FUZZ_INPUTS * 2 // 5):
        data = mutate(rng, seed) if i % 3 else rng.randbytes(rng.randint(0, 200))
        for secret in (None, b"0123456789"):
            inputs += 1
            stream = FeedStream(data, rng)
            with pytest.raises((HandshakeFailed, MalformedFrame, FrameTooLarge)):
                await accept_handshake(stream, FrameReader(stream), LOCAL, secret=secret)
    # and the dialer's side against garbage answers
    for _ in range(FUZZ_INPUTS // 5):
        inputs += 1
        stream = FeedStream(mutate(rng, hello), rng)
        with pytest.raises((HandshakeFailed, MalformedFrame, FrameTooLarge)):
            await dial_handshake(stream, FrameReader(stream), REMOTE, secret=b"0123456789")
    assert inputs >= FUZZ_INPUTS


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


async def test_a_node_serves_its_peers_while_a_stranger_sends_garbage() -> None:
    rng = random.Random(5)
    with trio.fail_after(GUARD):
        async with (
            ActorSystem("a") as system_a,
            Transport(system_a, secret=b"shared secret") as _,
            ActorSystem("b") as system_b,
            Transport(system_b, secret=b"shared secret") as transport_b,
        ):
            await system_b.spawn(Echo, name="echo")
            host, port = transport_b.address
            ref = system_a.ref_for(f"tinyagents://b@{host}:{port}/user/echo")
            assert await ref.ask("before", timeout=10) == "before"
            for i in range(30):
                stranger = await trio.open_tcp_stream(host, port)
                if i % 3 == 0:
                    garbage = struct.pack(">I", 1 << 30)  # a frame far over the limit
                else:
                    garbage = rng.randbytes(rng.randint(1, 2000))
                try:
                    await stranger.send_all(garbage)
                    await stranger.send_eof()
                    while await stranger.receive_some():
                        pass
                except trio.BrokenResourceError:
                    pass
                await stranger.aclose()
                assert await ref.ask(i, timeout=10) == i
            stats = transport_b.stats
            assert stats.connections_refused == 30
            assert stats.frames_too_large >= 10
            assert stats.connections_accepted == 1


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_read_cancelled_inside_a_frame_loses_none_of_it(
    clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = FrameReader(receive)
    first, second = b"a" * 5000, b"b" * 10
    data = encode_frame(first) + encode_frame(second)
    await send.send_all(data[:3])  # half a header
    with trio.move_on_after(1) as scope:
        await reader.read_frames()
    assert scope.cancelled_caught
    await send.send_all(data[3:2000])  # the header and part of the body
    with trio.move_on_after(1) as scope:
        await reader.read_frames()
    assert scope.cancelled_caught
    await send.send_all(data[2000:])
    assert await reader.read_frames() == [first]
    assert await reader.read_frames() == [second]
