"""The transport: actor messages between nodes over framed, authenticated TCP.

One :class:`Transport` per actor system. It listens on ``bind``; for each other node
it keeps a :class:`Peer`: the node's address, at most one connection (opened lazily
by the first message, or accepted from the other side), the queue of frames waiting
for that connection, the asks waiting for answers from it, and the refs to its actors.

Frames carry msgpack arrays whose first item is the kind:

====  ==========  ========================================================================
kind  name        items after the kind
====  ==========  ========================================================================
0     tell        target path, target uid, target node uid, sender, type id, payload, trace
1     ask         ask id, seconds left (nil: none), then as a tell
2     reply       ask id, type id, payload
3     fail        ask id, error kind, type name, text
4     stop        target path, target uid, target node uid, grace
5/6   (un)watch   target path, target uid, target node uid
7     terminated  path, uid, reason, error type name, error text
8     chunk       stream id, type id, payload  (a value sent on a stream that crossed)
9     end         stream id  (that stream was closed)
10    dead        path, uid, type id  (a tell found no actor there)
11    retire      (none)  (the sender writes nothing more on this connection)
====  ==========  ========================================================================

When both nodes dial each other at once, the connection dialed by the node with the
smaller id wins, on both sides, whichever handshake finishes first. A connection that
loses after it carried frames is retired, never cut: each side finishes the batch it
is writing, sends ``retire`` and writes no more there, and reads until the other side's
``retire`` arrives, so no frame sent on it is lost and its asks' replies come back on
the connection that won.

Uids of 0 mean "any": a ref made from a URI names whatever actor lives at the path,
on whatever incarnation of the node is up. Per sender, messages to one node keep their
order (one queue, one connection). Delivery is at most once: pending asks to a node
fail with :class:`~tinyagents.errors.NodeUnreachable` as soon as its connection drops
or the cluster declares it dead, tells that could not be written are dead letters.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import secrets
import socket
import weakref
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import attrs
import trio

from .. import _tracing
from .._address import Address, format_address, parse_address
from .._metrics import Sample
from .._nursery import open_service_nursery
from .._validate import check_optional, check_seconds
from ..actor._base import Reply
from ..actor._cell import ActorCell, Envelope
from ..actor._events import DeadLetterReason, StopReason
from ..actor._ref import ActorRef, _when_full
from ..errors import (
    ActorFailed,
    ActorStopped,
    AskTimeout,
    CodecError,
    FrameTooLarge,
    HandshakeFailed,
    MailboxError,
    MailboxFull,
    MalformedFrame,
    MessageDropped,
    NodeUnreachable,
    RemoteError,
    SystemNotRunning,
    TransportError,
    TurnSuspended,
    UnknownMessageType,
)
from ._codec import Codec, MessageRegistry
from ._frame import DEFAULT_FRAME_LIMIT, FrameReader, encode_frame
from ._handshake import HandshakeAbandoned, NodeIdentity, accept_handshake, dial_handshake
from ._remote import RemoteCell, RemoteReply, StreamProxy
from ._tls import TLS, wrap_client, wrap_server

if TYPE_CHECKING:
    from ..actor._system import ActorSystem
    from ..cluster._member import Member

__all__ = ["TRANSPORT_TAG", "Peer", "Transport", "TransportConfig", "TransportStats"]

logger = logging.getLogger("tinyagents.transport")

TRANSPORT_TAG = "ta-transport"
"""The gossip tag under which a node advertises its transport address (``host:port``)."""

TELL, ASK, REPLY, FAIL, STOP, WATCH, UNWATCH, TERMINATED, CHUNK, END, DEAD, RETIRE = range(12)
_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
_STOPPED = 3


def _advertised_address(member: Member) -> tuple[str, int] | None:
    """The transport address in ``member``'s tags, or ``None`` (a bad one is logged)."""
    where = member.tags.get(TRANSPORT_TAG)
    if not where:
        return None
    try:
        return parse_address(where, what="transport tag")
    except ValueError:
        logger.warning("transport: %s advertises a bad address %r", member.id, where)
        return None


@attrs.frozen
class TransportConfig:
    """Timings and limits of a :class:`Transport`.

    * ``frame_limit`` — the largest frame accepted or sent, in bytes (default 4 MiB). A
      peer announcing a larger one has its connection closed (``FrameTooLarge``,
      counted); a message that would encode larger fails at the sender.
    * ``connect_timeout`` — how long opening a connection (TCP, TLS and handshake)
      may take.
    * ``backoff_min`` / ``backoff_max`` — after a failed connection attempt, messages
      to that node fail at once for this long, doubling from min to max while attempts
      keep failing.
    * ``max_queued`` — frames waiting for one node's connection; beyond it new messages
      to that node fail at once (dead letters, asks with ``NodeUnreachable``).
    """

    frame_limit: int = DEFAULT_FRAME_LIMIT
    connect_timeout: float = 5.0
    backoff_min: float = 0.1
    backoff_max: float = 5.0
    max_queued: int = 100_000

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.frame_limit, int) or self.frame_limit < 1024:
            raise ValueError(f"frame_limit must be an int >= 1024, not {self.frame_limit!r}")
        check_seconds(self.connect_timeout, "connect_timeout", zero=False)
        check_seconds(self.backoff_min, "backoff_min")
        check_seconds(self.backoff_max, "backoff_max")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must be >= backoff_min")
        if not isinstance(self.max_queued, int) or self.max_queued < 1:
            raise ValueError(f"max_queued must be an int >= 1, not {self.max_queued!r}")


@attrs.define
class TransportStats:
    """Counters of one transport, since it started."""

    connections_opened: int = 0
    connections_accepted: int = 0
    connections_refused: int = 0
    """Inbound connections whose handshake failed (wrong secret, cluster, version...)."""
    connect_failures: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    frames_too_large: int = 0
    malformed_frames: int = 0
    dead_letters: int = 0
    """Messages for or from other nodes that became dead letters on this node."""


