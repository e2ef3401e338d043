"""Frames: a 4-byte big-endian length, then that many bytes (a msgpack envelope).

Reading is buffered by :class:`tricycle.BufferedReceiveStream`, so a frame split
across TCP segments, or many frames in one segment, read the same.
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
_CHUNK = 64 * 1024


def encode_frame(data: bytes) -> bytes:
    """``data`` with its length in front. The caller checks it against the limit."""
    return _LENGTH.pack(len(data)) + data


class FrameReader:
    """Reads whole frames from ``stream``, refusing any longer than ``limit`` bytes.

    One reader per stream, used by one task at a time (reads are not concurrent).
    """

    def __init__(self, stream: trio.abc.ReceiveStream, *, limit: int = DEFAULT_FRAME_LIMIT) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, not {limit!r}")
        self.limit = limit
        self._buffered = BufferedReceiveStream(stream, chunk_size=_CHUNK)

    async def read(self) -> bytes | None:
        """The next frame's bytes, or ``None`` when the stream ended cleanly between
        frames. Blocks until a whole frame has arrived.

        Raises:
            FrameTooLarge: the announced length is over the limit (nothing more is read).
            MalformedFrame: an empty frame, or the stream ended inside a frame.
            trio.BrokenResourceError and the like: what the stream raises.
        """
        buffered = self._buffered
        try:
            header = await buffered.receive_all_or_none(4)
            if header is None:
                return None
            (size,) = _LENGTH.unpack(header)
            if size > self.limit:
                raise FrameTooLarge(size, self.limit)
            if size == 0:
                raise MalformedFrame("an empty frame")
            return bytes(await buffered.receive_exactly(size))
        except ValueError as error:
            if isinstance(error, MalformedFrame):
                raise
            raise MalformedFrame(f"the stream ended inside a frame ({error})") from None
