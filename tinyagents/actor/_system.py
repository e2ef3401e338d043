"""ActorSystem: the root of the actor tree, opened with ``async with``."""

from __future__ import annotations

import enum
import logging
import random
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio

from .._address import parse_address
from .._metrics import Metrics, MetricsSnapshot, Sample
from .._nursery import leaves
from .._validate import check_seconds
from ..errors import ActorStopped, ActorSystemError, SystemNotRunning, TransportError
from ..mailbox import MailboxSpec
from ..registry import Registry
from ..supervisor import SupervisorStrategy
from ._cell import ActorCell, Factory, spawn_child
from ._events import DeadLetter, DeadLetterReason, EventStream
from ._ref import ActorRef
from ._timer import AskTimer

if TYPE_CHECKING:
    from ..admin import AdminServer

__all__ = ["ActorSystem"]

logger = logging.getLogger("tinyagents.actor")


_URI_SCHEME = "tinyagents://"


def parse_actor_uri(uri: object) -> tuple[str, tuple[str, int] | None, str]:
    """``(node, address or None, path)`` of ``tinyagents://node[@host:port]/user/...``.

    Raises:
        ValueError: anything else, saying what the form is.
    """
    form = "'tinyagents://<node>/user/<name>' or 'tinyagents://<node>@<host>:<port>/user/<name>'"
    if not isinstance(uri, str) or not uri.startswith(_URI_SCHEME):
        raise ValueError(f"an actor URI must look like {form}, not {uri!r}")
    rest = uri[len(_URI_SCHEME) :]
    slash = rest.find("/")
    if slash <= 0:
        raise ValueError(f"actor URI {uri!r} has no node or no path; expected {form}")
    authority, path = rest[:slash], rest[slash:]
    if not path.startswith("/user/") or len(path) == len("/user/") or "//" in path:
        raise ValueError(f"actor URI {uri!r}: the path must be /user/..., as in {form}")
    node, at, where = authority.partition("@")
    if not node:
        raise ValueError(f"actor URI {uri!r} names no node; expected {form}")
    address = parse_address(where, what="actor URI") if at else None
    return node, address, path


class _State(enum.Enum):
    UNOPENED = "unopened"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class _NoClock(trio.abc.Clock):
    """The clock of a system not yet entered: asks cannot happen then."""

    def start_clock(self) -> None:  # pragma: no cover - never used
        pass

    def current_time(self) -> float:  # pragma: no cover - never used
        raise SystemNotRunning("the actor system has not been entered")

    def deadline_to_sleep_time(self, deadline: float) -> float:  # pragma: no cover
        return deadline


_NO_CLOCK = _NoClock()


class _Guardian:
    """The parent of top-level actors (path ``/user``)."""

    __slots__ = ("children", "name_counter", "nursery", "system")

    path = "/user"

    def __init__(self, system: ActorSystem) -> None:
        self.system = system
        self.children: dict[str, ActorCell] | None = None
        self.nursery: trio.Nursery | None = None
        self.name_counter = 0

    def next_name(self) -> str:
        self.name_counter += 1
        return f"${self.name_counter}"

    def child_failed(self, child: ActorCell, error: Exception) -> None:
        self.system._fail(child, error)