def _error_to_wire(error: BaseException) -> tuple[str, str, str]:
    """``(kind, type name, text)`` of an ask's failure, for a ``fail`` frame."""
    if isinstance(error, ActorFailed):
        cause = error.error
        if isinstance(cause, RemoteError):
            return "failed", cause.type_name, cause.text
        return "failed", type(cause).__qualname__, str(cause)
    if isinstance(error, ActorStopped):
        return "stopped", "", str(error)
    if isinstance(error, MessageDropped):
        return "dropped", error.policy, str(error)
    if isinstance(error, MailboxFull):
        return "full", str(error.capacity), str(error)
    if isinstance(error, AskTimeout):
        return "timeout", repr(float(error.timeout)), str(error)
    if isinstance(error, NodeUnreachable):
        return "unreachable", error.node, error.detail
    if isinstance(error, UnknownMessageType):
        return "unknown_type", error.type_id, str(error)
    if isinstance(error, CodecError):
        return "codec", type(error).__qualname__, str(error)
    if isinstance(error, TurnSuspended):
        return "suspended", _suspension_to_wire(error), str(error)
    return "error", type(error).__qualname__, str(error)


def _suspension_to_wire(error: TurnSuspended) -> str:
    """A suspended turn's agent, detail and waiting calls, as JSON (the tool calls'
    arguments came from a model as JSON)."""
    waiting = [
        {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
        for call in error.waiting
    ]
    try:
        return json.dumps({"agent": error.agent, "detail": error.detail, "waiting": waiting})
    except (TypeError, ValueError):  # arguments edited into something JSON cannot hold
        return json.dumps({"agent": error.agent, "detail": error.detail, "waiting": []})


def _suspension_from_wire(data: str, text: str, node: str) -> BaseException:
    from ..llm import ToolCall

    try:
        fields = json.loads(data)
        waiting = tuple(
            ToolCall(call["id"], call["name"], call["arguments"]) for call in fields["waiting"]
        )
        return TurnSuspended(str(fields["agent"]), waiting, str(fields["detail"]))
    except (ValueError, TypeError, KeyError):  # a peer's garbage: still an error, typed
        return RemoteError("TurnSuspended", text, node=node)


def _error_from_wire(
    kind: str, type_name: str, text: str, path: str, message: object, node: str
) -> BaseException:
    if kind == "failed":
        cause = RemoteError(type_name, text, node=node)
        failure = ActorFailed(path, cause, message)
        failure.__cause__ = cause
        return failure
    if kind == "stopped":
        return ActorStopped(path, message, detail=text)
    if kind == "dropped":
        return MessageDropped(path, type_name, message)
    if kind == "full":
        return MailboxFull(path, int(type_name) if type_name.isdigit() else 0)
    if kind == "timeout":
        try:
            timeout = float(type_name)
        except ValueError:
            timeout = math.nan
        return AskTimeout(path, timeout, message)
    if kind == "unreachable":
        return NodeUnreachable(type_name, text)
    if kind == "unknown_type":
        return UnknownMessageType(type_name, text)
    if kind == "codec":
        return CodecError(text)
    if kind == "suspended":
        return _suspension_from_wire(type_name, text, node)
    return RemoteError(type_name, text, node=node)


class _Forward:
    """Values that came back for a stream whose channel is on this node, passed on to
    it by a task (so that a slow consumer never stalls the connection)."""

    __slots__ = ("channel", "closed", "items", "started", "wake")

    def __init__(self, channel: trio.abc.SendChannel[Any]) -> None:
        self.channel = channel
        self.items: deque[object] = deque()
        self.closed = False
        self.started = False
        self.wake = trio.Event()

    def push(self, value: object) -> None:
        self.items.append(value)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    async def run(self) -> None:
        try:
            while True:
                while self.items:
                    try:
                        await self.channel.send(self.items.popleft())
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self.items.clear()
                        return
                if self.closed:
                    return
                self.wake = trio.Event()
                if not self.items and not self.closed:
                    await self.wake.wait()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.channel.aclose()


def _direct_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """A duplicate of a plain TCP stream's socket, for writes that need no task
    (:meth:`Connection.send_now`); ``None`` for TLS, or where it cannot be made."""
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        raw = stream.socket
        duplicate = socket.fromfd(raw.fileno(), raw.family, raw.type)
    except (OSError, AttributeError, ValueError):
        return None
    duplicate.setblocking(False)
    return duplicate


class Connection:
    """One established, authenticated connection to a peer: a reader and a writer task.

    Frames are written by the writer task, in batches, or, when it is idle, at once by
    the task that sends an ask or its answer (:meth:`send_now`): a remote ask then
    takes no task hop on either side's sending end, while tells keep being batched."""

    def __init__(
        self,
        peer: Peer,
        stream: trio.abc.Stream,
        reader: FrameReader,
        identity: NodeIdentity,
        *,
        outbound: bool,
    ) -> None:
        self.peer = peer
        self.stream = stream
        self.reader = reader
        self.identity = identity
        self.outbound = outbound  # dialed by this node
        self.in_flight: list[tuple[bytes, object]] = []
        self.scope = trio.CancelScope()
        self.closed = False
        self.retiring = False  # this side writes no more here
        self.retired_by_peer = False  # nor does the other side
        self.writing = False  # the writer task is in the middle of a write
        self.direct = _direct_socket(stream)

    def send_now(self, frame: bytes, meta: object) -> bool:
        """Write ``frame`` at once, from the calling task, if the writer task is idle
        (nothing queued, nothing being written) and the socket takes it without
        blocking; what it does not take is queued first for the writer. False when
        the frame must be queued instead (TLS, a write under way, a retiring or
        closed connection, a full socket buffer).

        Never blocks and never checkpoints, so it is safe from synchronous code and
        cannot be cancelled halfway: a frame is written whole, or its rest is queued
        ahead of everything else."""
        direct = self.direct
        if direct is None or self.writing or self.retiring or self.closed:
            return False
        try:
            sent = direct.send(frame)
        except OSError:  # full (BlockingIOError), or broken: the writer finds out
            return False
        stats = self.peer.transport.stats
        stats.bytes_sent += sent
        if sent < len(frame):
            self.peer.outbox.appendleft((frame[sent:], meta))
            self.peer.wake.set()
        else:
            stats.frames_sent += 1
        return True

    def close(self) -> None:
        self.closed = True
        self.scope.cancel()

    def retire(self) -> None:
        """Stop writing here once the batch being written is out, tell the other side,
        and close once it has said the same (or after ``connect_timeout``)."""
        if self.retiring:
            return
        self.retiring = True
        self.scope.deadline = trio.current_time() + self.peer.transport.config.connect_timeout
        self.peer.wake.set()

    async def run(self) -> None:
        peer = self.peer
        reason = "the connection closed"
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop)
                    try:
                        await self._read_loop()
                    finally:
                        nursery.cancel_scope.cancel()
        except* FrameTooLarge as too_large:
            peer.transport.stats.frames_too_large += 1
            reason = str(too_large.exceptions[0])
            logger.warning("transport: closing the connection with %s: %s", peer.node, reason)
        except* (MalformedFrame, CodecError) as malformed:
            peer.transport.stats.malformed_frames += 1
            reason = f"malformed frame: {malformed.exceptions[0]}"
            logger.warning("transport: closing the connection with %s: %s", peer.node, reason)
        except* _NETWORK_ERRORS as group:
            reason = f"the connection broke: {group.exceptions[0]!r}"
        finally:
            if self.direct is not None:
                self.direct.close()  # the duplicate only: the stream's socket stays
                self.direct = None
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()
            peer.connection_lost(self, reason)

    async def _write_loop(self) -> None:
        peer = self.peer
        stats = peer.transport.stats
        stream = self.stream
        while True:
            if self.retiring:
                await stream.send_all(encode_frame(peer.pack([RETIRE])))
                await trio.sleep_forever()
            outbox = peer.outbox
            if not outbox:
                peer.wake = trio.Event()
                await peer.wake.wait()
                continue
            batch = list(outbox)
            outbox.clear()
            self.in_flight = batch
            data = b"".join([frame for frame, _ in batch])
            self.writing = True
            await stream.send_all(data)
            self.writing = False
            self.in_flight = []
            stats.frames_sent += len(batch)
            stats.bytes_sent += len(data)

    async def _read_loop(self) -> None:
        peer = self.peer
        stats = peer.transport.stats
        read_frames = self.reader.read_frames
        unpack = peer.unpack
        handle = peer.handle
        while True:
            # every frame complete in one receive, handled in order in one pass
            frames = await read_frames()
            if not frames:
                return
            for frame in frames:
                stats.frames_received += 1
                stats.bytes_received += len(frame) + 4
                item = unpack(frame)
                if type(item) is not list or not item or type(item[0]) is not int:
                    raise MalformedFrame(
                        "an envelope must be a non-empty array starting with its kind"
                    )
                if item[0] == RETIRE:
                    self.retired_by_peer = True
                    if self.retiring:
                        return
                    peer.retired(self)
                    continue
                try:
                    await handle(item)
                except (IndexError, TypeError, ValueError, KeyError) as error:
                    if isinstance(error, TransportError | MailboxError):
                        raise
                    raise MalformedFrame(
                        f"a malformed envelope of kind {item[0]}: {error}"
                    ) from None


