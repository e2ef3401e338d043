"""The runtime of one actor (its cell), and the Context its handlers see."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .. import _park
from .._queue import Closed, Mailbox
from .._tracing import receive_under
from ..errors import (
    ActorFailed,
    ActorNameTaken,
    ActorStartFailed,
    ActorStopped,
    HookTimeout,
    InvalidActorName,
    MessageDropped,
    ReplyError,
    SystemNotRunning,
)
from ..mailbox import Bounded, MailboxSpec, Overflow, Unbounded
from ..supervisor import (
    AllForOne,
    Directive,
    Escalate,
    OneForOne,
    RestartHistory,
    Stop,
    SupervisorStrategy,
)
from ._base import Actor, ActorSpec, Reply, Terminated
from ._events import (
    ActorFailed as ActorFailedEvent,
)
from ._events import (
    ActorRestarted,
    ActorStarted,
    DeadLetterReason,
    StopReason,
)
from ._events import (
    ActorStopped as ActorStoppedEvent,
)
from ._ref import ActorRef, check_grace, current_cell

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = ["ActorCell", "Context", "Factory", "spawn_child"]

logger = logging.getLogger("tinyagents.actor")

Envelope = tuple[Any, "ActorRef | None", "Reply | None"]
Factory = Callable[[], Actor] | ActorSpec

DEFAULT_SUPERVISOR = OneForOne()
_STRATEGIES = (OneForOne, AllForOne, Escalate, Stop)
_UNBOUNDED = Unbounded()
_FAIRNESS_BURST = 64
_NAME_RE = re.compile(r"^[^/\s$][^/\s]*$")

# cell states
STARTING, RUNNING, STOPPING, STOPPED = range(4)


class _StopRequest:
    __slots__ = ()


class _RestartRequest:
    """A sibling failed under ``AllForOne``: restart after ``delay``, as it does."""

    __slots__ = ("delay", "error")

    def __init__(self, error: BaseException, delay: float) -> None:
        self.error = error
        self.delay = delay


class _ChildFailed:
    __slots__ = ("child", "error")

    def __init__(self, child: ActorCell, error: Exception) -> None:
        self.child = child
        self.error = error


class _TaskFailed:
    __slots__ = ("error", "generation")

    def __init__(self, error: Exception, generation: int) -> None:
        self.error = error
        self.generation = generation


class _Watched:
    """A Terminated notification, checked against ``watching`` when taken."""

    __slots__ = ("notice", "target")

    def __init__(self, target: ActorCell, notice: Terminated) -> None:
        self.target = target
        self.notice = notice


_STOP = _StopRequest()
_park_task = _park.park


class Parent(Protocol):
    """What a cell needs from its parent: an actor cell or the system's guardian."""

    system: ActorSystem
    children: dict[str, ActorCell] | None
    nursery: trio.Nursery | None

    @property
    def path(self) -> str: ...

    def child_failed(self, child: ActorCell, error: Exception) -> None: ...

    def next_name(self) -> str: ...


def _make_instance(factory: Factory) -> Actor:
    if isinstance(factory, type):
        instance = factory()
    else:
        create = getattr(factory, "create_actor", None)
        instance = create() if create is not None else factory()  # type: ignore[operator]
    if not isinstance(instance, Actor):
        raise TypeError(f"an actor factory must return an Actor instance, not {instance!r}")
    return instance


def validate_name(name: str) -> None:
    if not isinstance(name, str):
        raise InvalidActorName(repr(name), "a name must be a str")
    if not name:
        raise InvalidActorName(name, "a name must not be empty")
    if not _NAME_RE.match(name):
        raise InvalidActorName(
            name, "a name must not contain '/' or whitespace, nor start with '$'"
        )
    if name in (".", ".."):
        raise InvalidActorName(name, "'.' and '..' would make paths ambiguous")


