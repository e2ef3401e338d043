"""The Actor base class, actor specs, Terminated, and Reply handles."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import outcome
import trio

from .. import _park
from ..errors import ReplyError
from ._events import StopReason

if TYPE_CHECKING:
    from .._tracing import AskTrace
    from ._cell import ActorCell, Context
    from ._ref import ActorRef
    from ._timer import AskTimer

__all__ = ["Actor", "ActorSpec", "Reply", "Terminated"]

# the ask path's trio calls, looked up once
_current_task = trio.lowlevel.current_task
_wake = _park.wake  # an asker parks with _park.park, woken when its reply is settled
_park_task = _park.park
_trap = _park.trap
_ABORTED = trio.lowlevel.Abort.SUCCEEDED


class Actor:
    """Base class of actors: subclass it and implement :meth:`receive`.

    An actor handles one message at a time, in mailbox order. Its state lives in the
    instance; a restart replaces the instance with a fresh one from the same factory.

    Example::

        class Counter(Actor):
            def __init__(self) -> None:
                self.count = 0

            async def receive(self, ctx: Context, message: object) -> object:
                self.count += 1
                return self.count   # the reply, when the message was asked
    """

    async def receive(self, ctx: Context, message: Any) -> Any:
        """Handle one message. The return value is the reply if the message was asked.

        Raising an :class:`Exception` fails this message (an asker gets
        :class:`~tinyagents.errors.ActorFailed`) and hands the actor to its supervisor.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement receive()")

    async def started(self, ctx: Context) -> None:
        """Called once before the first message. An exception here fails the spawn."""

    async def stopped(self, ctx: Context) -> None:
        """Called once when the actor stops, after its tasks and children have stopped.

        That is when it was asked to stop, or its supervisor stopped it after a
        failure; also when its last handler was cancelled at the end of a stop's grace.
        It runs shielded from cancellation from outside, for at most the stop's grace
        (the system's ``shutdown_timeout`` after a failure): beyond that it is cancelled,
        and that is reported as an ``ActorFailed`` event whose error is
        :class:`~tinyagents.errors.HookTimeout`. It is not called at all for an actor
        whose ``started`` hook failed.
        """

    async def restarted(self, ctx: Context, error: BaseException | None) -> None:
        """Called on the fresh instance after a restart, before its next message.

        ``error`` is the failure that caused the restart (``None`` when a sibling's
        failure restarted it under ``AllForOne``). By default it calls :meth:`started`.
        """
        await self.started(ctx)


@runtime_checkable
class ActorSpec(Protocol):
    """Anything that can build actors: ``spawn`` accepts one in place of a factory.

    ``create_actor`` is called at spawn and again for every restart, and must return a
    fresh :class:`Actor` each time.
    """

    def create_actor(self) -> Actor:
        """Return a fresh actor instance."""
        ...


@attrs.frozen
class Terminated:
    """Delivered to a watcher's ``receive`` once when a watched actor has stopped.

    ``reason`` says why; ``error`` is the failure when ``reason`` is ``FAILED``.
    """

    ref: ActorRef
    reason: StopReason
    error: BaseException | None = None


class Reply:
    """The pending reply to one asked message.

    Obtained from :meth:`Context.detach_reply` to answer later (for instance from
    another task). Exactly one of :meth:`send` or :meth:`fail` takes effect; if the
    actor stops first, the asker gets :class:`~tinyagents.errors.ActorStopped`.
    """

    __slots__ = (
        "_abandoned",
        "_done",
        "_entry",
        "_error",
        "_expired",
        "_owner",
        "_task",
        "_timer",
        "_trace",
        "_value",
        "deadline",
        "message",
    )

    def __init__(self, message: object) -> None:
        self.message = message
        self._done = False
        self._abandoned = False
        # a remote ask whose deadline passed: its message is skipped, not handled
        self._expired = False
        self._value: object = None
        self._error: BaseException | None = None
        self._task: trio.lowlevel.Task | None = None
        self._owner: ActorCell | None = None
        self._timer: AskTimer | None = None  # the timer watching its deadline, if any
        self._entry: list[Any] | None = None  # its place in that timer's heap, if there
        # the trace context it carries (a _tracing.AskTrace) while tracing is on
        self._trace: AskTrace | None = None
        self.deadline = math.inf
        """The asker's deadline (trio time): when its ask times out."""

    @property
    def done(self) -> bool:
        """Whether the reply (or failure) has been given."""
        return self._done

    def send(self, value: object) -> None:
        """Answer the ask with ``value``.

        Raises:
            ReplyError: the ask was already answered or failed.
        """
        if not self._settle(value, None):
            raise ReplyError("this ask was already answered")

    def fail(self, error: BaseException) -> None:
        """End the ask by raising ``error`` in the asker.

        Raises:
            ReplyError: the ask was already answered or failed.
        """
        if not self._settle(None, error):
            raise ReplyError("this ask was already answered")

    def _settle(self, value: object, error: BaseException | None) -> bool:
        if self._done:
            return False
        self._done = True
        self._value = value
        self._error = error
        trace = self._trace
        if trace is not None:
            trace.end(error)
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.forget(self)
        owner = self._owner
        if owner is not None:
            detached = owner.detached
            if detached:
                detached.discard(self)
            self._owner = None
        task = self._task
        if task is not None:
            self._task = None
            _wake(task)
        elif self._abandoned and error is None and owner is not None:
            owner.late_reply(value)
        return True

    async def _wait(self) -> object:
        """Wait for the reply; raises the failure. Cancellation abandons the reply."""
        if not self._done:
            self._task = _current_task()
            await _park_task(_trap(self._abort))
        else:
            await trio.lowlevel.checkpoint()
        if self._error is not None:
            raise self._error
        return self._value

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._task = None
        self._abandoned = True
        if self._trace is not None:
            self._trace.abandoned()
        return _ABORTED

    def _expire(self, error: BaseException) -> None:
        """The ask's deadline passed: end the asker's wait with ``error``."""
        self._timer = None
        if self._trace is not None:
            self._trace.end(error)
        task = self._task
        if task is not None and not self._done:
            self._task = None
            self._abandoned = True
            trio.lowlevel.reschedule(task, outcome.Error(error))
