"""Routers: actors that pass each message on to one or all of their routees.

A router is spawned like any actor, from a spec::

    pool = await system.spawn(RoundRobin([a, b, c]), name="pool")
    await pool.tell(job)                 # one routee gets it
    answer = await pool.ask(question)    # one routee answers it

    workers = await system.spawn(LeastLoaded.pool(8, Worker), name="workers")

Routers forward with the original sender and hand over the pending reply, so an ask
through a router is answered by the routee itself. Routees are watched: one that stops
is removed. :class:`AddRoutee`, :class:`RemoveRoutee` and :class:`GetRoutees` change or
read the routees at run time. With no routee, an ask fails with
:class:`~tinyagents.errors.NoRoutees` and a tell becomes a dead letter (``NO_ROUTEE``).

* :class:`RoundRobin` — each routee in turn.
* :class:`Random` — a uniformly random routee.
* :class:`Broadcast` — every routee gets every tell; an ask gathers every routee's
  answer as a list of :class:`RouteeReply`, failures included.
* :class:`ConsistentHash` — the routee that owns ``key(message)`` on a :class:`HashRing`,
  so a key always reaches the same routee while the routees stay the same.
* :class:`LeastLoaded` — the routee with the fewest messages, counting the one it is
  handling; ties go in turn.

A router that is restarted starts again from the routees of its spec (a pool spawns
fresh workers); routees added at run time are not kept across a restart.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

import attrs
import trio

from ._queue import Full
from .actor import Actor, ActorRef, Context, Terminated
from .actor._cell import STOPPING, Envelope, Factory
from .errors import MailboxFull, NoRoutees
from .events import DeadLetterReason
from .mailbox import MailboxSpec, Overflow
from .supervisor import SupervisorStrategy

__all__ = [
    "AddRoutee",
    "Broadcast",
    "ConsistentHash",
    "GetRoutees",
    "HashRing",
    "LeastLoaded",
    "Random",
    "RemoveRoutee",
    "RoundRobin",
    "RouteeReply",
    "stable_hash",
]


# -- control messages -------------------------------------------------------------------


@attrs.frozen
class AddRoutee:
    """Tell (or ask) a router to add ``ref`` to its routees; answered with ``None``."""

    ref: ActorRef


@attrs.frozen
class RemoveRoutee:
    """Tell (or ask) a router to stop routing to ``ref``; answered with ``None``."""

    ref: ActorRef


@attrs.frozen
class GetRoutees:
    """Ask a router for its routees; answered with a list of refs in routing order."""


@attrs.frozen
class RouteeReply:
    """One routee's answer to a broadcast ask: ``value``, or the ``error`` it failed with."""

    ref: ActorRef
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the routee answered (``error`` is ``None``)."""
        return self.error is None


# -- the hash ring ----------------------------------------------------------------------


def stable_hash(data: str | bytes) -> int:
    """A 64-bit hash that is the same in every process and on every machine.

    Python's ``hash()`` of a string is salted per process, so it cannot place keys;
    this is the first 8 bytes of BLAKE2b, read big-endian.
    """
    raw = data.encode() if isinstance(data, str) else data
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing of keys onto nodes, with virtual nodes.

    Each node is placed at ``virtual_nodes`` points of a 64-bit ring (the
    :func:`stable_hash` of ``"<node>#<i>"``); a key belongs to the first point at or
    after its own hash, wrapping around. Adding one node to N moves about 1/(N+1) of
    the keys, all to the new node; removing one moves only that node's keys.

    Nodes are strings (a routee's path, a cluster member's id).
    """

    __slots__ = ("_hashes", "_nodes", "_owners", "virtual_nodes")

    def __init__(self, nodes: Iterable[str] = (), *, virtual_nodes: int = 100) -> None:
        if virtual_nodes < 1:
            raise ValueError(f"virtual_nodes must be >= 1, not {virtual_nodes}")
        self.virtual_nodes = virtual_nodes
        self._nodes: set[str] = set()
        self._hashes: list[int] = []
        self._owners: list[str] = []
        for node in nodes:
            self.add(node)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def __repr__(self) -> str:
        return f"<HashRing of {len(self._nodes)} nodes x {self.virtual_nodes}>"

    @property
    def nodes(self) -> list[str]:
        """The nodes, sorted."""
        return sorted(self._nodes)

    def add(self, node: str) -> None:
        """Place ``node`` on the ring; adding a node twice does nothing."""
        if node in self._nodes:
            return
        self._nodes.add(node)
        for i in range(self.virtual_nodes):
            point = stable_hash(f"{node}#{i}")
            index = bisect.bisect_left(self._hashes, point)
            # equal points (a 64-bit collision) are ordered by node name, so the ring
            # does not depend on the order nodes were added in
            while (
                index < len(self._hashes)
                and self._hashes[index] == point
                and self._owners[index] < node
            ):
                index += 1
            self._hashes.insert(index, point)
            self._owners.insert(index, node)

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring; removing an absent node does nothing."""
        if node not in self._nodes:
            return
        self._nodes.discard(node)
        kept = [(h, o) for h, o in zip(self._hashes, self._owners, strict=True) if o != node]
        self._hashes = [h for h, _ in kept]
        self._owners = [o for _, o in kept]

    def node_for(self, key: str | bytes) -> str | None:
        """The node owning ``key``, or ``None`` when the ring is empty."""
        if not self._hashes:
            return None
        index = bisect.bisect_left(self._hashes, stable_hash(key))
        if index == len(self._hashes):
            index = 0
        return self._owners[index]


# -- router actors ----------------------------------------------------------------------


@attrs.frozen
class _Pool:
    size: int
    factory: Factory
    mailbox: MailboxSpec | None
    supervisor: SupervisorStrategy | None


_CONTROL = frozenset({AddRoutee, RemoveRoutee, GetRoutees})


def _offer(ref: ActorRef, envelope: Envelope) -> bool:
    """Put ``envelope`` straight into ``ref``'s mailbox; False if it must wait for room
    (or ``ref`` is stopping), so that the router's own loop delivers it instead.

    Raises ``MailboxFull`` (to the original sender) for a full FAIL mailbox.
    """
    cell = ref._cell
    if cell.state >= STOPPING:
        return False
    try:
        cell.accept(envelope)
    except Full:
        if cell.mailbox.overflow is Overflow.BLOCK:
            return False
        raise MailboxFull(cell.path, int(cell.mailbox.capacity)) from None
    return True


class _RouterActor(Actor):
    """Forwarding, routee bookkeeping and the no-routee rules shared by every router.

    Like Akka's routers, a router routes in the sender's task: its cell's ``route`` hook
    handles a message as it is sent, without a trip through the router's mailbox. Only
    what cannot be done there goes through the mailbox: a routee's ``Terminated``, a
    message whose routee must be waited for (a full BLOCK mailbox), and a broadcast ask.
    """

    def __init__(self, routees: Sequence[ActorRef], pool: _Pool | None) -> None:
        self.routees: list[ActorRef] = []
        self._initial = routees
        self._pool = pool
        self._ctx: Context | None = None

    async def started(self, ctx: Context) -> None:
        self._ctx = ctx
        for ref in self._initial:
            self._add(ctx, ref)
        if self._pool is not None:
            pool = self._pool
            for _ in range(pool.size):
                ref = await ctx.spawn(
                    pool.factory, mailbox=pool.mailbox, supervisor=pool.supervisor
                )
                self._add(ctx, ref)
        ctx._cell.route = self._route_now

    def _add(self, ctx: Context, ref: ActorRef) -> None:
        if ref in self.routees or not ref.is_alive:
            return
        self.routees.append(ref)
        ctx.watch(ref)
        self.added(ref)

    def _remove(self, ctx: Context, ref: ActorRef) -> None:
        if ref not in self.routees:
            return
        self.routees.remove(ref)
        ctx.unwatch(ref)
        self.removed(ref)

    def added(self, ref: ActorRef) -> None:
        """Hook: ``ref`` joined the routees."""

    def removed(self, ref: ActorRef) -> None:
        """Hook: ``ref`` left the routees."""

    def select(self, message: Any) -> ActorRef:
        """Pick the routee for ``message``; only called with at least one routee."""
        raise NotImplementedError

    def _control(self, ctx: Context, message: Any) -> tuple[bool, Any]:
        """Apply a control message; (handled, answer)."""
        if isinstance(message, AddRoutee):
            self._add(ctx, message.ref)
            return True, None
        if isinstance(message, RemoveRoutee):
            self._remove(ctx, message.ref)
            return True, None
        if isinstance(message, GetRoutees):
            return True, list(self.routees)
        return False, None

    def _route_now(self, envelope: Envelope) -> bool:
        """The fast path, in the sender's task: True when the message was handled."""
        kind = type(envelope[0])
        if kind in _CONTROL or kind is Terminated or not self.routees:
            return self._route_special(envelope)
        return self.route_now(envelope)

    def _route_special(self, envelope: Envelope) -> bool:
        ctx = self._ctx
        assert ctx is not None
        message, sender, reply = envelope
        if isinstance(message, Terminated):
            return False
        handled, answer = self._control(ctx, message)
        if handled:
            if reply is not None:
                reply._settle(answer, None)
            return True
        if not self.routees:
            if reply is not None:
                reply._settle(None, NoRoutees(ctx.self.path, message))
            else:
                ctx.system._dead_letter(message, sender, ctx.self, DeadLetterReason.NO_ROUTEE)
            return True
        return self.route_now(envelope)

    def route_now(self, envelope: Envelope) -> bool:
        """Pass ``envelope`` on from the sender's task; False defers to :meth:`route`."""
        try:
            target = self.select(envelope[0])
        except Exception:
            return False  # let the router's own loop raise it and be supervised
        return _offer(target, envelope)

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, Terminated):
            if message.ref in self.routees:
                self.routees.remove(message.ref)
                self.removed(message.ref)
            return None
        handled, answer = self._control(ctx, message)
        if handled:
            return answer
        if not self.routees:
            self._no_routee(ctx, message)
            return None
        await self.route(ctx, message)
        return None

    async def route(self, ctx: Context, message: Any) -> None:
        """Pass ``message`` on from the router's loop (the slow path), keeping the reply."""
        await ctx.forward(self.select(message), message)

    def _no_routee(self, ctx: Context, message: Any) -> None:
        if ctx.asked:
            ctx.detach_reply().fail(NoRoutees(ctx.self.path, message))
        else:
            ctx.system._dead_letter(message, ctx.sender, ctx.self, DeadLetterReason.NO_ROUTEE)


