"""ActorRef: the handle through which everyone talks to an actor."""

from __future__ import annotations

import contextvars
import math
from typing import TYPE_CHECKING, Any, final

import trio

from .. import _park, _tracing
from .._queue import Full
from .._validate import check_seconds
from ..errors import AskTimeout, MailboxFull
from ..mailbox import MailboxStatistics, Overflow
from ._base import Reply

if TYPE_CHECKING:
    from ._cell import ActorCell, Envelope

__all__ = ["ActorRef", "check_grace", "current_cell"]

current_cell: contextvars.ContextVar[ActorCell | None] = contextvars.ContextVar(
    "tinyagents_current_cell", default=None
)
"""The actor whose task is running (``None`` outside actors): the implicit sender."""

_FAIRNESS_MASK = 127
_INF = math.inf
_current_task = trio.lowlevel.current_task
_park_task = _park.park
_trap = _park.trap


def check_grace(grace: float | None, default: float) -> float:
    """The grace of a stop: ``default`` for ``None``; a number >= 0 (``math.inf`` waits
    for the handler however long it takes)."""
    if grace is None:
        return default
    return check_seconds(grace, "a stop's grace")


def _implicit_sender() -> ActorRef | None:
    cell = current_cell.get()
    return None if cell is None else cell.ref


