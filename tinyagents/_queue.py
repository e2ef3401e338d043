"""The runtime queue behind every actor's mailbox (internal)."""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

import outcome
import trio

from . import _park
from .mailbox import MailboxStatistics, Overflow

__all__ = ["Closed", "Full", "Mailbox"]

T = TypeVar("T")

# the hot path's trio calls, looked up once
_current_task = trio.lowlevel.current_task
_wake = _park.wake  # the consumer parks with _park.park: see _park
_park_task = _park.park


class Full(Exception):
    """Internal: the mailbox is full and its policy refuses the message."""


class Closed(Exception):
    """Internal: the mailbox is closed; its actor has stopped."""


class Mailbox(Generic[T]):
    """The runtime queue behind an actor: one consumer, many producers.

    Not created directly: a :class:`Unbounded` or :class:`Bounded` spec makes one.
    Putting never switches tasks unless the policy is BLOCK and the mailbox is full.
    """

    __slots__ = (
        "_senders",
        "_waiter",
        "busy",
        "capacity",
        "closed",
        "dropped",
        "enqueued",
        "overflow",
        "processed",
        "queue",
        "system",
    )

    def __init__(self, capacity: float, overflow: Overflow) -> None:
        self.queue: deque[T] = deque()
        self.system: deque[Any] | None = None  # made on first use: most actors never need it
        self.capacity = capacity
        self.overflow = overflow
        self.enqueued = 0
        self.processed = 0
        self.dropped = 0
        self.busy = False
        self.closed = False
        self._waiter: trio.lowlevel.Task | None = None
        # senders waiting for room under BLOCK, oldest first: [task, item]
        self._senders: deque[list[Any]] | None = None

    def __len__(self) -> int:
        return len(self.queue)

    # -- producers -------------------------------------------------------------------

    def put_nowait(self, item: T) -> T | None:
        """Enqueue ``item`` without waiting.

        Returns the item the overflow policy dropped to keep the capacity (``item``
        itself under DROP_NEWEST, the evicted head under DROP_OLDEST), or ``None``.

        Raises:
            Closed: the mailbox is closed.
            Full: the mailbox is full and the policy is BLOCK or FAIL.
        """
        if self.closed:
            raise Closed
        queue = self.queue
        if len(queue) >= self.capacity or self._senders:
            overflow = self.overflow
            if overflow is Overflow.DROP_NEWEST:
                self.dropped += 1
                return item
            if overflow is Overflow.DROP_OLDEST:
                evicted = queue.popleft()
                self.dropped += 1
                queue.append(item)
                self.enqueued += 1
                return evicted
            raise Full
        queue.append(item)
        self.enqueued += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            _wake(waiter)
        return None

    async def put(self, item: T) -> T | None:
        """Enqueue ``item``, waiting for room if the policy is BLOCK.

        Waiting senders are served first come, first served: when the actor takes a
        message, the oldest waiting sender's item moves into the freed place.
        Cancellation while waiting leaves the mailbox unchanged (the item is not
        enqueued). Same return value and errors as :meth:`put_nowait`, except that
        BLOCK waits instead of raising ``Full``.
        """
        try:
            return self.put_nowait(item)
        except Full:
            if self.overflow is not Overflow.BLOCK:
                raise
        if self._senders is None:
            self._senders = deque()
        waiting: list[Any] = [trio.lowlevel.current_task(), item]
        self._senders.append(waiting)
        senders = self._senders

        def abort(_: Any) -> trio.lowlevel.Abort:
            senders.remove(waiting)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return None

    def put_system(self, item: object) -> None:
        """Enqueue a system message: no capacity applies and it is handled first."""
        if self.system is None:
            self.system = deque()
        self.system.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            _wake(waiter)

    # -- the consumer ----------------------------------------------------------------

    def took_one(self) -> None:
        """The consumer took a user message: hand the place to the oldest waiting sender."""
        senders = self._senders
        if senders and len(self.queue) < self.capacity:
            task, item = senders.popleft()
            self.queue.append(item)
            self.enqueued += 1
            trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Block until either queue is non-empty. Only the mailbox's actor calls this.

        A checkpoint: cancellation leaves the mailbox unchanged.
        """
        if self.queue or self.system:
            await trio.lowlevel.checkpoint()
            return
        self._waiter = _current_task()
        await _park_task(_park.trap(self._abort_wait))

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close(self) -> list[T]:
        """Close the mailbox and return what was still queued, in order.

        Later puts raise ``Closed``; senders waiting for room wake up with ``Closed``.
        """
        self.closed = True
        rest = list(self.queue)
        self.queue.clear()
        senders = self._senders
        while senders:
            task, _ = senders.popleft()
            trio.lowlevel.reschedule(task, outcome.Error(Closed()))
        return rest

    def statistics(self) -> MailboxStatistics:
        """Counters of this mailbox, as a frozen snapshot."""
        return MailboxStatistics(
            length=len(self.queue),
            capacity=self.capacity,
            enqueued=self.enqueued,
            processed=self.processed,
            dropped=self.dropped,
            busy=self.busy,
        )
