"""A send channel that forwards chunks without ever closing its target."""

from __future__ import annotations

import trio

from ._types import Chunk

__all__ = ["ForwardingChannel"]


class ForwardingChannel(trio.abc.SendChannel[Chunk]):
    """Sends every chunk on to ``target`` and counts them; closing it leaves ``target``
    open.

    Give one to an inner provider call when the caller's channel must outlive that
    call (a retry, a fallback, an agent's several tool rounds): the inner call closes
    its channel as providers do, and the owner closes ``target`` once at the very end.
    """

    def __init__(self, target: trio.abc.SendChannel[Chunk]) -> None:
        self.target = target
        self.sent = 0
        """How many chunks were passed to ``target`` (counted before each is passed, so a
        chunk whose send was interrupted counts: it may have reached the caller)."""
        self.first_sent_at: float | None = None
        """``trio.current_time()`` of the first chunk, if any."""
        self._closed = False

    async def send(self, value: Chunk) -> None:
        """Send ``value`` to the target (waits as the target's ``send`` does)."""
        if self._closed:
            raise trio.ClosedResourceError("this forwarding channel is closed")
        if self.sent == 0:
            self.first_sent_at = trio.current_time()
        self.sent += 1
        await self.target.send(value)

    async def aclose(self) -> None:
        """Close this channel only; the target stays open."""
        self._closed = True
        await trio.lowlevel.checkpoint()