class _RoundRobinActor(_RouterActor):
    def __init__(self, routees: Sequence[ActorRef], pool: _Pool | None) -> None:
        super().__init__(routees, pool)
        self._next = 0

    def select(self, message: Any) -> ActorRef:
        routees = self.routees
        index = self._next % len(routees)
        self._next = index + 1
        return routees[index]


class _RandomActor(_RouterActor):
    def __init__(self, routees: Sequence[ActorRef], pool: _Pool | None, seed: int | None) -> None:
        super().__init__(routees, pool)
        self._random = random.Random(seed)

    def select(self, message: Any) -> ActorRef:
        return self._random.choice(self.routees)


class _LeastLoadedActor(_RouterActor):
    def __init__(self, routees: Sequence[ActorRef], pool: _Pool | None) -> None:
        super().__init__(routees, pool)
        self._next = 0

    def select(self, message: Any) -> ActorRef:
        routees = self.routees
        count = len(routees)
        start = self._next % count
        best_index = start
        best_load = math.inf
        for offset in range(count):
            index = (start + offset) % count
            mailbox = routees[index]._cell.mailbox
            load = len(mailbox.queue) + mailbox.busy
            if load < best_load:
                best_index, best_load = index, load
                if load == 0:
                    break
        self._next = best_index + 1
        return routees[best_index]


