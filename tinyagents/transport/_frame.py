"""Frames: a 4-byte big-endian length, then that many bytes (a msgpack envelope).

Reading is buffered by a :class:`tricycle.BufferedReceiveStream`, so a frame split
across TCP segments, or many frames in one segment, read the same. Every frame complete
in one receive is taken in one pass; the start of a frame that has not fully arrived is
put back into the buffered stream, which then reads exactly the bytes still missing.
"""

from __future__ import annotations

import struct

import trio
from tricycle import BufferedReceiveStream

from ..errors import FrameTooLarge, MalformedFrame

__all__ = ["DEFAULT_FRAME_LIMIT", "FrameReader", "encode_frame"]

DEFAULT_FRAME_LIMIT = 4 * 1024 * 1024
"""The largest frame a transport accepts or sends unless configured otherwise (4 MiB)."""

_LENGTH = struct.Struct(">I")
_unpack_length = _LENGTH.unpack_from
_CHUNK = 64 * 1024


def encode_frame(data: bytes) -> bytes:
    """``data`` with its length in front. The caller checks it against the limit."""
    return _LENGTH.pack(len(data)) + data


class FrameReader:
    """Reads whole frames from ``stream``, refusing any longer than ``limit`` bytes.

    One reader per stream, used by one task at a time (reads are not concurrent).
    :meth:`read` returns one frame; :meth:`read_frames` every frame complete in what
    has arrived, so that a burst of small frames costs one receive and one scheduler
    pass rather than one per frame. Cancelling a read loses nothing: what had arrived
    is read by the next call.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, *, limit: int = DEFAULT_FRAME_LIMIT) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, not {limit!r}")
        self.limit = limit
        # chunk_size=1: the buffered stream asks for exactly the bytes a read lacks, so
        # it only ever holds the start of one frame (put back by read_frames)
        self._buffered = BufferedReceiveStream(stream, chunk_size=1)
        self._stream = stream
        self._partial = False
        """Whether the buffered stream holds the start of a frame."""

    def _size(self, data: bytes | bytearray, pos: int) -> int:
        """The length announced by the header at ``pos``, checked."""
        size: int = _unpack_length(data, pos)[0]
        if size > self.limit:
            raise FrameTooLarge(size, self.limit)
        if size == 0:
            raise MalformedFrame("an empty frame")
        return size

    def _split(self, data: bytes, frames: list[bytes]) -> int:
        """Append the complete frames at the start of ``data`` to ``frames``; where
        the rest starts. A bad header raises, unless frames before it were taken (it
        raises on the next read, nothing after it being read)."""
        pos = 0
        end = len(data)
        size_of = self._size
        while end - pos >= 4:
            try:
                size = size_of(data, pos)
            except (FrameTooLarge, MalformedFrame):
                if frames:
                    break
                raise
            stop = pos + 4 + size
            if stop > end:
                break
            frames.append(data[pos + 4 : stop])
            pos = stop
        return pos

    async def _read_exactly(self, size: int, *, started: bool) -> bytes | None:
        """``size`` bytes from the buffered stream; ``None`` at a clean end of the
        stream (nothing of a frame ``started``)."""
        data = await self._buffered.receive(size)
        if len(data) == size:
            return bytes(data)
        if data or started:
            self._buffered.unget(data)
            self._partial = True
            arrived = len(data) + (4 if started else 0)
            raise MalformedFrame(f"the stream ended inside a frame ({arrived} bytes of it arrived)")
        return None

    async def read(self) -> bytes | None:
        """The next frame's bytes, or ``None`` when the stream ended cleanly between
        frames. Blocks until a whole frame has arrived.

        Raises:
            FrameTooLarge: the announced length is over the limit (nothing more is read).
            MalformedFrame: an empty frame, or the stream ended inside a frame.
            trio.BrokenResourceError and the like: what the stream raises.
        """
        self._partial = True  # until the frame is whole: a cancelled read keeps its bytes
        header = await self._read_exactly(4, started=False)
        if header is None:
            self._partial = False
            return None
        try:
            size = self._size(header, 0)
            body = await self._read_exactly(size, started=True)
        except BaseException:
            self._buffered.unget(header)
            raise
        self._partial = False
        return body

    async def read_frames(self) -> list[bytes]:
        """Every frame complete in what has arrived (at least one, receiving until one
        is), in order; ``[]`` when the stream ended cleanly between frames. Raises as
        :meth:`read`, after returning the frames before a bad header."""
        if self._partial:
            frame = await self.read()  # the rest of the frame that had begun
            return [] if frame is None else [frame]
        data = bytes(await self._stream.receive_some(_CHUNK))  # no copy of bytes
        if not data:
            return []
        frames: list[bytes] = []
        taken = self._split(data, frames)
        if taken < len(data):
            self._buffered.unget(data[taken:])
            self._partial = True
            if not frames:
                return await self.read_frames()
        return frames