class Peer:
    """Everything this node keeps about one other node. Internal (see the module)."""

    def __init__(self, transport: Transport, node: str) -> None:
        self.transport = transport
        self.node = node
        self.address: tuple[str, int] | None = None
        self.identity: NodeIdentity | None = None
        self.connection: Connection | None = None
        self.dialing = False
        self.connected = trio.Event()
        self.retry_at = -math.inf
        self.backoff = transport.config.backoff_min
        self.outbox: deque[tuple[bytes, object]] = deque()
        self.wake = trio.Event()
        self.pending: dict[int, tuple[Reply, RemoteCell]] = {}
        self.cells: weakref.WeakValueDictionary[tuple[int, str, int], RemoteCell] = (
            weakref.WeakValueDictionary()
        )
        self.watched: set[RemoteCell] = set()
        self.stoppers: set[RemoteCell] = set()
        self.exported: dict[int, _Forward] = {}
        self.known_by_cluster = False
        self.refused_for_own = False
        codec = transport.codec
        self.pack = codec.packer(self)
        self.unpack = codec.unpacker(self)

    def __repr__(self) -> str:
        return f"<Peer {self.node!r}>"

    # -- WireHooks -------------------------------------------------------------------

    @property
    def peer(self) -> str:
        return self.node

    def ref_to_wire(self, ref: ActorRef) -> list[object]:
        return self.transport.ref_to_wire(ref)

    def ref_from_wire(self, data: list[object]) -> ActorRef:
        return self.transport.ref_from_wire(data)

    def channel_to_wire(self, channel: trio.abc.SendChannel[Any]) -> int:
        stream_id = next(self.transport._ids)
        self.exported[stream_id] = _Forward(channel)
        return stream_id

    def channel_from_wire(self, stream_id: int) -> trio.abc.SendChannel[Any]:
        def send(value: object) -> None:
            type_id, payload = self.transport.codec.to_wire(value, self)
            self.enqueue([CHUNK, stream_id, type_id, payload])

        return StreamProxy(send, lambda: self.enqueue([END, stream_id]))

    # -- sending ---------------------------------------------------------------------

    def _frame(self, item: list[object]) -> bytes:
        data = self.pack(item)
        limit = self.transport.config.frame_limit
        if len(data) > limit:
            raise FrameTooLarge(len(data), limit)
        return encode_frame(data)

    def enqueue(self, item: list[object], meta: object = None, *, now: bool = False) -> None:
        """Queue one envelope for this node, connecting if need be; with ``now`` (an
        ask or its answer, which someone waits for), written at once if the
        connection is idle. Raises ``NodeUnreachable`` when the node cannot be
        reached now."""
        frame = self._frame(item)
        connection = self.connection
        if connection is None:
            self._ensure_connecting()
        elif now and not self.outbox and connection.send_now(frame, meta):
            return
        if len(self.outbox) >= self.transport.config.max_queued:
            raise NodeUnreachable(self.node, "too many messages are waiting for its connection")
        self.outbox.append((frame, meta))
        self.wake.set()

    def _ensure_connecting(self) -> None:
        if self.dialing:
            return
        now = trio.current_time()
        if now < self.retry_at:
            raise NodeUnreachable(
                self.node,
                f"the last connection attempt failed; retrying in {self.retry_at - now:.2g}s",
            )
        if self.address is None:
            # the cluster may know it before this transport's member events arrive
            self.address = self.transport._address_from_cluster(self.node)
        if self.address is None:
            raise NodeUnreachable(
                self.node,
                "its transport address is unknown (give it in the URI, in peers=, or "
                "through a GossipCluster)",
            )
        nursery = self.transport._nursery
        if nursery is None:
            raise NodeUnreachable(self.node, "this node's transport is not running")
        self.dialing = True
        nursery.start_soon(self._dial, name=f"tinyagents transport: connect to {self.node}")

    def send_message(self, cell: RemoteCell, envelope: Envelope) -> None:
        message, sender, reply = envelope
        codec = self.transport.codec
        type_id, payload = codec.to_wire(message, self)
        target = (cell.path, cell.uid, cell.node_uid)
        try:
            if reply is None:
                self.enqueue(
                    [TELL, *target, sender, type_id, payload, None], (message, sender, cell.ref)
                )
                return
            ask_id = next(self.transport._ids)
            deadline = reply.deadline
            left = None if deadline == math.inf else max(0.0, deadline - trio.current_time())
            self.pending[ask_id] = (reply, cell)
            trace = None if reply._trace is None else _tracing.to_wire(reply._trace)
            try:
                self.enqueue(
                    [ASK, ask_id, left, *target, sender, type_id, payload, trace], now=True
                )
            except BaseException:
                del self.pending[ask_id]
                raise
        except NodeUnreachable as error:
            self.transport.stats.dead_letters += 1
            if reply is not None and not reply._done:
                reply._settle(None, error)
            self.transport.system._dead_letter(
                message, sender, cell.ref, DeadLetterReason.NODE_UNREACHABLE
            )

    def send_stop(self, cell: RemoteCell, grace: float) -> None:
        try:
            self.enqueue([STOP, cell.path, cell.uid, cell.node_uid, grace])
        except NodeUnreachable as error:
            cell.terminated(StopReason.NODE_UNREACHABLE, error)
            return
        self.stoppers.add(cell)

    def send_watch(self, cell: RemoteCell, *, watch: bool) -> None:
        if watch:
            self.watched.add(cell)
        else:
            self.watched.discard(cell)
        try:
            self.enqueue([WATCH if watch else UNWATCH, cell.path, cell.uid, cell.node_uid])
        except NodeUnreachable as error:
            if watch:
                cell.terminated(StopReason.NODE_UNREACHABLE, error)

    def forget_cell(self, cell: RemoteCell) -> None:
        self.watched.discard(cell)
        self.stoppers.discard(cell)
        key = (cell.node_uid, cell.path, cell.uid)
        if self.cells.get(key) is cell:
            del self.cells[key]

    # -- connections -----------------------------------------------------------------

    async def _dial(self) -> None:
        transport = self.transport
        assert self.address is not None
        try:
            stream, reader, identity = await transport._open(self.address, self.node)
        except (*_NETWORK_ERRORS, TransportError, trio.TooSlowError) as error:
            self.dialing = False
            if (
                isinstance(error, HandshakeFailed)
                and "simultaneous" in error.reason
                and self.connection is None
            ):
                # the other node's connection to us wins: wait for it
                with trio.move_on_after(transport.config.connect_timeout):
                    await self.connected.wait()
            if self.connection is None:
                transport.stats.connect_failures += 1
                self._dial_failed(error)
            return
        self.dialing = False
        if transport._nursery is None:
            # the transport began closing while the handshake ran: nothing to attach to
            await trio.aclose_forcefully(stream)
            return
        if not self.replaced_by(identity, outbound=True):
            # the other node's connection won meanwhile: this one only drains
            await self.drain(stream, reader, identity, outbound=True)
            return
        transport.stats.connections_opened += 1
        self.attach(stream, reader, identity, outbound=True)

    def _dial_failed(self, error: BaseException) -> None:
        detail = f"could not connect to {format_address(self.address or ('?', 0))}: {error}"
        logger.info("transport: %s: %s", self.node, detail)
        now = trio.current_time()
        self.retry_at = now + self.backoff
        self.backoff = min(self.backoff * 2, self.transport.config.backoff_max)
        unreachable = NodeUnreachable(self.node, detail)
        self._fail_all(unreachable, self.outbox)
        self.outbox.clear()
        if not self.known_by_cluster:
            self._cells_gone(unreachable, None)

    def replaced_by(self, identity: NodeIdentity, *, outbound: bool) -> bool:
        """Whether a new connection with ``identity`` (dialed by this node when
        ``outbound``) should replace this peer's connection: always, unless the current
        one reaches the same incarnation and was dialed by the other side of the pair,
        in which case the one dialed by the smaller node id wins (on both nodes alike)."""
        current = self.connection
        if current is None or current.identity.uid != identity.uid:
            return True
        if current.outbound == outbound:
            return True  # the same node dialed again: it lost the old one
        return outbound == (self.transport.node < self.node)

    async def drain(
        self,
        stream: trio.abc.Stream,
        reader: FrameReader,
        identity: NodeIdentity,
        *,
        outbound: bool,
    ) -> None:
        """Run a connection that lost a simultaneous open, retired from the start: what
        the other node sent on it is still read, nothing more is written."""
        loser = Connection(self, stream, reader, identity, outbound=outbound)
        loser.retire()
        await loser.run()

    def admit(self, identity: NodeIdentity) -> str | None:
        """Whether an inbound connection from ``identity`` may be used (see the
        module: the connection dialed by the smaller node id wins a simultaneous open)."""
        own = self.transport.node < identity.node and (
            self.dialing or not self.replaced_by(identity, outbound=False)
        )
        if own:
            # if this node's own connection is in fact dead, dial again when it ends,
            # so that the other node (waiting for it) is not left without one
            self.refused_for_own = True
            return f"simultaneous connection: {self.transport.node!r}'s own connection is used"
        return None

    def attach(
        self,
        stream: trio.abc.Stream,
        reader: FrameReader,
        identity: NodeIdentity,
        *,
        outbound: bool,
        start: bool = True,
    ) -> Connection:
        """Make an authenticated stream this peer's connection (closing any other);
        with ``start``, its task is started in the transport's nursery, else the caller
        runs it (``await connection.run()``)."""
        old_identity = self.identity
        if old_identity is not None and old_identity.uid != identity.uid:
            self.incarnation_gone(
                NodeUnreachable(self.node, "it restarted as a new incarnation"), old_identity.uid
            )
        old = self.connection
        if old is not None:
            if old.identity.uid == identity.uid:
                old.retire()  # its frames still arrive; its asks' replies come here
            else:
                old.close()
        self.identity = identity
        self.address = identity.address
        self.retry_at = -math.inf
        self.backoff = self.transport.config.backoff_min
        connection = Connection(self, stream, reader, identity, outbound=outbound)
        self.connection = connection
        if start:
            nursery = self.transport._nursery
            assert nursery is not None
            nursery.start_soon(connection.run, name=f"tinyagents transport: {self.node}")
        # watches of this node's actors, registered again (idempotent there)
        for cell in list(self.watched):
            if cell.node_uid in (0, identity.uid):
                frame = self._frame([WATCH, cell.path, cell.uid, cell.node_uid])
                self.outbox.appendleft((frame, None))
        self.connected.set()
        self.connected = trio.Event()
        self.wake.set()
        return connection

    def connection_lost(self, connection: Connection, reason: str) -> None:
        if self.connection is not connection:
            return  # replaced by a newer connection
        self.connection = None
        unreachable = NodeUnreachable(self.node, reason)
        self._fail_all(unreachable, connection.in_flight)
        connection.in_flight = []
        for reply, _ in list(self.pending.values()):
            if not reply._done:
                reply._settle(None, unreachable)
        self.pending.clear()
        for forward in self.exported.values():
            forward.close()
        self._start_forwards()
        self.exported.clear()
        if self.transport._nursery is None:
            return
        refused, self.refused_for_own = self.refused_for_own, False
        self._reconnect(always=refused)

    def retired(self, connection: Connection) -> None:
        """The other node retired ``connection``: retire it here too. Were it still
        this peer's connection, frames wait for the next one."""
        connection.retire()
        if self.connection is connection:
            self.connection = None
            self._reconnect()

    def _reconnect(self, *, always: bool = False) -> None:
        """Dial again if anything waits for a connection (or ``always``)."""
        if always or self.outbox or self.watched or self.stoppers:
            try:
                self._ensure_connecting()
            except NodeUnreachable as error:
                self._dial_failed(error)

    def _fail_all(self, error: NodeUnreachable, frames: Any) -> None:
        system = self.transport.system
        for _, meta in frames:
            if meta is not None:
                message, sender, recipient = meta
                self.transport.stats.dead_letters += 1
                system._dead_letter(message, sender, recipient, DeadLetterReason.NODE_UNREACHABLE)
        for ask_id, (reply, _) in list(self.pending.items()):
            if not reply._done:
                reply._settle(None, error)
            del self.pending[ask_id]

    def _cells_gone(self, error: NodeUnreachable, node_uid: int | None) -> None:
        for cell in list(self.cells.values()):
            if node_uid is None or cell.node_uid == node_uid:
                cell.terminated(StopReason.NODE_UNREACHABLE, error)

    def incarnation_gone(self, error: NodeUnreachable, node_uid: int | None) -> None:
        """That incarnation of the node is dead (or every one, ``None``): its asks fail,
        its actors' watchers learn it, its refs stop. Asks and refs meant for any
        incarnation stay when ``node_uid`` names one."""
        if node_uid is None:
            self._fail_all(error, ())
        else:
            for ask_id, (reply, cell) in list(self.pending.items()):
                if cell.node_uid == node_uid:
                    del self.pending[ask_id]
                    if not reply._done:
                        reply._settle(None, error)
        self._cells_gone(error, node_uid)

    def node_gone(self, error: NodeUnreachable) -> None:
        """The cluster declared the node dead or gone."""
        self._fail_all(error, self.outbox)
        self.outbox.clear()
        self._cells_gone(error, None)
        self.identity = None
        connection = self.connection
        if connection is not None:
            self.connection = None
            connection.close()
        self.transport._remote_watchers_gone(self)

    def _start_forwards(self) -> None:
        nursery = self.transport._nursery
        for forward in self.exported.values():
            if not forward.started and nursery is not None:
                forward.started = True
                nursery.start_soon(forward.run, name="tinyagents transport: stream")

    # -- receiving -------------------------------------------------------------------

    async def handle(self, item: list[Any]) -> None:
        """Act on one envelope from this node."""
        kind = item[0]
        transport = self.transport
        if kind == TELL:
            _, path, uid, node_uid, sender, type_id, payload, _trace = item
            await transport._deliver(self, path, uid, node_uid, sender, type_id, payload, None)
        elif kind == ASK:
            _, ask_id, left, path, uid, node_uid, sender, type_id, payload, trace = item
            if not isinstance(ask_id, int) or not (left is None or isinstance(left, int | float)):
                raise MalformedFrame("an ask's id must be an int and its time left a number")
            await transport._deliver(
                self, path, uid, node_uid, sender, type_id, payload, (ask_id, left, trace)
            )
        elif kind == REPLY:
            _, ask_id, type_id, payload = item
            entry = self.pending.pop(ask_id, None)
            if entry is None:
                transport._late(payload)
                return
            reply, cell = entry
            try:
                value = transport.codec.from_wire(type_id, payload, self)
            except CodecError as error:
                reply._settle(None, error)
                return
            if reply._done or reply._abandoned:
                transport._late(value, cell.ref)
                return
            reply._settle(value, None)
        elif kind == FAIL:
            _, ask_id, error_kind, type_name, text = item
            entry = self.pending.pop(ask_id, None)
            if entry is None:
                return
            reply, cell = entry
            if not reply._done:
                failure = _error_from_wire(
                    str(error_kind), str(type_name), str(text), cell.path, reply.message, self.node
                )
                if error_kind == "stopped" and cell.uid:
                    cell.terminated(StopReason.STOPPED, None)
                reply._settle(None, failure)
        elif kind == STOP:
            _, path, uid, node_uid, grace = item
            transport._stop_local(self, path, uid, node_uid, check_seconds(grace, "grace"))
        elif kind in (WATCH, UNWATCH):
            _, path, uid, node_uid = item
            transport._watch_local(self, path, uid, node_uid, watch=kind == WATCH)
        elif kind == TERMINATED:
            _, path, uid, reason, type_name, text = item
            self._remote_terminated(path, uid, reason, type_name, text)
        elif kind == CHUNK:
            _, stream_id, type_id, payload = item
            forward = self.exported.get(stream_id)
            if forward is not None:
                forward.push(transport.codec.from_wire(type_id, payload, self))
                self._start_forwards()
        elif kind == END:
            forward = self.exported.pop(item[1], None)
            if forward is not None:
                forward.close()
                if not forward.started:
                    self.exported[item[1]] = forward
                    self._start_forwards()
                    del self.exported[item[1]]
        elif kind == DEAD:
            _, path, uid, type_id = item
            transport.stats.dead_letters += 1
            transport.system._dead_letter(
                f"<{type_id or 'message'}>", None, None, DeadLetterReason.RECIPIENT_STOPPED
            )
            self._remote_terminated(path, uid, "stopped", "", "")
        else:
            raise MalformedFrame(f"unknown envelope kind {kind!r}")

    def _remote_terminated(
        self, path: object, uid: object, reason: object, type_name: object, text: object
    ) -> None:
        if reason == "failed":
            stop_reason = StopReason.FAILED
            error: BaseException | None = RemoteError(str(type_name), str(text), node=self.node)
        else:
            stop_reason, error = StopReason.STOPPED, None
        for cell in list(self.cells.values()):
            if cell.path == path and cell.uid in (0, uid):
                cell.terminated(stop_reason, error)