async def spawn_child(
    parent: Parent,
    factory: Factory,
    name: str | None,
    mailbox: MailboxSpec | None,
    supervisor: SupervisorStrategy | None,
) -> ActorRef:
    """Create, register and start one actor under ``parent`` (see ``ActorSystem.spawn``)."""
    system = parent.system
    nursery = parent.nursery
    if nursery is None or parent.children is None:
        raise SystemNotRunning(f"cannot spawn under {parent.path}: it is not running")
    if isinstance(parent, ActorCell) and parent.state >= STOPPING:
        raise ActorStopped(parent.path, detail=f"cannot spawn under {parent.path}: it is stopping")
    if name is None:
        name = parent.next_name()
    else:
        validate_name(name)
        if name in parent.children:
            raise ActorNameTaken(f"{parent.path}/{name}")
    if mailbox is not None and not isinstance(mailbox, (Unbounded, Bounded)):
        raise TypeError(f"mailbox must be Unbounded() or Bounded(...), not {mailbox!r}")
    if supervisor is not None and not isinstance(supervisor, _STRATEGIES):
        raise TypeError(
            "supervisor must be OneForOne(...), AllForOne(...), Escalate() or Stop(), "
            f"not {supervisor!r}"
        )
    instance = _make_instance(factory)
    cell = ActorCell(
        system,
        parent,
        name,
        factory,
        instance,
        (mailbox or _UNBOUNDED).create(),
        supervisor or DEFAULT_SUPERVISOR,
    )
    parent.children[name] = cell
    if type(instance).started is Actor.started:
        # Nothing can fail before the first message: the actor is ready as it is.
        await trio.lowlevel.checkpoint_if_cancelled()
        nursery.start_soon(cell.run, name=cell)
    else:
        await nursery.start(cell.run, name=cell)
    return cell.ref