@final
class ActorRef:
    """A handle to one actor: send it messages, ask it questions, stop it.

    Refs are created by ``spawn``, never directly. They are cheap, hashable, and
    compare equal when they denote the same actor incarnation: a new actor spawned
    later under the same path is a different ref.
    """

    __slots__ = ("_cell",)

    _cell: ActorCell

    def __init__(self) -> None:
        raise TypeError("ActorRef objects are created by spawn()")

    @classmethod
    def _create(cls, cell: ActorCell) -> ActorRef:
        ref = object.__new__(cls)
        ref._cell = cell
        return ref

    # -- identity --------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The actor's path in its system, such as ``/user/team/bot``."""
        return self._cell.path

    @property
    def name(self) -> str:
        """The last element of :attr:`path`."""
        return self._cell.name

    @property
    def uid(self) -> int:
        """A number telling this incarnation apart from earlier actors with the same path."""
        return self._cell.uid

    @property
    def system_name(self) -> str:
        """The name of the actor system the actor lives in (for a remote actor, its
        node's id, which is its system's name unless the node was given another)."""
        cell = self._cell
        return cell.node if cell.is_remote else cell.system.name

    @property
    def node(self) -> str:
        """The id of the node the actor lives on (a local actor: its system's
        :attr:`~tinyagents.ActorSystem.node_id`)."""
        return self._cell.node

    @property
    def is_local(self) -> bool:
        """Whether the actor lives in this process's system (not on another node)."""
        return not self._cell.is_remote

    @property
    def uri(self) -> str:
        """The actor's address across nodes: ``tinyagents://<node>/user/...``, which
        :meth:`~tinyagents.ActorSystem.ref_for` turns back into a ref."""
        cell = self._cell
        return f"tinyagents://{cell.node}{cell.path}"

    @property
    def is_alive(self) -> bool:
        """Whether the actor has not yet stopped (for a remote actor: as far as this
        node knows; it learns of a stop by a watch, a failed delivery, or the node's
        death)."""
        return self._cell.state < 3

    def __repr__(self) -> str:
        cell = self._cell
        if cell.is_remote:
            return f"<ActorRef {self.uri}#{cell.uid}>"
        return f"<ActorRef {cell.path}#{cell.uid}>"

    def __eq__(self, other: object) -> bool:
        if type(other) is not ActorRef:
            return NotImplemented
        return self._cell is other._cell

    def __hash__(self) -> int:
        return id(self._cell) >> 4

    def __lt__(self, other: ActorRef) -> bool:
        if type(other) is not ActorRef:
            return NotImplemented
        return (self.path, self.uid) < (other.path, other.uid)

    def statistics(self) -> MailboxStatistics:
        """A snapshot of the actor's mailbox counters."""
        return self._cell.mailbox.statistics()

    # -- messaging -------------------------------------------------------------------

    async def tell(self, message: Any, *, sender: ActorRef | None = None) -> None:
        """Send ``message`` without waiting for it to be handled.

        The mailbox's overflow policy applies: BLOCK waits for room, DROP_* may drop a
        message (a dead letter), FAIL raises. A message to a stopped actor becomes a
        dead letter. ``sender`` defaults to the actor whose task is calling, if any.

        A cancellation point; it yields to the scheduler only when waiting for room
        (and, for fairness, once in a while), so a burst of tells costs no task
        switches. Cancelled while waiting for room, the message is not sent.

        Raises:
            MailboxFull: the mailbox is full and its policy is FAIL.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        cell = self._cell
        envelope = (message, sender if sender is not None else _implicit_sender(), None)
        try:
            cell.accept(envelope)
        except Full:
            await _when_full(cell, envelope)
        system = cell.system
        system._tells += 1
        if not system._tells & _FAIRNESS_MASK:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def tell_nowait(self, message: Any, *, sender: ActorRef | None = None) -> None:
        """Send ``message`` now, never waiting: like :meth:`tell`, but a full BLOCK
        mailbox raises instead of waiting.

        Raises:
            MailboxFull: the mailbox is full and its policy is BLOCK or FAIL.
        """
        cell = self._cell
        try:
            cell.accept((message, sender if sender is not None else _implicit_sender(), None))
        except Full:
            raise MailboxFull(cell.path, int(cell.mailbox.capacity)) from None

    async def ask(
        self, message: Any, *, timeout: float | None = None, sender: ActorRef | None = None
    ) -> Any:
        """Send ``message`` and wait for the reply: the handler's return value, or what it
        passed to ``ctx.reply``.

        ``timeout`` is in seconds; ``None`` means the system's ``ask_timeout`` and
        ``math.inf`` waits without limit. The whole ask, waiting for mailbox room
        included, is bounded by it, and the handler sees the resulting deadline as
        ``ctx.deadline`` (so that it can pass it on). An ask always ends, in one of
        these ways.

        Raises:
            AskTimeout: no reply in time; a later reply becomes a dead letter.
            ActorStopped: the actor had stopped, or stopped before handling the message.
            ActorFailed: the handler raised; the error is its ``__cause__``.
            MessageDropped: the mailbox's overflow policy dropped the message.
            MailboxFull: the mailbox is full and its policy is FAIL.
        """
        cell = self._cell
        system = cell.system
        if timeout is None:
            timeout = system.ask_timeout
        elif not (type(timeout) is float and timeout > 0):
            timeout = check_seconds(timeout, "ask timeout", zero=False)
        if sender is None:
            sender = _implicit_sender()
        reply = Reply(message)
        if _tracing.tracer is not None:
            _tracing.start_ask(cell, reply)
        envelope: Envelope = (message, sender, reply)
        clock = system._clock
        if timeout == _INF:
            start = clock.current_time()
            await self._deliver(envelope)
            try:
                return await reply._wait()
            finally:
                system._ask_latency.observe(clock.current_time() - start)
        start = clock.current_time()
        deadline = reply.deadline = start + timeout
        try:
            cell.accept(envelope)
        except Full:
            with trio.move_on_after(timeout):
                await _when_full(cell, envelope)
            if trio.current_time() >= deadline and not reply._done:
                timed_out = AskTimeout(cell.path, timeout, message)
                if reply._trace is not None:
                    reply._trace.end(timed_out)
                raise timed_out from None
        if reply._done:  # answered (or failed) already: by a router, or at once
            try:
                return await reply._wait()
            finally:
                system._ask_latency.observe(clock.current_time() - start)
        system._ask_timer.watch(reply, deadline, cell, timeout)
        # reply._wait(), inlined: one coroutine less on the hot path
        reply._task = _current_task()
        await _park_task(_trap(reply._abort))
        system._ask_latency.observe(clock.current_time() - start)
        error = reply._error
        if error is not None:
            raise error
        return reply._value

    async def stop(self, *, grace: float | None = None) -> None:
        """Stop the actor and wait until it has stopped; this always ends.

        At once, the actor's mailbox closes: its queued messages become dead letters,
        their asks fail with ``ActorStopped``, and senders waiting for room are released.
        The message it is handling may finish within ``grace`` seconds (``None``: the
        system's ``shutdown_timeout``; ``0``: not at all; ``math.inf``: however long it
        takes); then its handler is cancelled, the message is a dead letter and its ask
        fails with ``ActorStopped``. Its tasks (``ctx.start_soon``) are cancelled and its
        children stop the same way, within what is left of the same grace. Last, its
        ``stopped`` hook runs, shielded from cancellation, for at most ``grace`` seconds
        of its own: a hook that overruns is cancelled and reported (an
        :class:`~tinyagents.events.ActorFailed` event with
        :class:`~tinyagents.errors.HookTimeout`). So a stop takes at most about twice
        the grace for an actor without children.

        Stopping a stopped actor does nothing; stopping a stopping one again can only
        shorten its grace. Called by the actor on itself (or by a descendant on an
        ancestor), it does not wait, since the stop can only end after the caller's
        handler has: the grace then bounds the caller's own handler.

        Raises:
            ValueError: ``grace`` is negative or not a number.
        """
        cell = self._cell
        cell.request_stop(check_grace(grace, cell.system.shutdown_timeout))
        me = current_cell.get()
        while me is not None:
            if me is cell:
                await trio.lowlevel.checkpoint()
                return
            parent = me.parent
            me = parent if parent is not cell.system._guardian else None  # type: ignore[assignment]
        await cell.wait_terminated()

    async def _deliver(self, envelope: Envelope) -> None:
        """Enqueue a prepared envelope (ask, forward), waiting for room under BLOCK."""
        cell = self._cell
        try:
            cell.accept(envelope)
        except Full:
            await _when_full(cell, envelope)


async def _when_full(cell: ActorCell, envelope: Envelope) -> None:
    """The mailbox was full: wait for room under BLOCK, else raise ``MailboxFull`` (also
    to the envelope's pending reply, which may belong to another asker after a forward)."""
    if cell.mailbox.overflow is Overflow.BLOCK:
        await cell.accept_waiting(envelope)
        return
    error = MailboxFull(cell.path, int(cell.mailbox.capacity))
    reply = envelope[2]
    if reply is not None and not reply._done:
        reply._settle(None, error)
    raise error from None