class _ConsistentHashActor(_RouterActor):
    def __init__(
        self,
        routees: Sequence[ActorRef],
        pool: _Pool | None,
        key: Callable[[Any], str | bytes],
        virtual_nodes: int,
    ) -> None:
        super().__init__(routees, pool)
        self._key = key
        self._ring = HashRing(virtual_nodes=virtual_nodes)
        self._by_node: dict[str, ActorRef] = {}

    @staticmethod
    def _point(ref: ActorRef) -> str:
        """A routee's name on the ring: its path, or for an actor of another node its
        URI (the same path may live on several nodes)."""
        return ref.path if ref.is_local else ref.uri

    def added(self, ref: ActorRef) -> None:
        point = self._point(ref)
        self._by_node[point] = ref
        self._ring.add(point)

    def removed(self, ref: ActorRef) -> None:
        point = self._point(ref)
        if self._by_node.get(point) == ref:
            del self._by_node[point]
            self._ring.remove(point)

    def select(self, message: Any) -> ActorRef:
        node = self._ring.node_for(self._key(message))
        assert node is not None
        return self._by_node[node]


class _BroadcastActor(_RouterActor):
    def route_now(self, envelope: Envelope) -> bool:
        message, sender, reply = envelope
        if reply is not None:
            return False  # gathering answers takes a task of the router
        for ref in self.routees:
            mailbox = ref._cell.mailbox
            if ref._cell.state >= STOPPING or (
                mailbox.overflow is Overflow.BLOCK
                and (len(mailbox.queue) >= mailbox.capacity or mailbox._senders)
            ):
                return False  # someone must be waited for: the router's loop does it
        for ref in self.routees:
            self._tell_one(ref, message, sender)
        return True

    def _tell_one(self, ref: ActorRef, message: Any, sender: ActorRef | None) -> None:
        try:
            ref.tell_nowait(message, sender=sender)
        except MailboxFull:
            ref._cell.system._dead_letter(message, sender, ref, DeadLetterReason.MAILBOX_FULL)

    async def route(self, ctx: Context, message: Any) -> None:
        routees = list(self.routees)
        if not ctx.asked:
            sender = ctx.sender
            for ref in routees:
                if ref._cell.mailbox.overflow is Overflow.BLOCK:
                    await ref.tell(message, sender=sender)
                else:
                    self._tell_one(ref, message, sender)
            return
        reply = ctx.detach_reply()
        timeout = ctx.system.ask_timeout

        async def gather() -> None:
            answers: list[RouteeReply] = [RouteeReply(ref) for ref in routees]

            async def one(index: int, ref: ActorRef) -> None:
                try:
                    value = await ref.ask(message, timeout=timeout)
                except Exception as exc:
                    answers[index] = RouteeReply(ref, error=exc)
                else:
                    answers[index] = RouteeReply(ref, value=value)

            async with trio.open_nursery() as nursery:
                for index, ref in enumerate(routees):
                    nursery.start_soon(one, index, ref)
            reply.send(answers)

        ctx.start_soon(gather)