class ActorCell:
    """Everything the runtime keeps for one live actor. Internal."""

    __slots__ = (
        "_context",
        "_path",
        "backoff_scope",
        "children",
        "current",
        "current_reply",
        "detached",
        "escalation",
        "factory",
        "generation",
        "history",
        "instance",
        "limit_scope",
        "mailbox",
        "name",
        "name_counter",
        "nursery",
        "parent",
        "ref",
        "route",
        "state",
        "stop_deadline",
        "stop_error",
        "stop_grace",
        "stop_reason",
        "supervisor",
        "system",
        "tasks",
        "terminated_event",
        "uid",
        "watchers",
        "watching",
    )

    def __init__(
        self,
        system: ActorSystem,
        parent: Parent,
        name: str,
        factory: Factory,
        instance: Actor,
        mailbox: Mailbox[Envelope],
        supervisor: SupervisorStrategy,
    ) -> None:
        self.system = system
        self.parent = parent
        self.name = name
        self.uid = system._next_uid()
        self.factory = factory
        self.instance = instance
        self.mailbox = mailbox
        self.supervisor = supervisor
        self.ref = ActorRef._create(self)
        self.state = STARTING
        self.children: dict[str, ActorCell] | None = None
        self.nursery: trio.Nursery | None = None
        self.current: Envelope | None = None
        self.current_reply: Reply | None = None
        self.detached: set[Reply] | None = None
        self.watchers: set[ActorCell] | None = None
        self.watching: set[ActorCell] | None = None
        self.history: RestartHistory | None = None
        self.terminated_event: trio.Event | None = None
        self.tasks: set[trio.CancelScope] | None = None
        # a router's fast path: handles a message in the sender's task, or returns False
        self.route: Callable[[Envelope], bool] | None = None
        self.backoff_scope: trio.CancelScope | None = None
        # the scope bounding user code while the actor stops (its handler, then its
        # stopped hook), whose deadline a stop sets
        self.limit_scope: trio.CancelScope | None = None
        self.stop_deadline = math.inf
        self.stop_grace: float | None = None
        # bumped at every restart: tasks of an earlier instance report no failures
        self.generation = 0
        self.stop_reason = StopReason.STOPPED
        self.stop_error: BaseException | None = None
        self.escalation: Exception | None = None
        self.name_counter = 0
        self._context: Context | None = None
        self._path: str | None = None

    def __repr__(self) -> str:
        return f"<actor {self.path}>"

    @property
    def path(self) -> str:
        path = self._path
        if path is None:
            path = self._path = f"{self.parent.path}/{self.name}"
        return path

    @property
    def node(self) -> str:
        """The id of the node the actor lives on: this system's."""
        return self.system.node_id

    is_remote = False

    @property
    def context(self) -> Context:
        ctx = self._context
        if ctx is None:
            ctx = self._context = Context._create(self)
        return ctx

    def next_name(self) -> str:
        self.name_counter += 1
        return f"${self.name_counter}"

    # -- delivery (called by refs, from any task) ------------------------------------

    def accept(self, envelope: Envelope) -> None:
        """Enqueue without waiting; BLOCK counts as full. Raises ``Full``."""
        route = self.route
        if route is not None and self.state < STOPPING and route(envelope):
            return
        try:
            dropped = self.mailbox.put_nowait(envelope)
        except Closed:
            self.undeliverable(envelope, DeadLetterReason.RECIPIENT_STOPPED)
            return
        if dropped is not None:
            self.dropped(dropped)

    async def accept_waiting(self, envelope: Envelope) -> None:
        """Enqueue, waiting for room under BLOCK."""
        try:
            dropped = await self.mailbox.put(envelope)
        except Closed:
            self.undeliverable(envelope, DeadLetterReason.RECIPIENT_STOPPED)
            return
        if dropped is not None:
            self.dropped(dropped)

    def dropped(self, envelope: Envelope) -> None:
        if self.mailbox.overflow is Overflow.DROP_NEWEST:
            reason = DeadLetterReason.DROPPED_NEWEST
        else:
            reason = DeadLetterReason.DROPPED_OLDEST
        reply = envelope[2]
        if reply is not None:
            reply._settle(None, MessageDropped(self.path, self.mailbox.overflow.name, envelope[0]))
        self.system._dead_letter(envelope[0], envelope[1], self.ref, reason)

    def undeliverable(self, envelope: Envelope, reason: DeadLetterReason) -> None:
        """Make ``envelope`` a dead letter and end its ask, if any, with ActorStopped."""
        reply = envelope[2]
        if reply is not None:
            reply._settle(None, ActorStopped(self.path, envelope[0]))
        self.system._dead_letter(envelope[0], envelope[1], self.ref, reason)

    def request_stop(self, grace: float, deadline: float | None = None) -> None:
        """Stop the actor: at once for its queue, within ``grace`` for its handler.

        The mailbox closes now (queued messages become dead letters, their asks fail with
        ``ActorStopped``, blocked senders are released); the message being handled may
        go on until ``deadline`` (by default ``grace`` seconds from now), when its
        handler is cancelled; the ``stopped`` hook then gets ``grace`` seconds of its
        own. A second request can only shorten these limits.
        """
        if deadline is None:
            deadline = trio.current_time() + grace
        if self.state >= STOPPING:
            if self.state == STOPPED:
                return
            if deadline < self.stop_deadline:
                self.stop_deadline = deadline
            if self.stop_grace is None or grace < self.stop_grace:
                self.stop_grace = grace
            scope = self.limit_scope
            if scope is not None and deadline < scope.deadline:
                scope.deadline = deadline
            return
        self.stop_deadline = deadline
        self.stop_grace = grace
        scope = self.limit_scope
        if scope is not None:
            scope.deadline = deadline
        scope = self.backoff_scope
        if scope is not None:
            scope.cancel()
        self._close_mailbox()
        self.mailbox.put_system(_STOP)

    async def wait_terminated(self) -> None:
        if self.state == STOPPED:
            await trio.lowlevel.checkpoint()
            return
        if self.terminated_event is None:
            self.terminated_event = trio.Event()
        await self.terminated_event.wait()

    # -- replies ---------------------------------------------------------------------

    def late_reply(self, value: object) -> None:
        self.system._dead_letter(value, self.ref, None, DeadLetterReason.LATE_REPLY)

    def detach_current_reply(self) -> Reply | None:
        reply = self.current_reply
        if reply is None:
            return None
        self.current_reply = None
        if not reply._done:
            if self.detached is None:
                self.detached = set()
            self.detached.add(reply)
        return reply

    # -- watch -----------------------------------------------------------------------

    def watch(self, target: ActorCell) -> None:
        watching = self.watching
        if watching is None:
            watching = self.watching = set()
        if target in watching or target is self:
            return
        watching.add(target)
        if target.state == STOPPED:
            self.notify_terminated(target)
        else:
            target.add_watcher(self)

    def unwatch(self, target: ActorCell) -> None:
        if self.watching is not None:
            self.watching.discard(target)
        target.remove_watcher(self)

    def add_watcher(self, watcher: ActorCell) -> None:
        if self.watchers is None:
            self.watchers = set()
        self.watchers.add(watcher)

    def remove_watcher(self, watcher: ActorCell) -> None:
        if self.watchers is not None:
            self.watchers.discard(watcher)

    def notify_terminated(self, target: ActorCell) -> None:
        if self.state == STOPPED:
            return
        notice = Terminated(target.ref, target.stop_reason, target.stop_error)
        self.mailbox.put_system(_Watched(target, notice))

    # -- tasks -----------------------------------------------------------------------

    def start_task(
        self, async_fn: Callable[..., Awaitable[object]], args: tuple[object, ...], name: object
    ) -> None:
        nursery = self.nursery
        if nursery is None or self.state >= STOPPING:
            raise ActorStopped(self.path, detail=f"actor {self.path} is not running")
        scope = trio.CancelScope()
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(scope)

        generation = self.generation

        async def task() -> None:
            try:
                with scope:
                    await async_fn(*args)
            except Exception as exc:
                if self.state < STOPPING and generation == self.generation:
                    self.mailbox.put_system(_TaskFailed(exc, generation))
                else:
                    logger.warning(
                        "actor %s: a task failed while it was cancelled: %r", self.path, exc
                    )
            finally:
                if self.tasks is not None:
                    self.tasks.discard(scope)

        nursery.start_soon(task, name=name if name is not None else async_fn)

    async def _cancel_tasks(self) -> None:
        """Cancel the actor's tasks and wait until they have ended."""
        while self.tasks:
            for scope in self.tasks:
                scope.cancel()
            await trio.lowlevel.checkpoint()

    # -- parent duties ---------------------------------------------------------------

    def child_failed(self, child: ActorCell, error: Exception) -> None:
        if self.state < STOPPED:
            self.mailbox.put_system(_ChildFailed(child, error))

    # -- the actor's task ------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        current_cell.set(self)
        start_error: BaseException | None = None
        running = False
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self.children = {}
                # the started hook and the handlers run in this scope: a stop sets its
                # deadline, the end of the stop's grace
                with trio.CancelScope(deadline=self.stop_deadline) as scope:
                    self.limit_scope = scope
                    try:
                        if type(self.instance).started is not Actor.started:
                            await self.instance.started(self.context)
                    except Exception as exc:
                        start_error = exc
                        self.stop_reason = StopReason.FAILED
                        self.stop_error = exc
                    else:
                        running = True
                        if self.state == STARTING:
                            self.state = RUNNING
                        task_status.started()
                        events = self.system.events
                        if events.active:
                            events.publish(ActorStarted(self.ref))
                        await self._loop()
                self.limit_scope = None
                if not running and start_error is None:  # stopped while starting
                    start_error = ActorStopped(
                        self.path, detail=f"actor {self.path} was stopped while it started"
                    )
                if start_error is not None:
                    nursery.cancel_scope.cancel()
                else:
                    if scope.cancelled_caught:
                        self._abandon_current(cut_short=True)
                    self._close_mailbox()
                    await self._cancel_tasks()
                    await self._stop_children()
                    await self._call_stopped()
        finally:
            self._finalize()
        if start_error is not None:
            raise ActorStartFailed(self.path, start_error) from start_error

    async def _loop(self) -> None:
        mailbox = self.mailbox
        queue = mailbox.queue
        ctx = self.context
        me = trio.lowlevel.current_task()
        waiting = _park.trap(mailbox._abort_wait)
        burst = 0
        while self.state < STOPPING:
            system_queue = mailbox.system
            if system_queue:
                if await self._handle_system(system_queue.popleft()):
                    return
                continue
            if not queue:
                burst = 0
                # mailbox.wait(), inlined: this is the hottest await of the runtime
                mailbox._waiter = me
                await _park_task(waiting)
                continue
            envelope = queue.popleft()
            if mailbox._senders:
                mailbox.took_one()
            reply = envelope[2]
            if reply is not None and reply._expired:
                self.system._dead_letter(
                    envelope[0], envelope[1], self.ref, DeadLetterReason.EXPIRED
                )
                continue
            self.current = envelope
            self.current_reply = reply
            if reply is not None:
                reply._owner = self
            mailbox.busy = True
            try:
                if reply is None or reply._trace is None:
                    result = await self.instance.receive(ctx, envelope[0])
                else:  # an ask made while tracing: its handler runs under the ask's span
                    result = await receive_under(reply._trace, self.instance, ctx, envelope[0])
            except Exception as exc:
                mailbox.busy = False
                mailbox.processed += 1
                self.current = None
                if await self._failed(exc, envelope):
                    return
            else:
                mailbox.busy = False
                mailbox.processed += 1
                self.current = None
                reply = self.current_reply
                if reply is not None:
                    self.current_reply = None
                    if not reply._done:
                        reply._settle(result, None)
            burst += 1
            if burst >= _FAIRNESS_BURST:
                burst = 0
                await trio.lowlevel.checkpoint()

    async def _handle_system(self, item: object) -> bool:
        """Handle one system message; return True when the actor must stop."""
        if item is _STOP:
            return True
        if isinstance(item, _Watched):
            watching = self.watching
            if watching is None or item.target not in watching:
                return False  # unwatched meanwhile
            watching.discard(item.target)
            envelope: Envelope = (item.notice, item.target.ref, None)
            self.current = envelope
            try:
                await self.instance.receive(self.context, item.notice)
            except Exception as exc:
                self.current = None
                return await self._failed(exc, envelope)
            self.current = None
            return False
        if isinstance(item, _RestartRequest):
            try:
                return await self._restart(item.error, item.delay, sibling=True)
            except Exception as exc:
                return await self._failed(exc, None)
        if isinstance(item, _TaskFailed) and item.generation != self.generation:
            return False  # a task of an instance replaced meanwhile
        if isinstance(item, _ChildFailed | _TaskFailed):
            return await self._failed(item.error, None)
        raise AssertionError(f"unknown system message {item!r}")  # pragma: no cover

    async def _failed(self, error: Exception, envelope: Envelope | None) -> bool:
        """Supervise one failure; return True when the actor must stop."""
        if envelope is not None:
            reply = envelope[2]
            # still ours (not forwarded): in hand, or detached by the failed handler
            ours = reply is self.current_reply or (self.detached and reply in self.detached)
            if reply is not None and not reply._done and ours:
                failure = ActorFailed(self.path, error, envelope[0])
                failure.__cause__ = error
                reply._settle(None, failure)
            self.current_reply = None
            self.system._dead_letter(
                envelope[0], envelope[1], self.ref, DeadLetterReason.HANDLER_FAILED
            )
        while True:
            if self.history is None:
                self.history = RestartHistory()
            directive, delay = self.supervisor.decide(
                self.history, trio.current_time(), self.system._random
            )
            logger.warning(
                "actor %s failed (%s): %r", self.path, directive.value, error, exc_info=error
            )
            events = self.system.events
            if events.active:
                events.publish(ActorFailedEvent(self.ref, error, directive.value))
            if directive is Directive.STOP or directive is Directive.ESCALATE:
                self.stop_reason = StopReason.FAILED
                self.stop_error = error
                if directive is Directive.ESCALATE:
                    self.escalation = error
                return True
            if directive is Directive.RESTART_ALL:
                # the failed child's strategy restarts them all, after its backoff delay,
                # whatever the siblings' own strategies (those govern their own failures)
                siblings = self.parent.children or {}
                for sibling in list(siblings.values()):
                    if sibling is not self and sibling.state < STOPPING:
                        sibling.mailbox.put_system(_RestartRequest(error, delay))
            try:
                return await self._restart(error, delay, sibling=False)
            except Exception as exc:
                error = exc

    async def _restart(self, error: BaseException, delay: float, *, sibling: bool) -> bool:
        """Replace the instance after ``delay``; raises if the new instance fails to start."""
        if delay > 0:
            with trio.CancelScope() as scope:
                self.backoff_scope = scope
                if self.state >= STOPPING:
                    scope.cancel()
                await trio.sleep(delay)
            self.backoff_scope = None
        if self.state >= STOPPING:
            return True
        # nothing of the old instance outlives it: its tasks, then its children
        self.generation += 1
        self.system._restarts += 1
        await self._cancel_tasks()
        await self._stop_children()
        self.instance = _make_instance(self.factory)
        events = self.system.events
        if events.active:
            events.publish(ActorRestarted(self.ref, None if sibling else error))
        await self.instance.restarted(self.context, None if sibling else error)
        return False

    async def _stop_children(self) -> None:
        """Stop the children, all at once, and wait for them.

        While this actor stops, they get what is left of its grace (the same deadline
        for their handlers, the same grace for their hooks); at a restart or after a
        failure, the system's grace from now.
        """
        children = self.children
        if not children:
            return
        cells = list(children.values())
        if self.state >= STOPPING and self.stop_grace is not None:
            grace, deadline = self.stop_grace, self.stop_deadline
        else:
            grace, deadline = self.system.shutdown_timeout, None
        for child in cells:
            child.request_stop(grace, deadline)
        for child in cells:
            await child.wait_terminated()

    async def _call_stopped(self) -> None:
        """Run the ``stopped`` hook, shielded from cancellation from outside and cut off
        after the stop's grace (reported as an ``ActorFailed`` event with ``HookTimeout``)."""
        if type(self.instance).stopped is Actor.stopped:
            return
        grace = self.stop_grace if self.stop_grace is not None else self.system.shutdown_timeout
        error: Exception | None = None
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + grace
            self.limit_scope = scope
            try:
                await self.instance.stopped(self.context)
            except Exception as exc:
                error = exc
                logger.warning("actor %s: stopped() raised %r", self.path, exc, exc_info=exc)
        self.limit_scope = None
        if scope.cancelled_caught:
            error = HookTimeout(self.path, "stopped", grace)
            logger.warning("%s", error)
        if error is not None:
            events = self.system.events
            if events.active:
                events.publish(ActorFailedEvent(self.ref, error, "stop"))

    def _abandon_current(self, *, cut_short: bool) -> None:
        """The message in hand will not be handled to its end: a dead letter, and its ask
        (unless forwarded) fails with ``ActorStopped``; detached replies fail the same way
        once the actor has stopped (``cut_short`` is False then)."""
        self.mailbox.busy = False
        current = self.current
        if current is not None:
            self.current = None
            self.system._dead_letter(
                current[0], current[1], self.ref, DeadLetterReason.RECIPIENT_STOPPED
            )
        reply = self.current_reply
        self.current_reply = None
        if reply is not None and not reply._done:
            detail = None
            if cut_short:
                grace = self.stop_grace if self.stop_grace is not None else 0.0
                detail = (
                    f"actor {self.path} was stopped while handling a message of type "
                    f"{type(reply.message).__qualname__!r}: its handler was cancelled at "
                    f"the end of the stop's grace ({grace:g}s)"
                )
            reply._settle(None, ActorStopped(self.path, reply.message, detail=detail))

    def _close_mailbox(self) -> None:
        if self.state < STOPPING:
            self.state = STOPPING
        mailbox = self.mailbox
        if mailbox.closed:
            return
        for envelope in mailbox.close():
            self.undeliverable(envelope, DeadLetterReason.RECIPIENT_STOPPED)

    def _finalize(self) -> None:
        """Last rites, synchronous so that cancellation cannot interrupt them."""
        self.route = None
        self._close_mailbox()
        # A message cut short by cancellation is a dead letter too; its ask fails unless
        # the reply was handed over (forwarded) or detached (failed just below).
        self._abandon_current(cut_short=False)
        if self.detached:
            for reply in list(self.detached):
                reply._settle(None, ActorStopped(self.path, reply.message))
            self.detached = None
        for item in self.mailbox.system or ():
            if isinstance(item, _ChildFailed) and self.stop_error is None:
                logger.warning(
                    "actor %s stopped before handling the failure of %s: %r",
                    self.path,
                    item.child.path,
                    item.error,
                )
        self.mailbox.system = None
        self.state = STOPPED
        if self.watching:
            for target in self.watching:
                target.remove_watcher(self)
            self.watching = None
        if self.watchers:
            for watcher in self.watchers:
                watcher.notify_terminated(self)
            self.watchers = None
        siblings = self.parent.children
        if siblings is not None and siblings.get(self.name) is self:
            del siblings[self.name]
        self.system._actor_terminated(self)
        events = self.system.events
        if events.active:
            events.publish(ActorStoppedEvent(self.ref, self.stop_reason, self.stop_error))
        if self.terminated_event is not None:
            self.terminated_event.set()
        if self.escalation is not None:
            self.parent.child_failed(self, self.escalation)


