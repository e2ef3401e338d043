"""What a ref to an actor on another node stands on (internal).

An :class:`~tinyagents.ActorRef` wraps a cell. For a remote actor that cell is a
:class:`RemoteCell`: it has what refs, watchers and routers read of a cell (``path``,
``uid``, ``state``, ``accept``, ``request_stop``, ``wait_terminated``, watchers), and
hands every message to its node's :class:`~tinyagents.transport._service.Peer`, which
encodes it and queues it for that node's connection. Nothing here blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..actor._base import Reply
from ..actor._events import StopReason
from ..mailbox import MailboxStatistics, Overflow

if TYPE_CHECKING:
    from ..actor._cell import ActorCell, Envelope
    from ..actor._ref import ActorRef
    from ..actor._system import ActorSystem
    from ._service import Peer

__all__ = ["RemoteCell", "RemoteMailbox", "RemoteReply", "StreamProxy"]

STOPPED = 3


class RemoteMailbox:
    """A remote actor's mailbox as routers see it from here: never full, nothing known
    to be queued (the real mailbox is on the other node)."""

    __slots__ = ("enqueued",)

    queue: tuple[()] = ()
    busy = False
    overflow = Overflow.DROP_NEWEST
    capacity = math.inf
    _senders: tuple[()] = ()
    closed = False

    def __init__(self) -> None:
        self.enqueued = 0

    def statistics(self) -> MailboxStatistics:
        """What this node knows: how many messages it sent there."""
        return MailboxStatistics(0, math.inf, self.enqueued, 0, 0, False)


class RemoteCell:
    """The local stand-in of one actor on another node. Internal.

    ``node_uid`` is the incarnation of the node it was found on (0: any), ``uid`` the
    actor's incarnation there (0: whatever lives at ``path``).
    """

    __slots__ = (
        "__weakref__",
        "mailbox",
        "node",
        "node_uid",
        "path",
        "peer",
        "ref",
        "state",
        "stop_error",
        "stop_reason",
        "system",
        "terminated_event",
        "uid",
        "watchers",
    )

    is_remote = True
    route = None
    parent = None

    def __init__(
        self, system: ActorSystem, peer: Peer | None, node: str, node_uid: int, path: str, uid: int
    ) -> None:
        from ..actor._ref import ActorRef

        self.system = system
        self.peer = peer
        self.node = node
        self.node_uid = node_uid
        self.path = path
        self.uid = uid
        self.state = 1  # RUNNING, as far as this node knows
        self.stop_reason = StopReason.STOPPED
        self.stop_error: BaseException | None = None
        self.watchers: set[ActorCell] | None = None
        self.terminated_event: trio.Event | None = None
        self.mailbox = RemoteMailbox()
        self.ref: ActorRef = ActorRef._create(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<remote actor tinyagents://{self.node}{self.path}>"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    # -- delivery --------------------------------------------------------------------

    def accept(self, envelope: Envelope) -> None:
        """Encode and queue ``envelope`` for the actor's node; never waits.

        A stopped (as far as known) actor makes it a dead letter at once, its ask
        failing with ``ActorStopped``. Raises ``NotSerializable`` / ``FrameTooLarge``
        when the message cannot cross nodes.
        """
        if self.state == STOPPED or self.peer is None:
            self.undeliverable(envelope)
            return
        self.mailbox.enqueued += 1
        self.peer.send_message(self, envelope)

    async def accept_waiting(self, envelope: Envelope) -> None:  # pragma: no cover
        self.accept(envelope)
        await trio.lowlevel.checkpoint()

    def undeliverable(self, envelope: Envelope) -> None:
        from ..actor._events import DeadLetterReason
        from ..errors import ActorStopped

        reply = envelope[2]
        error = self.stop_error
        if reply is not None and not reply._done:
            if self.stop_reason is StopReason.NODE_UNREACHABLE and error is not None:
                reply._settle(None, error)
            else:
                reply._settle(None, ActorStopped(self.path, envelope[0]))
        reason = (
            DeadLetterReason.NODE_UNREACHABLE
            if self.stop_reason is StopReason.NODE_UNREACHABLE
            else DeadLetterReason.RECIPIENT_STOPPED
        )
        self.system._dead_letter(envelope[0], envelope[1], self.ref, reason)

    def request_stop(self, grace: float, deadline: float | None = None) -> None:
        """Ask the actor's node to stop it, with ``grace``; the node tells us when it
        has stopped (or the node is found unreachable)."""
        if self.state == STOPPED or self.peer is None:
            return
        self.peer.send_stop(self, grace)

    async def wait_terminated(self) -> None:
        if self.state == STOPPED:
            await trio.lowlevel.checkpoint()
            return
        if self.terminated_event is None:
            self.terminated_event = trio.Event()
        await self.terminated_event.wait()

    # -- watch -----------------------------------------------------------------------

    def add_watcher(self, watcher: ActorCell) -> None:
        if self.watchers is None:
            self.watchers = set()
        first = not self.watchers
        self.watchers.add(watcher)
        if first and self.peer is not None:
            self.peer.send_watch(self, watch=True)

    def remove_watcher(self, watcher: ActorCell) -> None:
        if not self.watchers:
            return
        self.watchers.discard(watcher)
        if not self.watchers and self.peer is not None and self.state != STOPPED:
            self.peer.send_watch(self, watch=False)

    def terminated(self, reason: StopReason, error: BaseException | None) -> None:
        """The actor stopped (or its node is gone): tell watchers and stoppers, once."""
        if self.state == STOPPED:
            return
        self.state = STOPPED
        self.stop_reason = reason
        self.stop_error = error
        watchers = self.watchers
        self.watchers = None
        if watchers:
            for watcher in watchers:
                watcher.notify_terminated(self)  # type: ignore[arg-type]
        if self.terminated_event is not None:
            self.terminated_event.set()
        if self.peer is not None:
            self.peer.forget_cell(self)


class RemoteReply(Reply):
    """The reply to an ask that came from another node: settling it sends the answer
    back (``send_back(value, error)``); its deadline passing marks it expired, so a
    message still queued then is skipped rather than handled."""

    __slots__ = ("_send_back",)

    def __init__(self, message: object, send_back: Callable[[object, BaseException | None], None]):
        super().__init__(message)
        self._send_back = send_back

    def _settle(self, value: object, error: BaseException | None) -> bool:
        expired = self._expired
        if not Reply._settle(self, value, error):
            return False
        if not expired:
            self._send_back(value, error)
        return True

    def _expire(self, error: BaseException) -> None:
        self._timer = None
        if not self._done:
            self._expired = True
            self._abandoned = True
            self._send_back(None, error)


class StreamProxy(trio.abc.SendChannel[Any]):
    """A send channel whose other end is on another node (a ``Prompt.stream`` that
    crossed): each value sent is queued for that node, closing it closes the original
    there. Sending never waits for the other node."""

    def __init__(self, send: Callable[[object], None], close: Callable[[], None]) -> None:
        self._send = send
        self._close = close
        self._closed = False

    async def send(self, value: Any) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        self._send(value)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()
        await trio.lowlevel.checkpoint()