class ActorSystem:
    """The root of an actor tree; every actor runs inside its ``async with`` block.

    Usage::

        async with ActorSystem("demo") as system:
            ref = await system.spawn(Greeter, name="greeter")
            print(await ref.ask("world"))

    Leaving the block stops every top-level actor as ``ref.stop(grace=shutdown_timeout)``
    does, all at once: their queued messages become dead letters at once, a handler
    still running after ``shutdown_timeout`` seconds is cancelled, children stop before
    their parents within the same deadline, and each ``stopped`` hook runs shielded for
    at most ``shutdown_timeout`` seconds of its own. The shutdown is shielded from
    cancellation from outside, and always ends. A failure escalated past the top-level actors stops
    the system the same way, cancels the block's body, and is raised from the
    ``async with`` (as itself, not wrapped in an exception group).

    **Parameters:**

    * ``name`` — names the system in refs and logs.
    * ``shutdown_timeout`` — the grace period of the shutdown, in seconds, and the
      default grace of :meth:`ActorRef.stop` (how long a stopping actor's handler, and
      then its ``stopped`` hook, may run before being cancelled).
    * ``ask_timeout`` — the timeout of asks that give none (``math.inf``: no limit).
    * ``rng`` — the random source of backoff jitter (seed one for reproducible runs).
    * ``admin`` — run the node's admin endpoint (:class:`~tinyagents.admin.AdminServer`)
      while the system runs: ``True`` at its default address (``127.0.0.1:7373``), or
      the address to bind (``"host:port"`` or ``(host, port)``; port 0 picks a free
      one, read back from ``system.admin.address``). It starts with the system,
      before the body runs (the ``async with`` raises
      :class:`~tinyagents.admin.AdminError` if it cannot listen), and serves during the
      shutdown until the actors have stopped. ``admin_token`` is its bearer token,
      required off loopback. Otherwise the same as ``async with AdminServer(system,
      bind=..., token=...)`` in the body.
    """

    def __init__(
        self,
        name: str = "tinyagents",
        *,
        shutdown_timeout: float = 5.0,
        ask_timeout: float = 60.0,
        rng: random.Random | None = None,
        admin: bool | str | tuple[str, int] = False,
        admin_token: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an actor system needs a non-empty name, not {name!r}")
        shutdown_timeout = check_seconds(shutdown_timeout, "shutdown_timeout")
        ask_timeout = check_seconds(ask_timeout, "ask_timeout", zero=False)
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {rng!r}")
        self.name = name
        self.shutdown_timeout = shutdown_timeout
        self.ask_timeout = ask_timeout
        self.events = EventStream()
        """Lifecycle events and dead letters: ``async with system.events.subscribe()``."""
        self.dead_letters = 0
        """How many dead letters this system has produced."""
        self._dead_letters_by_reason: dict[DeadLetterReason, int] = {}
        self._metrics = Metrics()
        self._metrics.add_collector(self._collect_metrics)
        self._ask_latency = self._metrics.histogram("tinyagents_ask_duration_seconds")
        self._restarts = 0
        # counts of the actors that have stopped (the live ones are read from their cells)
        self._gone_processed = 0
        self._gone_dropped = 0
        self.registry = Registry()
        """Unique names for live actors; a name is forgotten when its actor stops."""
        self._random = rng if rng is not None else random.Random()
        self._state = _State.UNOPENED
        self._guardian = _Guardian(self)
        self._uid = 0
        self._tells = 0
        self._failure: BaseException | None = None
        self._nursery_manager: Any = None
        self._body_scope: trio.CancelScope | None = None
        self._actors_scope: trio.CancelScope | None = None
        self._ask_timer = AskTimer(ask_timeout)
        # the run's clock, taken on entry (asks read it directly: it is on their hot path)
        self._clock: trio.abc.Clock = _NO_CLOCK
        self._timer_scope: trio.CancelScope | None = None
        self._admin_scope: trio.CancelScope | None = None
        self._terminated_hooks: list[Any] = []
        # the node's transport while one runs (tinyagents.transport.Transport)
        self._transport: Any = None
        self._admin: AdminServer | None = None
        if admin is not False or admin_token is not None:
            from ..admin import DEFAULT_ADMIN_ADDRESS, AdminServer

            if admin is False:
                raise ValueError("admin_token is given but the admin endpoint is off (admin=)")
            bind = DEFAULT_ADMIN_ADDRESS if admin is True else admin
            self._admin = AdminServer(self, bind=bind, token=admin_token)
        # the node's gossip cluster while one runs (tinyagents.cluster.GossipCluster)
        self._cluster: Any = None

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} {self._state.value}>"

    # -- public API ------------------------------------------------------------------

    @property
    def admin(self) -> AdminServer | None:
        """The admin endpoint started by the ``admin=`` option, or ``None``."""
        return self._admin

    @property
    def running(self) -> bool:
        """Whether the system is open and accepts spawns."""
        return self._state is _State.RUNNING

    async def spawn(
        self,
        factory: Factory,
        *,
        name: str | None = None,
        mailbox: MailboxSpec | None = None,
        supervisor: SupervisorStrategy | None = None,
    ) -> ActorRef:
        """Start a top-level actor (path ``/user/<name>``) and return its ref.

        ``factory`` is an :class:`Actor` subclass, any callable returning a fresh
        :class:`Actor`, or an :class:`ActorSpec`. It is called now and again at every
        restart. ``name`` must be unique among the live siblings; without one a name
        like ``$1`` is chosen. ``mailbox`` defaults to ``Unbounded()``, ``supervisor``
        to ``OneForOne()``.

        Returns once the actor has started: if it has a ``started`` hook, after that
        hook returned.

        Raises:
            ActorNameTaken: a live sibling has that name.
            InvalidActorName: the name is empty, has ``/`` or whitespace, or starts
                with ``$``.
            ActorStartFailed: the ``started`` hook raised (its ``__cause__``).
            SystemNotRunning: the system is not open or is shutting down.
        """
        if self._state is not _State.RUNNING:
            raise SystemNotRunning(
                f"actor system {self.name!r} is {self._state.value}: it cannot spawn"
            )
        return await spawn_child(self._guardian, factory, name, mailbox, supervisor)

    def metrics(self) -> MetricsSnapshot:
        """The runtime's counters, gauges and histograms now (see
        :mod:`tinyagents.metrics`): actors, mailbox depth, messages, dead letters by
        reason, restarts, ask latency, LLM calls and tokens by provider and model, and
        those of the transport, gossip cluster and replicator running on this system.
        Cheap enough to call every second; never blocks."""
        return self._metrics.snapshot()

    def _cells(self) -> list[ActorCell]:
        """Every live actor's cell, parents before their children."""
        cells: list[ActorCell] = []
        pending = list(reversed((self._guardian.children or {}).values()))
        while pending:  # depth first, in spawn order: a stack of the children reversed
            cell = pending.pop()
            cells.append(cell)
            pending.extend(reversed((cell.children or {}).values()))
        return cells

    def _collect_metrics(self) -> list[Sample]:
        cells = self._cells()
        processed = self._gone_processed
        dropped = self._gone_dropped
        depth = 0
        for cell in cells:
            mailbox = cell.mailbox
            processed += mailbox.processed
            dropped += mailbox.dropped
            depth += len(mailbox)
        samples = [
            Sample("tinyagents_actors", "gauge", {}, len(cells)),
            Sample("tinyagents_mailbox_depth", "gauge", {}, depth),
            Sample("tinyagents_messages_processed_total", "counter", {}, processed),
            Sample("tinyagents_messages_dropped_total", "counter", {}, dropped),
            Sample("tinyagents_restarts_total", "counter", {}, self._restarts),
        ]
        samples.extend(
            Sample("tinyagents_dead_letters_total", "counter", {"reason": reason.value}, count)
            for reason, count in self._dead_letters_by_reason.items()
        )
        return samples

    @property
    def children(self) -> list[ActorRef]:
        """Refs of the live top-level actors, in spawn order."""
        return [cell.ref for cell in (self._guardian.children or {}).values()]

    @property
    def node_id(self) -> str:
        """This system's id among nodes: its transport's ``node`` while a
        :class:`~tinyagents.transport.Transport` runs, else its :attr:`name`."""
        transport = self._transport
        return self.name if transport is None else transport.node

    def ref_for(self, uri: str) -> ActorRef:
        """A ref to the actor at ``uri``: ``tinyagents://<node>/user/...`` (what
        :attr:`ActorRef.uri` gives), or ``tinyagents://<node>@<host>:<port>/user/...``
        to say where that node's transport listens.

        For this node, the live local actor. For another node, a remote ref through
        this system's transport, made without any traffic: it denotes whatever actor
        lives at that path there (no particular incarnation), and a message to a path
        where nothing lives fails as for a stopped actor (an ask raises
        ``ActorStopped`` at once, a tell is a dead letter on both nodes).

        Raises:
            ValueError: ``uri`` is not of that form.
            ActorStopped: the URI names this node and no actor lives at the path.
            TransportError: the URI names another node and no transport runs.
        """
        node, address, path = parse_actor_uri(uri)
        if node == self.node_id and address is None:
            ref = self.lookup(path)
            if ref is None:
                raise ActorStopped(path, detail=f"no actor lives at {path} on this node")
            return ref
        transport = self._transport
        if transport is None:
            raise TransportError(
                f"cannot reach {uri!r}: actor system {self.name!r} has no transport "
                "(open one with `async with Transport(system, ...)`)"
            )
        return transport.ref_for(node, path, address)  # type: ignore[no-any-return]

    def lookup(self, path: str) -> ActorRef | None:
        """The live actor at ``path`` (such as ``/user/team/bot``), or ``None``."""
        if not path.startswith("/user/"):
            return None
        node: Any = self._guardian
        for part in path[len("/user/") :].split("/"):
            children = node.children
            if not children or part not in children:
                return None
            node = children[part]
        return node.ref if isinstance(node, ActorCell) else None

    # -- the async context manager ---------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._state is not _State.UNOPENED:
            raise ActorSystemError(
                f"actor system {self.name!r} is {self._state.value}; a system can be "
                "opened only once"
            )
        self._clock = trio.lowlevel.current_clock()
        manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        self._nursery_manager = manager
        try:
            await nursery.start(self._host_actors)
            await nursery.start(self._run_timer)
            self._state = _State.RUNNING  # the admin endpoint starts on a running system
            if self._admin is not None:
                await nursery.start(self._serve_admin, self._admin)
        except BaseException:
            self._state = _State.UNOPENED
            for scope in (self._actors_scope, self._timer_scope):
                if scope is not None:  # shielded: the nursery's cancel does not reach them
                    scope.cancel()
            nursery.cancel_scope.cancel()
            await manager.__aexit__(None, None, None)
            raise
        body_scope = trio.CancelScope()
        body_scope.__enter__()
        self._body_scope = body_scope
        return self

    async def _host_actors(self, task_status: trio.TaskStatus[None]) -> None:
        """The task whose nursery holds the top-level actors.

        Its scope is shielded so that a cancellation from outside the ``async with``
        reaches the body at once but lets the actors stop gracefully; ``__aexit__``
        cancels it explicitly when the grace period is over.
        """
        with trio.CancelScope(shield=True) as scope:
            self._actors_scope = scope
            async with trio.open_nursery() as nursery:
                self._guardian.nursery = nursery
                self._guardian.children = {}
                task_status.started()
                await trio.sleep_forever()

    async def _run_timer(self, task_status: trio.TaskStatus[None]) -> None:
        # shielded like the actors, so asks made while they stop still time out
        with trio.CancelScope(shield=True) as scope:
            self._timer_scope = scope
            await self._ask_timer.run(task_status)

    async def _serve_admin(self, admin: AdminServer, task_status: trio.TaskStatus[None]) -> None:
        # shielded like the actors: the endpoint serves until the actors have stopped
        with trio.CancelScope(shield=True) as scope:
            self._admin_scope = scope
            async with admin:
                task_status.started()
                await trio.sleep_forever()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._body_scope is not None
        assert self._actors_scope is not None
        self._state = _State.STOPPING
        try:
            if self._body_scope.__exit__(exc_type, exc, tb):
                exc_type, exc, tb = None, None, None
        except BaseException as replaced:  # the scope may re-raise a changed exception
            exc_type, exc, tb = type(replaced), replaced, replaced.__traceback__
        with trio.CancelScope(shield=True):
            await self._stop_top_level()
        self._actors_scope.cancel()
        if self._timer_scope is not None:
            self._timer_scope.cancel()
        if self._admin_scope is not None:
            self._admin_scope.cancel()
        failure = self._failure
        try:
            suppressed = await self._nursery_manager.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            self._state = _State.STOPPED
            errors = leaves(raised)
            if failure is not None and failure not in errors:
                errors.insert(0, failure)
            if not errors:  # only cancellation from outside: let it through untouched
                raise
            if exc is not None and failure is None:
                body_errors = {id(error) for error in leaves(exc)}
                if all(id(error) in body_errors for error in errors):
                    raise exc from exc.__cause__  # the body's own error, as it raised it
            if len(errors) == 1:
                raise errors[0] from errors[0].__cause__
            raise BaseExceptionGroup(f"errors in actor system {self.name!r}", errors) from None
        self._state = _State.STOPPED
        if failure is not None:
            raise failure
        return bool(suppressed)

    async def _stop_top_level(self) -> None:
        children = list((self._guardian.children or {}).values())
        for cell in children:
            cell.request_stop(self.shutdown_timeout)
        for cell in children:
            await cell.wait_terminated()

    # -- runtime hooks ---------------------------------------------------------------

    def _next_uid(self) -> int:
        self._uid += 1
        return self._uid

    def _fail(self, child: ActorCell, error: BaseException) -> None:
        """A failure escalated past a top-level actor: stop everything and raise it."""
        logger.error("actor system %r failed: %s escalated %r", self.name, child.path, error)
        if self._failure is None:
            error.add_note(f"escalated to actor system {self.name!r} by {child.path}")
            self._failure = error
        if self._body_scope is not None:
            self._body_scope.cancel()

    def _dead_letter(
        self,
        message: object,
        sender: ActorRef | None,
        recipient: ActorRef | None,
        reason: DeadLetterReason,
    ) -> None:
        self.dead_letters += 1
        by_reason = self._dead_letters_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + 1
        events = self.events
        if events.active:
            events.publish(DeadLetter(message, sender, recipient, reason))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "dead letter to %s (%s): %r",
                recipient.path if recipient is not None else "-",
                reason.value,
                message,
            )

    def _actor_terminated(self, cell: ActorCell) -> None:
        self._gone_processed += cell.mailbox.processed
        self._gone_dropped += cell.mailbox.dropped
        self.registry._forget(cell.ref)
        for hook in self._terminated_hooks:
            hook(cell.ref)