class Context:
    """What a handler knows about its actor and the message it is handling.

    One context per actor; ``sender`` and the reply refer to the message being
    handled now. Not created directly.
    """

    __slots__ = ("_cell",)

    _cell: ActorCell

    def __init__(self) -> None:
        raise TypeError("Context objects are created by the actor system")

    @classmethod
    def _create(cls, cell: ActorCell) -> Context:
        ctx = object.__new__(cls)
        ctx._cell = cell
        return ctx

    def __repr__(self) -> str:
        return f"<Context of {self._cell.path}>"

    @property
    def self(self) -> ActorRef:
        """This actor's own ref."""
        return self._cell.ref

    @property
    def sender(self) -> ActorRef | None:
        """The sender of the message being handled, or ``None`` if it came from outside
        any actor."""
        current = self._cell.current
        return None if current is None else current[1]

    @property
    def system(self) -> ActorSystem:
        """The actor system this actor lives in."""
        return self._cell.system

    @property
    def parent(self) -> ActorRef | None:
        """The parent's ref, or ``None`` for a top-level actor."""
        parent = self._cell.parent
        return parent.ref if isinstance(parent, ActorCell) else None

    @property
    def children(self) -> list[ActorRef]:
        """Refs of the live children, in spawn order."""
        return [child.ref for child in (self._cell.children or {}).values()]

    @property
    def deadline(self) -> float:
        """The deadline (in ``trio.current_time()`` terms) of the ask being handled: when
        the asker stops waiting. ``math.inf`` for a told message or an ask without a
        timeout. Use it to bound work done for the asker, and to pass it on::

            with trio.CancelScope(deadline=ctx.deadline):
                ...
        """
        current = self._cell.current
        reply = None if current is None else current[2]
        return math.inf if reply is None else reply.deadline

    @property
    def asked(self) -> bool:
        """Whether the message being handled is an ask still waiting for its reply."""
        reply = self._cell.current_reply
        return reply is not None and not reply._done

    def reply(self, value: object) -> None:
        """Answer the ask being handled now; the handler's return value is then ignored.

        Raises:
            ReplyError: the message was not asked, or was already answered.
        """
        cell = self._cell
        reply = cell.current_reply
        if reply is None:
            current = cell.current
            if current is not None and current[2] is not None:
                raise ReplyError(
                    f"{cell.path}: the reply was detached or forwarded; answer it there"
                )
            raise ReplyError(f"{cell.path}: the message being handled was not asked")
        if reply._done:
            raise ReplyError(f"{self._cell.path}: this ask was already answered")
        reply.send(value)

    def detach_reply(self) -> Reply:
        """Take the pending reply to answer it later, from any task.

        The handler's return value is then not used as the reply. If the actor stops
        before the reply is given, the asker gets ``ActorStopped``.

        Raises:
            ReplyError: the message being handled was not asked.
        """
        reply = self._cell.detach_current_reply()
        if reply is None:
            raise ReplyError(f"{self._cell.path}: the message being handled was not asked")
        return reply

    async def forward(self, target: ActorRef, message: object = None) -> None:
        """Send ``message`` (by default the one being handled) to ``target``, keeping the
        original sender and handing over the pending reply, if any: ``target`` answers
        the ask. Waits for room like ``tell``.
        """
        cell = self._cell
        current = cell.current
        if current is None:
            raise ReplyError(f"{cell.path}: forward() is only possible while handling a message")
        if message is None:
            message = current[0]
        reply = cell.current_reply
        cell.current_reply = None
        await target._deliver((message, current[1], reply))

    async def spawn(
        self,
        factory: Factory,
        *,
        name: str | None = None,
        mailbox: MailboxSpec | None = None,
        supervisor: SupervisorStrategy | None = None,
    ) -> ActorRef:
        """Spawn a child of this actor; see :meth:`ActorSystem.spawn`."""
        return await spawn_child(self._cell, factory, name, mailbox, supervisor)

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, ...)`` once when ``ref`` stops, even if it already has.

        Watching twice is the same as once.
        """
        self._cell.watch(ref._cell)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``; a ``Terminated`` not yet handled is not delivered."""
        self._cell.unwatch(ref._cell)

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> None:
        """Run ``async_fn(*args)`` as a task of this actor, concurrently with its handlers.

        The task lives in the actor's nursery and belongs to the instance that started
        it: it is cancelled when that instance is replaced by a restart, and when the
        actor stops (before its children stop). If it raises an :class:`Exception`
        while its instance is current, that is a failure of the actor, supervised like
        a failing handler; an error while it is being cancelled is only logged. Use it
        to answer a detached reply without blocking the mailbox.

        Raises:
            ActorStopped: the actor is stopping.
        """
        self._cell.start_task(async_fn, args, name)

    def stop(self, ref: ActorRef | None = None, *, grace: float | None = None) -> None:
        """Stop ``ref`` (by default this actor) as :meth:`ActorRef.stop` does, without
        waiting: its queued messages become dead letters now, and the message it is
        handling (for this actor, the one being handled now) may finish within ``grace``
        seconds (by default the system's ``shutdown_timeout``).

        Raises:
            ValueError: ``grace`` is negative or not a number.
        """
        cell = ref._cell if ref is not None else self._cell
        cell.request_stop(check_grace(grace, cell.system.shutdown_timeout))