@attrs.define
class _LocalWatch:
    peers: set[Peer] = attrs.field(factory=set)


class Transport:
    """The node's endpoint for actor messages to and from other nodes, as a service of
    an actor system::

        async with ActorSystem("a") as system, Transport(system, secret=b"...") as t:
            ref = system.ref_for("tinyagents://b@127.0.0.1:7947/user/bot")
            print(await ref.ask("hello", timeout=5))

    While it runs, refs to actors of other nodes work like local ones (``tell``,
    ``ask``, ``stop``, ``ctx.watch``), and refs in messages cross nodes and arrive as
    refs that work. It listens on ``bind`` (``"host:port"`` or a tuple; port 0 picks a
    free one: see :attr:`address`) and connects to other nodes lazily, on the first
    message, one connection per pair of nodes.

    **Parameters:**

    * ``node`` — this node's id (default: the system's name); refs name it.
    * ``cluster`` — nodes of different clusters refuse each other.
    * ``secret`` — a shared secret (bytes or str): peers prove they know it by an HMAC
      challenge-response, in both directions; it never goes on the wire. Nodes with and
      without a secret refuse each other.
    * ``tls`` — mutual TLS (:class:`TLS`) for every connection, with or without a secret.
    * ``peers`` — known transport addresses by node id (more are learnt from refs, URIs
      and a :class:`~tinyagents.cluster.GossipCluster`'s tags).
    * ``advertise`` — the address other nodes should use (default: the bound one).
    * ``config`` — :class:`TransportConfig`.
    * ``registry`` — the message types this node knows (default: the process-wide
      registry that :func:`message` fills).

    Leaving the block closes every connection: pending asks to other nodes fail with
    ``NodeUnreachable``. A refused or failed peer never stops the node: it is logged
    and counted in :attr:`stats`.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        node: str | None = None,
        bind: Address = ("127.0.0.1", 0),
        cluster: str = "tinyagents",
        secret: bytes | str | None = None,
        tls: TLS | None = None,
        peers: Mapping[str, Address] | None = None,
        advertise: Address | None = None,
        config: TransportConfig | None = None,
        registry: MessageRegistry | None = None,
    ) -> None:
        from ..actor._system import ActorSystem

        if not isinstance(system, ActorSystem):
            raise TypeError(f"Transport needs an ActorSystem, not {system!r}")
        self.system = system
        if node is None:
            node = system.name
        if not isinstance(node, str) or not node or "/" in node or "@" in node:
            raise ValueError(f"node must be a non-empty str without '/' or '@', not {node!r}")
        self.node = node
        self._bind = parse_address(bind, what="bind")
        if not isinstance(cluster, str) or not cluster:
            raise ValueError(f"cluster must be a non-empty str, not {cluster!r}")
        self.cluster = cluster
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and (not isinstance(secret, bytes) or len(secret) < 8):
            raise ValueError("secret must be bytes or str of at least 8 bytes (or None)")
        self._secret = secret
        self._tls = check_optional(tls, TLS, "tls")
        self._advertise = None if advertise is None else parse_address(advertise, what="advertise")
        self.config = check_optional(config, TransportConfig, "config") or TransportConfig()
        self.codec = Codec(check_optional(registry, MessageRegistry, "registry"))
        self.stats = TransportStats()
        self.uid = secrets.randbits(63) | 1
        self._ids = itertools.count(1)
        self._peers: dict[str, Peer] = {}
        self._initial_peers = {
            name: parse_address(address, what=f"peers[{name!r}]")
            for name, address in (peers or {}).items()
        }
        self._local_watches: dict[ActorCell, _LocalWatch] = {}
        self._nursery: trio.Nursery | None = None
        self._running: AbstractAsyncContextManager[None] | None = None
        self._identity: NodeIdentity | None = None

    def __repr__(self) -> str:
        return f"<Transport {self.node!r}>"

    @property
    def address(self) -> tuple[str, int]:
        """Where other nodes reach this one (after start)."""
        if self._identity is None:
            raise TransportError(f"{self!r} has not been started (use async with)")
        return self._identity.address

    def add_peer(self, node: str, address: Address) -> None:
        """Say where node ``node``'s transport listens."""
        self.peer(node).address = parse_address(address, what="peer")

    def peer(self, node: str) -> Peer:
        """The peer record of ``node`` (created on first use). Internal."""
        peer = self._peers.get(node)
        if peer is None:
            peer = self._peers[node] = Peer(self, node)
        return peer

    # -- refs ------------------------------------------------------------------------

    def ref_for(self, node: str, path: str, address: tuple[str, int] | None) -> ActorRef:
        """A ref to ``path`` on ``node`` (any incarnation); see ``ActorSystem.ref_for``."""
        if node == self.node:
            ref = self.system.lookup(path)
            if ref is None:
                raise ActorStopped(path, detail=f"no actor lives at {path} on this node")
            return ref
        return self._remote_cell(node, address, 0, path, 0).ref

    def _remote_cell(
        self, node: str, address: tuple[str, int] | None, node_uid: int, path: str, uid: int
    ) -> RemoteCell:
        peer = self.peer(node)
        if address is not None and address[1] and peer.connection is None:
            peer.address = address
        key = (node_uid, path, uid)
        cell = peer.cells.get(key)
        if cell is None:
            cell = RemoteCell(self.system, peer, node, node_uid, path, uid)
            peer.cells[key] = cell
        return cell

    def ref_to_wire(self, ref: ActorRef) -> list[object]:
        cell: Any = ref._cell
        if cell.is_remote:
            peer = cell.peer
            host, port = peer.address if peer is not None and peer.address else ("", 0)
            return [cell.node, host, port, cell.node_uid, cell.path, cell.uid]
        host, port = self.address
        return [self.node, host, port, self.uid, cell.path, cell.uid]

    def ref_from_wire(self, data: list[object]) -> ActorRef:
        try:
            node, host, port, node_uid, path, uid = data
        except (TypeError, ValueError):
            raise CodecError(f"a ref must be 6 items, not {data!r:.80}") from None
        if not (
            isinstance(node, str)
            and node
            and isinstance(host, str)
            and type(port) is int
            and type(node_uid) is int
            and isinstance(path, str)
            and path.startswith("/user/")
            and type(uid) is int
        ):
            raise CodecError(f"a malformed ref {data!r:.80}")
        if node == self.node:
            if node_uid in (0, self.uid):
                ref = self.system.lookup(path)
                if ref is not None and uid in (0, ref.uid):
                    return ref
            tombstone = RemoteCell(self.system, None, node, node_uid, path, uid)
            tombstone.state = _STOPPED
            return tombstone.ref
        return self._remote_cell(node, (host, port) if port else None, node_uid, path, uid).ref

    # -- local side of remote messages -----------------------------------------------

    def _resolve(self, path: object, uid: object, node_uid: object) -> ActorCell | None:
        if not isinstance(path, str) or type(uid) is not int or type(node_uid) is not int:
            raise MalformedFrame("a target must be a path, an actor uid and a node uid")
        if node_uid not in (0, self.uid):
            return None  # meant for an earlier incarnation of this node
        ref = self.system.lookup(path)
        if ref is None or uid not in (0, ref.uid):
            return None
        return ref._cell

    async def _deliver(
        self,
        peer: Peer,
        path: object,
        uid: object,
        node_uid: object,
        sender: object,
        type_id: object,
        payload: object,
        ask: tuple[int, float | None, object] | None,
    ) -> None:
        if sender is not None and type(sender) is not ActorRef:
            raise MalformedFrame("a sender must be a ref or nil")
        if not isinstance(type_id, str):
            raise MalformedFrame("a type id must be a str")
        cell = self._resolve(path, uid, node_uid)
        system = self.system
        try:
            message = self.codec.from_wire(type_id, payload, peer)
        except CodecError as error:
            logger.warning("transport: undecodable message from %s: %s", peer.node, error)
            self.stats.dead_letters += 1
            system._dead_letter(
                f"<{type_id}>", sender, cell.ref if cell else None, DeadLetterReason.UNDECODABLE
            )
            if ask is not None:
                kind, type_name, text = _error_to_wire(error)
                peer.enqueue([FAIL, ask[0], kind, type_name, text])
            return
        if cell is None:
            self.stats.dead_letters += 1
            system._dead_letter(message, sender, None, DeadLetterReason.RECIPIENT_STOPPED)
            text = f"no actor {path} on node {self.node!r}"
            if ask is not None:
                peer.enqueue([FAIL, ask[0], "stopped", "", text])
            else:
                peer.enqueue([DEAD, path, uid, type_id])
            return
        reply: Reply | None = None
        if ask is not None:
            ask_id, left, trace = ask

            def send_back(value: object, error: BaseException | None) -> None:
                self._answer(peer, ask_id, value, error)

            reply = RemoteReply(message, send_back)
            if trace is not None:  # the asker's trace context: the handler continues it
                reply._trace = _tracing.from_wire(trace)
            if left is not None:
                reply.deadline = trio.current_time() + left
                system._ask_timer.watch(reply, reply.deadline, cell, float(left))
        envelope: Envelope = (message, sender, reply)
        try:
            cell.accept(envelope)
        except Exception:
            try:
                await _when_full(cell, envelope)
            except MailboxFull:
                if reply is None:
                    self.stats.dead_letters += 1
                    system._dead_letter(message, sender, cell.ref, DeadLetterReason.MAILBOX_FULL)

    def _answer(self, peer: Peer, ask_id: int, value: object, error: BaseException | None) -> None:
        try:
            if error is None:
                try:
                    type_id, payload = self.codec.to_wire(value, peer)
                    peer.enqueue([REPLY, ask_id, type_id, payload], now=True)
                    return
                except (CodecError, FrameTooLarge) as failure:
                    error = failure
            kind, type_name, text = _error_to_wire(error)
            peer.enqueue([FAIL, ask_id, kind, type_name, text], now=True)
        except NodeUnreachable:
            self.stats.dead_letters += 1
            self.system._dead_letter(value, None, None, DeadLetterReason.LATE_REPLY)

    def _late(self, value: object, ref: ActorRef | None = None) -> None:
        self.stats.dead_letters += 1
        self.system._dead_letter(value, ref, None, DeadLetterReason.LATE_REPLY)

    def _stop_local(
        self, peer: Peer, path: object, uid: object, node_uid: object, grace: float
    ) -> None:
        cell = self._resolve(path, uid, node_uid)
        if cell is None:
            peer.enqueue([TERMINATED, path, uid, "stopped", "", ""])
            return
        self._local_watches.setdefault(cell, _LocalWatch()).peers.add(peer)
        cell.request_stop(grace)

    def _watch_local(
        self, peer: Peer, path: object, uid: object, node_uid: object, *, watch: bool
    ) -> None:
        cell = self._resolve(path, uid, node_uid)
        if cell is None or cell.state == _STOPPED:
            if watch:
                peer.enqueue([TERMINATED, path, uid, "stopped", "", ""])
            return
        if watch:
            self._local_watches.setdefault(cell, _LocalWatch()).peers.add(peer)
        else:
            entry = self._local_watches.get(cell)
            if entry is not None:
                entry.peers.discard(peer)

    def _local_terminated(self, ref: ActorRef) -> None:
        entry = self._local_watches.pop(ref._cell, None)
        if entry is None:
            return
        cell = ref._cell
        error = cell.stop_error
        reason = "failed" if cell.stop_reason is StopReason.FAILED else "stopped"
        type_name = type(error).__qualname__ if error is not None else ""
        text = str(error) if error is not None else ""
        for peer in entry.peers:
            try:
                peer.enqueue([TERMINATED, cell.path, cell.uid, reason, type_name, text])
            except NodeUnreachable:
                pass  # that node is gone: it learns nothing more from us

    def _remote_watchers_gone(self, peer: Peer) -> None:
        for entry in self._local_watches.values():
            entry.peers.discard(peer)

    # -- connections -----------------------------------------------------------------

    async def _open(
        self, address: tuple[str, int], node: str
    ) -> tuple[trio.abc.Stream, FrameReader, NodeIdentity]:
        """Dial ``address``, then TLS and the handshake, within ``connect_timeout``."""
        assert self._identity is not None
        with trio.fail_after(self.config.connect_timeout):
            socket_stream = await trio.open_tcp_stream(*address)
            stream: trio.abc.Stream = socket_stream
            try:
                if self._tls is not None:
                    stream = await wrap_client(socket_stream, self._tls, address[0])
                reader = FrameReader(stream, limit=self.config.frame_limit)
                identity = await dial_handshake(stream, reader, self._identity, secret=self._secret)
            except BaseException:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await stream.aclose()
                raise
        if identity.node != node:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
            raise HandshakeFailed(
                f"expected node {node!r} at {format_address(address)}, found {identity.node!r}"
            )
        return stream, reader, identity

    async def _handle_inbound(self, socket_stream: trio.SocketStream) -> None:
        assert self._identity is not None
        stream: trio.abc.Stream = socket_stream
        try:
            with trio.fail_after(self.config.connect_timeout):
                if self._tls is not None:
                    stream = await wrap_server(socket_stream, self._tls)
                reader = FrameReader(stream, limit=self.config.frame_limit)

                def admit(identity: NodeIdentity) -> str | None:
                    if identity.node == self.node:
                        return f"node id {identity.node!r} is this node's own"
                    return self.peer(identity.node).admit(identity)

                identity = await accept_handshake(
                    stream, reader, self._identity, secret=self._secret, admit=admit
                )
        except (*_NETWORK_ERRORS, TransportError, trio.TooSlowError) as error:
            self.stats.connections_refused += 1
            if isinstance(error, FrameTooLarge):
                self.stats.frames_too_large += 1
            elif isinstance(error, MalformedFrame):
                self.stats.malformed_frames += 1
            if "simultaneous" in str(error):
                level = logging.DEBUG  # the pair's other connection is used
            elif isinstance(error, (*_NETWORK_ERRORS, HandshakeAbandoned)):
                level = logging.INFO  # the dialer went away (e.g. shutting down)
            else:
                level = logging.WARNING  # not authenticated, another cluster, garbage
            logger.log(level, "transport: refused a connection: %s", error)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
            return
        self.stats.connections_accepted += 1
        peer = self.peer(identity.node)
        # this task runs the connection: serve_listeners closes the stream when it ends
        if peer.replaced_by(identity, outbound=False):
            await peer.attach(stream, reader, identity, outbound=False, start=False).run()
            return
        # this node's own connection won while the handshake ended: this one drains
        await peer.drain(stream, reader, identity, outbound=False)

    async def _follow_members(self) -> None:
        from ..cluster._member import MemberEvent, MemberFailed, MemberLeft

        async with self.system.events.subscribe(MemberEvent) as events:
            async for event in events:
                member = event.member
                if member.id == self.node:
                    continue
                peer = self.peer(member.id)
                if isinstance(event, MemberFailed | MemberLeft):
                    how = "failed" if isinstance(event, MemberFailed) else "left"
                    peer.node_gone(NodeUnreachable(member.id, f"the cluster says it {how}"))
                    continue
                peer.known_by_cluster = True
                address = _advertised_address(member)
                if address is not None:
                    peer.address = address

    def _address_from_cluster(self, node: str) -> tuple[str, int] | None:
        """The transport address ``node`` advertises in the system's gossip cluster
        (read from its member table at once), or ``None``."""
        cluster = self.system._cluster
        if cluster is None:
            return None
        member: Member
        for member in cluster.members():
            if member.id == node:
                return _advertised_address(member)
        return None

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._identity is not None:
            raise TransportError(f"{self!r} was already started: a transport starts once")
        system = self.system
        if not system.running:
            raise SystemNotRunning(
                f"cannot start a transport on actor system {system.name!r}: it is not running"
            )
        if system._transport is not None:
            raise TransportError(f"actor system {system.name!r} already has a transport")
        host, port = self._bind
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()
        address = self._advertise or (host, bound[1])
        self._identity = NodeIdentity(self.node, self.uid, self.cluster, address)
        for name, where in self._initial_peers.items():
            self.peer(name).address = where
        self._running = self._run(listeners)
        await self._running.__aenter__()
        system._transport = self
        system._terminated_hooks.append(self._local_terminated)
        system._metrics.add_collector(self._collect_metrics)
        return self

    def _collect_metrics(self) -> list[Sample]:
        stats = self.stats
        return [
            Sample("tinyagents_transport_frames_total", "counter", {"direction": "sent"},
                   stats.frames_sent),
            Sample("tinyagents_transport_frames_total", "counter", {"direction": "received"},
                   stats.frames_received),
            Sample("tinyagents_transport_bytes_total", "counter", {"direction": "sent"},
                   stats.bytes_sent),
            Sample("tinyagents_transport_bytes_total", "counter", {"direction": "received"},
                   stats.bytes_received),
            Sample("tinyagents_transport_refused_total", "counter", {},
                   stats.connections_refused),
        ]  # fmt: skip

    @asynccontextmanager
    async def _run(self, listeners: list[trio.SocketListener]) -> AsyncIterator[None]:
        async with open_service_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(trio.serve_listeners, self._handle_inbound, listeners)
            nursery.start_soon(self._follow_members)
            try:
                yield
            finally:
                self._close()
                nursery.cancel_scope.cancel()

    def _close(self) -> None:
        system = self.system
        system._metrics.remove_collector(self._collect_metrics)
        if system._transport is self:
            system._transport = None
        if self._local_terminated in system._terminated_hooks:
            system._terminated_hooks.remove(self._local_terminated)
        self._nursery = None
        for peer in self._peers.values():
            error = NodeUnreachable(peer.node, f"the transport of node {self.node!r} closed")
            peer._fail_all(error, peer.outbox)
            peer.outbox.clear()
            peer._cells_gone(error, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._running is not None
        return await self._running.__aexit__(exc_type, exc, tb)
