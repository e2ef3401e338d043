"""Frames: a 4-byte big-endian length, then that many bytes (a msgpack envelope).

Reading is buffered, so a frame split across TCP segments, or many frames in one
segment, read the same; every frame complete in one receive is taken in one pass.
"""

from __future__ import annotations

import struct

import trio

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
    pass rather than one per frame.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, *, limit: int = DEFAULT_FRAME_LIMIT) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, not {limit!r}")
        self.limit = limit
        self._stream = stream
        self._tail = bytearray()
        """What has arrived and not been returned: at most the start of one frame
        after :meth:`read_frames`, maybe more after :meth:`read`."""

    def _size(self, data: bytes | bytearray, pos: int) -> int:
        """The length announced by the header at ``pos``, checked."""
        size: int = _unpack_length(data, pos)[0]
        if size > self.limit:
            raise FrameTooLarge(size, self.limit)
        if size == 0:
            raise MalformedFrame("an empty frame")
        return size

    def _split(self, data: bytes | bytearray, frames: list[bytes], most: int) -> int:
        """Append up to ``most`` complete frames of ``data`` to ``frames``; where the
        rest starts. A bad header raises, unless frames before it were taken (it
        raises on the next read, nothing after it being read)."""
        pos = 0
        end = len(data)
        size_of = self._size
        while most and end - pos >= 4:
            try:
                size = size_of(data, pos)
            except (FrameTooLarge, MalformedFrame):
                if frames:
                    break
                raise
            stop = pos + 4 + size
            if stop > end:
                break
            frames.append(bytes(data[pos + 4 : stop]))
            pos = stop
            most -= 1
        return pos

    def _take(self, most: int) -> list[bytes]:
        """Up to ``most`` complete frames from what has arrived already."""
        frames: list[bytes] = []
        tail = self._tail
        if len(tail) >= 4:
            taken = self._split(tail, frames, most)
            if taken:
                del tail[:taken]
        return frames

    async def _receive(self, most: int) -> list[bytes]:
        """Receive until a frame is complete; up to ``most`` complete frames, or ``[]``
        when the stream ended cleanly between frames."""
        tail = self._tail
        while True:
            wanted = _CHUNK
            if len(tail) >= 4:
                wanted = max(wanted, 4 + self._size(tail, 0) - len(tail))
            data = await self._stream.receive_some(wanted)
            if not data:
                if tail:
                    raise MalformedFrame(
                        f"the stream ended inside a frame ({len(tail)} bytes of it arrived)"
                    )
                return []
            frames: list[bytes] = []
            if tail:
                tail += data
                taken = self._split(tail, frames, most)
                if taken:
                    del tail[:taken]
            else:  # the common case: frames straight from what arrived, the rest kept
                taken = self._split(data, frames, most)
                if taken < len(data):
                    tail += data[taken:]
            if frames:
                return frames

    async def read(self) -> bytes | None:
        """The next frame's bytes, or ``None`` when the stream ended cleanly between
        frames. Blocks until a whole frame has arrived.

        Raises:
            FrameTooLarge: the announced length is over the limit (nothing more is read).
            MalformedFrame: an empty frame, or the stream ended inside a frame.
            trio.BrokenResourceError and the like: what the stream raises.
        """
        frames = self._take(1)
        if frames:
            await trio.lowlevel.checkpoint()
        else:
            frames = await self._receive(1)
        return frames[0] if frames else None

    async def read_frames(self) -> list[bytes]:
        """Every frame complete in what has arrived (at least one, receiving until one
        is), in order; ``[]`` when the stream ended cleanly between frames. Raises as
        :meth:`read`, after returning the frames before a bad header."""
        frames = self._take(-1)
        if frames:
            await trio.lowlevel.checkpoint()
            return frames
        return await self._receive(-1)
