"""Mailboxes: the queue in front of every actor.

A mailbox is chosen when an actor is spawned::

    await system.spawn(Worker, mailbox=Bounded(100, overflow=Overflow.DROP_OLDEST))

``Unbounded()`` (the default) never refuses a message. ``Bounded(capacity, overflow)``
holds at most ``capacity`` user messages and applies ``overflow`` when full:

* ``BLOCK`` — ``tell``/``ask`` wait for room (``tell_nowait`` raises ``MailboxFull``);
* ``DROP_NEWEST`` — the incoming message is dropped;
* ``DROP_OLDEST`` — the oldest queued message is evicted to make room;
* ``FAIL`` — the sender gets :class:`~tinyagents.errors.MailboxFull`.

A dropped message is a dead letter, and an asked message that is dropped fails its
ask at once with :class:`~tinyagents.errors.MessageDropped`. System messages (stop,
watch notifications, restarts) have their own queue: they bypass capacity, are
never dropped, and are handled before user messages.

The mailbox is single-consumer: only its actor takes from it, one message at a time,
in FIFO order. Messages from one sender are kept in the order that sender sent them.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from typing import Any, Generic, TypeVar

import attrs
import trio

__all__ = ["Bounded", "Mailbox", "MailboxSpec", "MailboxStatistics", "Overflow", "Unbounded"]

T = TypeVar("T")


class Overflow(enum.Enum):
    """What a full :class:`Bounded` mailbox does with one more message."""

    BLOCK = "block"
    """Wait for room (``tell_nowait`` raises ``MailboxFull`` instead of waiting)."""
    DROP_NEWEST = "drop_newest"
    """Drop the incoming message (a dead letter)."""
    DROP_OLDEST = "drop_oldest"
    """Evict the oldest queued message (a dead letter) and enqueue the new one."""
    FAIL = "fail"
    """Raise :class:`~tinyagents.errors.MailboxFull` to the sender."""


@attrs.frozen
class Unbounded:
    """A mailbox without a capacity limit (the default). It never drops or blocks."""

    def create(self) -> Mailbox[Any]:
        """Make an empty mailbox of this kind."""
        return Mailbox(math.inf, Overflow.FAIL)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"mailbox capacity must be a positive int, not {value!r}")


@attrs.frozen
class Bounded:
    """A mailbox holding at most ``capacity`` user messages; ``overflow`` says what happens
    to one more."""

    capacity: int = attrs.field(validator=_positive)
    overflow: Overflow = attrs.field(
        default=Overflow.BLOCK, validator=attrs.validators.instance_of(Overflow)
    )

    def create(self) -> Mailbox[Any]:
        """Make an empty mailbox of this kind."""
        return Mailbox(self.capacity, self.overflow)


MailboxSpec = Unbounded | Bounded
"""Either mailbox kind, as accepted by ``spawn(..., mailbox=...)``."""


@attrs.frozen
class MailboxStatistics:
    """A snapshot of one mailbox's counters.

    ``length`` counts queued user messages, not the one being handled; ``busy`` tells
    whether one is being handled now. ``enqueued``, ``processed`` and ``dropped`` count
    since the actor was spawned (a restart keeps the mailbox and its counts).
    """

    length: int
    capacity: float
    enqueued: int
    processed: int
    dropped: int
    busy: bool


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
        "_blocked",
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
        self._blocked: trio.lowlevel.ParkingLot | None = None

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
        if len(queue) >= self.capacity:
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
            trio.lowlevel.reschedule(waiter)
        return None

    async def put(self, item: T) -> T | None:
        """Enqueue ``item``, waiting for room if the policy is BLOCK.

        Cancellation while waiting leaves the mailbox unchanged (the item is not
        enqueued). Same return value and errors as :meth:`put_nowait`, except that
        BLOCK waits instead of raising ``Full``.
        """
        while True:
            try:
                return self.put_nowait(item)
            except Full:
                if self.overflow is not Overflow.BLOCK:
                    raise
            if self._blocked is None:
                self._blocked = trio.lowlevel.ParkingLot()
            await self._blocked.park()

    def put_system(self, item: object) -> None:
        """Enqueue a system message: no capacity applies and it is handled first."""
        if self.system is None:
            self.system = deque()
        self.system.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    # -- the consumer ----------------------------------------------------------------

    def took_one(self) -> None:
        """Record that the consumer took a user message (frees room for a blocked sender)."""
        blocked = self._blocked
        if blocked is not None and blocked:
            blocked.unpark()

    async def wait(self) -> None:
        """Block until either queue is non-empty. Only the mailbox's actor calls this.

        A checkpoint: cancellation leaves the mailbox unchanged.
        """
        if self.queue or self.system:
            await trio.lowlevel.checkpoint()
            return
        self._waiter = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def close(self) -> list[T]:
        """Close the mailbox and return what was still queued, in order.

        Later puts raise ``Closed``; senders blocked for room wake up and see it.
        """
        self.closed = True
        rest = list(self.queue)
        self.queue.clear()
        if self._blocked is not None:
            self._blocked.unpark_all()
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
