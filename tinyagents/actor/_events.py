"""Lifecycle events, dead letters, and the system's event stream."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = [
    "ActorFailed",
    "ActorRestarted",
    "ActorStarted",
    "ActorStopped",
    "DeadLetter",
    "DeadLetterReason",
    "Event",
    "EventStream",
    "StopReason",
    "Subscription",
]


class StopReason(enum.Enum):
    """Why an actor stopped."""

    STOPPED = "stopped"
    """It was asked to stop: by ``stop()``, by its parent stopping, or by shutdown."""
    FAILED = "failed"
    """Its supervisor stopped it after a failure (``Stop``, ``Escalate``, or too many
    restarts)."""
    NODE_UNREACHABLE = "node_unreachable"
    """A remote actor's node died, left, restarted as a new incarnation, or could no
    longer be reached; the error is a :class:`~tinyagents.errors.NodeUnreachable`."""


class DeadLetterReason(enum.Enum):
    """Why a message could not be delivered."""

    RECIPIENT_STOPPED = "recipient_stopped"
    """The recipient had stopped, or stopped while the message waited."""
    DROPPED_NEWEST = "dropped_newest"
    """A full ``DROP_NEWEST`` mailbox dropped the incoming message."""
    DROPPED_OLDEST = "dropped_oldest"
    """A full ``DROP_OLDEST`` mailbox evicted the message to make room."""
    HANDLER_FAILED = "handler_failed"
    """The recipient's handler raised while handling it."""
    LATE_REPLY = "late_reply"
    """A reply arrived after its ask had ended (timed out or cancelled)."""
    NO_ROUTEE = "no_routee"
    """A router had no routee to forward it to."""
    MAILBOX_FULL = "mailbox_full"
    """A ``FAIL`` mailbox refused a copy that a broadcast router passed on."""
    NODE_UNREACHABLE = "node_unreachable"
    """A remote recipient's node could not be reached, or the connection to it dropped
    before the message was written."""
    UNDECODABLE = "undecodable"
    """The receiving node could not decode the message (an unknown type id, a payload
    that does not structure)."""
    EXPIRED = "expired"
    """A remote ask's deadline passed while the message still waited in the mailbox:
    nobody waits for its answer any more, so it was not handled."""


@attrs.frozen
class ActorStarted:
    """An actor started (its ``started`` hook returned)."""

    ref: ActorRef


@attrs.frozen
class ActorRestarted:
    """An actor was restarted with a fresh instance after ``error``."""

    ref: ActorRef
    error: BaseException | None


@attrs.frozen
class ActorStopped:
    """An actor stopped, after its children; ``error`` is set when it stopped by failure."""

    ref: ActorRef
    reason: StopReason
    error: BaseException | None = None


@attrs.frozen
class ActorFailed:
    """An actor's handler (or hook) raised ``error``; ``directive`` is what supervision did
    (``"restart"``, ``"restart_all"``, ``"stop"`` or ``"escalate"``)."""

    ref: ActorRef
    error: BaseException
    directive: str


@attrs.frozen
class DeadLetter:
    """A message that could not be delivered or handled.

    ``sender`` is the sending actor's ref, or ``None`` for a message sent from outside
    any actor. ``recipient`` is ``None`` only for a late reply, whose asker has gone.
    """

    message: Any
    sender: ActorRef | None
    recipient: ActorRef | None
    reason: DeadLetterReason


Event = ActorStarted | ActorRestarted | ActorStopped | ActorFailed | DeadLetter
"""Any lifecycle event. Other services (the cluster) publish their own event types too."""


class Subscription(trio.abc.ReceiveChannel[Any]):
    """One subscriber's view of the event stream: a receive channel of events.

    It holds at most ``buffer`` undelivered events. When it is full, publishing drops
    this subscription's oldest event and counts it in :attr:`dropped`; publishers never
    wait, so a slow subscriber slows nothing but itself.
    """

    def __init__(self, buffer: int, kinds: tuple[type, ...]) -> None:
        self._events: deque[Any] = deque()
        self._buffer = buffer
        self._kinds = kinds
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False
        self.dropped = 0
        """How many events this subscription lost because its buffer was full."""

    def _offer(self, event: object) -> None:
        if self._kinds and not isinstance(event, self._kinds):
            return
        events = self._events
        if len(events) >= self._buffer:
            events.popleft()
            self.dropped += 1
        events.append(event)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    def receive_nowait(self) -> Any:
        """Return the next event, or raise ``trio.WouldBlock`` if there is none yet."""
        if self._closed:
            raise trio.ClosedResourceError("this subscription is closed")
        if not self._events:
            raise trio.WouldBlock
        return self._events.popleft()

    async def receive(self) -> Any:
        """Wait for the next event and return it. A checkpoint; cancellation loses nothing."""
        if self._closed:
            raise trio.ClosedResourceError("this subscription is closed")
        if self._events:
            await trio.lowlevel.checkpoint()
            return self._events.popleft()
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already receiving these events")
        self._waiter = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if self._closed:
            raise trio.ClosedResourceError("this subscription is closed")
        return self._events.popleft()

    def _close(self) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    async def aclose(self) -> None:
        """Stop receiving events. Idempotent."""
        self._close()
        await trio.lowlevel.checkpoint()


class EventStream:
    """Publishes lifecycle events to any number of subscribers.

    Obtained as ``system.events``; not created directly.
    """

    __slots__ = ("_subscriptions",)

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    @property
    def active(self) -> bool:
        """Whether anybody is subscribed (publishers skip building events otherwise)."""
        return bool(self._subscriptions)

    def publish(self, event: object) -> None:
        """Hand ``event`` to every subscriber. Never blocks, never raises."""
        for subscription in self._subscriptions:
            subscription._offer(event)

    @asynccontextmanager
    async def subscribe(self, *kinds: type, buffer: int = 1024) -> AsyncIterator[Subscription]:
        """Receive events published from now on, until the block ends.

        ``kinds`` restricts the subscription to those event classes (all events when
        empty). ``buffer`` bounds the undelivered events kept for this subscriber;
        beyond it, its oldest are dropped and counted in ``subscription.dropped``.

        Usage::

            async with system.events.subscribe(DeadLetter) as events:
                async for event in events:
                    ...
        """
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, not {buffer}")
        subscription = Subscription(buffer, kinds)
        self._subscriptions.append(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.remove(subscription)
            subscription._close()