# -- specs ------------------------------------------------------------------------------


def _routee_list(routees: Iterable[ActorRef]) -> tuple[ActorRef, ...]:
    refs = tuple(routees)
    for ref in refs:
        if not isinstance(ref, ActorRef):
            raise TypeError(f"routees must be ActorRefs, not {ref!r}")
    return refs


def _pool(
    size: int,
    factory: Factory,
    mailbox: MailboxSpec | None,
    supervisor: SupervisorStrategy | None,
) -> _Pool:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"a pool needs a positive int size, not {size!r}")
    return _Pool(size, factory, mailbox, supervisor)


@attrs.frozen
class _RouterSpec:
    routees: tuple[ActorRef, ...] = attrs.field(default=(), converter=_routee_list)
    _pool: _Pool | None = attrs.field(default=None, kw_only=True, alias="pool")

    @classmethod
    def pool(
        cls,
        size: int,
        factory: Factory,
        *,
        mailbox: MailboxSpec | None = None,
        supervisor: SupervisorStrategy | None = None,
        **options: Any,
    ) -> Self:
        """A router over ``size`` workers it spawns as its children from ``factory``
        (with ``mailbox`` and ``supervisor``); ``options`` are the router's own
        (``seed`` for Random, ``key`` and ``virtual_nodes`` for ConsistentHash)."""
        return cls(pool=_pool(size, factory, mailbox, supervisor), **options)


@attrs.frozen
class RoundRobin(_RouterSpec):
    """Route to each routee in turn."""

    def create_actor(self) -> Actor:
        """A fresh router instance (the spec is what ``spawn`` takes)."""
        return _RoundRobinActor(self.routees, self._pool)


@attrs.frozen
class Random(_RouterSpec):
    """Route to a random routee; ``seed`` makes the choices reproducible."""

    seed: int | None = attrs.field(default=None, kw_only=True)

    def create_actor(self) -> Actor:
        """A fresh router instance (the spec is what ``spawn`` takes)."""
        return _RandomActor(self.routees, self._pool, self.seed)


@attrs.frozen
class Broadcast(_RouterSpec):
    """Tell every routee; an ask is answered with every routee's :class:`RouteeReply`.

    The answers come in routee order, each with its value or its error (``AskTimeout``
    after the system's ``ask_timeout``, ``ActorFailed``, ...). The router keeps taking
    messages while an ask gathers its answers.
    """

    def create_actor(self) -> Actor:
        """A fresh router instance (the spec is what ``spawn`` takes)."""
        return _BroadcastActor(self.routees, self._pool)


@attrs.frozen
class LeastLoaded(_RouterSpec):
    """Route to the routee with the fewest messages (queued plus the one in hand)."""

    def create_actor(self) -> Actor:
        """A fresh router instance (the spec is what ``spawn`` takes)."""
        return _LeastLoadedActor(self.routees, self._pool)


def _default_key(message: Any) -> str | bytes:
    if isinstance(message, str | bytes):
        return message
    key = getattr(message, "hash_key", None)
    if key is None:
        raise TypeError(
            f"ConsistentHash cannot key a {type(message).__qualname__} message: give the "
            "router a key= function or the message a hash_key attribute"
        )
    return key() if callable(key) else key  # type: ignore[no-any-return]


@attrs.frozen
class ConsistentHash(_RouterSpec):
    """Route by ``key(message)`` on a :class:`HashRing` of the routees' paths (for
    routees on other nodes, their URIs: remote routees work like local ones).

    ``key`` returns ``str`` or ``bytes``; by default a str/bytes message is its own
    key, and other messages must have a ``hash_key`` attribute (or method).
    """

    key: Callable[[Any], str | bytes] = attrs.field(default=_default_key, kw_only=True)
    virtual_nodes: int = attrs.field(default=100, kw_only=True)

    def create_actor(self) -> Actor:
        """A fresh router instance (the spec is what ``spawn`` takes)."""
        return _ConsistentHashActor(self.routees, self._pool, self.key, self.virtual_nodes)
