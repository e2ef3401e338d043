"""The admin endpoint: a read-only WebSocket a node serves for the ``tinyagents`` CLI.

::

    async with ActorSystem("a") as system, AdminServer(system, bind="127.0.0.1:7373"):
        ...

The endpoint answers JSON requests over a WebSocket (trio-websocket) at any path.
Each request is ``{"v": 1, "id": <any>, "op": <op>, ...arguments}``; each answer is
``{"v": 1, "id": <the same>, "ok": true, "result": ...}`` or, for a request that cannot
be served, ``{"v": 1, "id": ..., "ok": false, "error": {"type": ..., "message": ...}}``.
The operations (see :data:`PROTOCOL_VERSION`, and ``docs/cli.md`` for the fields):

* ``status`` — node id, version, uptime, actor count, mailbox totals, dead letters,
  restarts, LLM calls and tokens by provider, and every metric
  (:meth:`~tinyagents.ActorSystem.metrics`);
* ``members`` — the gossip cluster's members with Serf's key names (``name``,
  ``addr``, ``port``, ``tags``, ``status``); without a cluster, this node alone;
* ``actors`` — the actor tree (``path`` prefix optional): path, actor type, mailbox
  length, capacity, processed and dropped counts, restarts, state;
* ``watch`` — a live stream of events (lifecycle, member and dead-letter events; ``types``
  optional, names among :data:`WATCH_TYPES`, any other a ``BadRequest``), as ``{"v": 1,
  "id": ..., "event": {...}}`` messages until the client closes. A slow client loses its
  own oldest events of those types (announced as ``{"lost": n}``), never slowing the
  node.

Counts (actors, messages, restarts, dead letters, calls, tokens) are JSON integers, and
so is the ``value`` of every counter and gauge in ``metrics`` that is a whole number (the
metrics may keep them as floats); durations (``uptime``, a histogram's ``sum`` and bounds)
are numbers that may have a fraction.

A plain ``GET /metrics`` on the same port (no WebSocket upgrade) answers with the metrics
in Prometheus' text format.

Security: the endpoint binds to loopback by default; binding to any other address
requires a ``token``. With a token, every connection must send ``Authorization: Bearer
<token>`` (compared in constant time); a connection without it, or with another, is
refused with HTTP 401, counted in :attr:`AdminServer.refused` and logged without the
token. Nothing the endpoint does changes the node: it only reads.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import json
import logging
import math
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import attrs
import trio
import trio_websocket

from ._address import Address, format_address, parse_address
from ._metrics import Sample
from ._nursery import open_service_nursery
from ._validate import check_optional
from ._version import __version__
from .actor._cell import RUNNING, STARTING, STOPPED, STOPPING
from .actor._ref import ActorRef
from .errors import SystemNotRunning, TinyAgentsError

if TYPE_CHECKING:
    from .actor._system import ActorSystem

__all__ = [
    "DEFAULT_ADMIN_ADDRESS",
    "PROTOCOL_VERSION",
    "WATCH_TYPES",
    "AdminError",
    "AdminServer",
]

logger = logging.getLogger("tinyagents.admin")

PROTOCOL_VERSION = 1
"""The version of the endpoint's JSON messages (the ``v`` of every message)."""

DEFAULT_ADMIN_ADDRESS = "127.0.0.1:7373"
"""Where the endpoint listens unless told (Serf's RPC port)."""

WATCH_TYPES = (
    "ActorStarted",
    "ActorRestarted",
    "ActorFailed",
    "ActorStopped",
    "DeadLetter",
    "MemberJoined",
    "MemberUpdated",
    "MemberSuspect",
    "MemberFailed",
    "MemberLeft",
)
"""The event types a ``watch`` may ask for by name (its ``types``): the actor lifecycle
events and dead letters of :mod:`tinyagents.events` and the member events of
:mod:`tinyagents.cluster`."""

OPERATIONS = ("status", "members", "actors", "watch")
_MAX_REQUEST = 64 * 1024  # bytes of one request message
_HEAD_LIMIT = 16 * 1024  # bytes of an HTTP request head
_HEAD_TIMEOUT = 10.0  # seconds a client may take to send its request head
_WATCH_BUFFER = 1024  # events kept for one slow watcher before its oldest go


class AdminError(TinyAgentsError):
    """The admin endpoint could not start (its address is in use, say)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminServer:
    """The node's admin endpoint, an ``async with`` service of an actor system.

    ``bind`` is ``"host:port"`` or ``(host, port)`` (default ``127.0.0.1:7373``; port 0
    picks a free one, read back from :attr:`address`). ``token`` (a str) is required
    when ``host`` is not a loopback address. Entering starts listening (raises
    :class:`AdminError` if it cannot); leaving closes every connection, watches
    included.

    Raises at construction:
        TypeError: ``system`` is not an ActorSystem, or ``token`` not a str.
        ValueError: ``bind`` is not an address, the token is empty, or the address is
            not loopback and there is no token.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        bind: Address = DEFAULT_ADMIN_ADDRESS,
        token: str | None = None,
    ) -> None:
        from .actor._system import ActorSystem

        if not isinstance(system, ActorSystem):
            raise TypeError(f"AdminServer needs an ActorSystem, not {system!r:.80}")
        self.system = system
        self._bind = parse_address(bind, what="bind")
        token = check_optional(token, str, "token")
        if token is not None and not token:
            raise ValueError("token must not be empty (leave it out for no token)")
        if token is None and not _is_loopback(self._bind[0]):
            raise ValueError(
                f"the admin endpoint binds to {format_address(self._bind)}, which is not a "
                "loopback address: give it a token (token=...), which clients then send"
            )
        self._token = None if token is None else token.encode()
        self._address: tuple[str, int] | None = None
        self._started = time.monotonic()
        self._running: AbstractAsyncContextManager[None] | None = None
        self.refused = 0
        """Connections refused for a missing or wrong token."""
        self.connections = 0
        """Connections accepted since the start."""
        self.events_sent = 0
        """Events sent to watchers (summed over watchers), each counted once written."""
        self.events_lost = 0
        """Events that watchers too slow to read them lost (summed over watchers)."""
        self.watchers = 0
        """Watches streaming now (counted from just before their ``{"watching": ...}``
        answer, their subscription already open, until they end)."""

    def __repr__(self) -> str:
        where = format_address(self._address or self._bind)
        return f"<AdminServer {self.system.name!r} at {where}>"

    @property
    def address(self) -> tuple[str, int]:
        """Where the endpoint listens (after start)."""
        if self._address is None:
            raise RuntimeError(f"{self!r} has not started")
        return self._address

    @property
    def url(self) -> str:
        """``ws://host:port/`` of the endpoint (after start)."""
        host, port = self.address
        return f"ws://{f'[{host}]' if ':' in host else host}:{port}/"

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._running is not None:
            raise AdminError(f"{self!r} was already started: an admin server starts once")
        if not self.system.running:
            raise SystemNotRunning(
                f"cannot start an admin endpoint on actor system {self.system.name!r}: "
                "it is not running"
            )
        host, port = self._bind
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as error:
            raise AdminError(
                f"the admin endpoint cannot listen on {format_address(self._bind)}: {error}"
            ) from error
        bound = listeners[0].socket.getsockname()
        self._address = (host, bound[1])
        self._started = time.monotonic()
        self._running = self._run(listeners)
        await self._running.__aenter__()
        logger.info("admin: serving on %s", format_address(self._address))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._running is not None
        return await self._running.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _run(self, listeners: list[trio.SocketListener]) -> Any:
        async with open_service_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle_stream, listeners)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    # -- connections -----------------------------------------------------------------

    async def _handle_stream(self, stream: trio.SocketStream) -> None:
        """One connection: its request head decides between ``GET /metrics`` and a
        WebSocket; nothing a client sends escapes this task."""
        try:
            with trio.move_on_after(_HEAD_TIMEOUT) as scope:
                head = await _read_head(stream)
            if scope.cancelled_caught or head is None:
                return
            request = _parse_head(head)
            if request is None:
                await _respond(stream, 400, "text/plain", b"bad request\n")
                return
            method, path, headers = request
            upgrade = headers.get("upgrade", "").lower() == "websocket"
            if not upgrade:
                await self._plain_http(stream, method, path, headers)
                return
            async with open_service_nursery() as nursery:
                ws_request = await trio_websocket.wrap_server_stream(
                    nursery, _Replayed(stream, head), max_message_size=_MAX_REQUEST
                )
                await self._serve_websocket(ws_request, stream)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away
        except trio_websocket.ConnectionClosed:
            pass
        except Exception:  # a bug here must not take the node down
            logger.exception("admin: a connection failed")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
        given = headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.strip().encode(), self._token)

    def _refuse(self, stream: trio.abc.Stream) -> None:
        self.refused += 1
        peer = _peer_of(stream)
        logger.warning("admin: refused a connection from %s: missing or wrong token", peer)

    async def _plain_http(
        self, stream: trio.abc.Stream, method: str, path: str, headers: Mapping[str, str]
    ) -> None:
        if path.split("?", 1)[0] != "/metrics":
            await _respond(stream, 404, "text/plain", b"not found: try /metrics or a WebSocket\n")
            return
        if method not in ("GET", "HEAD"):
            await _respond(stream, 405, "text/plain", b"method not allowed\n")
            return
        if not self._authorized(headers):
            self._refuse(stream)
            await _respond(stream, 401, "text/plain", b"unauthorized\n")
            return
        body = self.system.metrics().to_prometheus().encode()
        await _respond(
            stream, 200, "text/plain; version=0.0.4; charset=utf-8", body, head=method == "HEAD"
        )

    async def _serve_websocket(
        self, request: trio_websocket.WebSocketRequest, stream: trio.SocketStream
    ) -> None:
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1") for key, value in request.headers
        }
        if not self._authorized(headers):
            self._refuse(stream)
            await request.reject(401, body=b"unauthorized\n")
            return
        connection = await request.accept()
        self.connections += 1
        while True:
            message = await connection.get_message()
            reply = await self._answer(connection, message)
            if reply is not None:
                await connection.send_message(json.dumps(reply))

    async def _answer(
        self, connection: trio_websocket.WebSocketConnection, message: str | bytes
    ) -> dict[str, Any] | None:
        """The reply to one request (``None`` when ``watch`` already answered)."""
        try:
            request = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return _failure(None, "BadRequest", "the request is not JSON")
        if not isinstance(request, dict):
            return _failure(None, "BadRequest", "the request must be a JSON object")
        request_id = request.get("id")
        version = request.get("v", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            return _failure(
                request_id,
                "UnsupportedVersion",
                f"this node speaks version {PROTOCOL_VERSION} of the admin protocol, "
                f"not {version!r}",
            )
        op = request.get("op")
        try:
            if op == "status":
                return _success(request_id, self.status())
            if op == "members":
                return _success(request_id, self.members())
            if op == "actors":
                prefix = request.get("path")
                if prefix is not None and not isinstance(prefix, str):
                    raise _BadRequest("path must be a string")
                return _success(request_id, self.actors(prefix))
            if op == "watch":
                types = request.get("types")
                kinds = _watch_kinds(types)
                await self._watch(connection, request_id, types, kinds)
                return None
        except _BadRequest as error:
            return _failure(request_id, "BadRequest", str(error))
        return _failure(
            request_id,
            "UnknownOperation",
            f"unknown op {op!r}: the operations are {', '.join(OPERATIONS)}",
        )

    # -- the operations --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What ``status`` answers: see the module."""
        system = self.system
        snapshot = system.metrics()
        llm: dict[str, dict[str, int | float]] = {}
        for sample in snapshot.samples:
            provider = sample.labels.get("provider")
            if provider is None or not sample.name.startswith("tinyagents_llm_"):
                continue
            entry = llm.setdefault(
                provider, {"calls": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0}
            )
            value = getattr(sample, "value", 0)
            if sample.name == "tinyagents_llm_calls_total":
                entry["calls"] += value
            elif sample.name == "tinyagents_llm_errors_total":
                entry["errors"] += value
            elif sample.name == "tinyagents_llm_tokens_total":
                entry[f"{sample.labels.get('type', 'input')}_tokens"] += value
        for entry in llm.values():
            for key, value in entry.items():
                entry[key] = _whole(value)
        dead_letters = {
            sample.labels["reason"]: _whole(sample.value)
            for sample in snapshot.samples
            if isinstance(sample, Sample)
            and sample.name == "tinyagents_dead_letters_total"
            and "reason" in sample.labels
        }
        return {
            "node": system.node_id,
            "system": system.name,
            "version": __version__,
            "uptime": round(time.monotonic() - self._started, 3),
            "actors": int(snapshot.value("tinyagents_actors")),
            "mailboxes": {
                "queued": _whole(snapshot.value("tinyagents_mailbox_depth")),
                "processed": _whole(snapshot.value("tinyagents_messages_processed_total")),
                "dropped": _whole(snapshot.value("tinyagents_messages_dropped_total")),
            },
            "dead_letters": {"total": system.dead_letters, "by_reason": dead_letters},
            "restarts": _whole(snapshot.value("tinyagents_restarts_total")),
            "llm": llm,
            "metrics": [
                {**item, "value": _whole(item["value"])} if "value" in item else item
                for item in snapshot.to_json()
            ],
        }

    def members(self) -> list[dict[str, Any]]:
        """What ``members`` answers: Serf's keys, sorted by name."""
        cluster = self.system._cluster
        if cluster is None:
            host, port = self._address or self._bind
            return [{"name": self.system.node_id, "addr": host, "port": port, "tags": {},
                     "status": "alive"}]  # fmt: skip
        members = [
            *cluster.members(),
            *(
                node.member
                for node in cluster.table.nodes.values()
                if node.member.state.label in ("failed", "left")
            ),
        ]
        out = []
        for member in sorted(members, key=lambda m: m.id):
            host, port = member.address
            out.append(
                {
                    "name": member.id,
                    "addr": host,
                    "port": port,
                    "tags": dict(member.tags),
                    "status": member.state.label,
                }
            )
        return out

    def actors(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """What ``actors`` answers: every live actor (under ``prefix``), parents first."""
        out = []
        for cell in self.system._cells():
            path = cell.path
            if prefix is not None and not _under(path, prefix):
                continue
            stats = cell.mailbox.statistics()
            out.append(
                {
                    "path": path,
                    "type": _actor_type(cell.instance),
                    "mailbox": {
                        "length": stats.length,
                        "capacity": None if math.isinf(stats.capacity) else stats.capacity,
                        "processed": stats.processed,
                        "dropped": stats.dropped,
                        "busy": stats.busy,
                    },
                    "restarts": cell.generation,
                    "state": _STATES[cell.state],
                }
            )
        return out

    async def _watch(
        self,
        connection: trio_websocket.WebSocketConnection,
        request_id: Any,
        types: list[str] | None,
        kinds: tuple[type, ...],
    ) -> None:
        """Stream events of ``kinds`` (all when empty) to one client until it closes the
        connection (noticed at once, not at the next event; what else it sends is not
        read as requests). The subscription holds those kinds alone, so that other
        events neither fill a slow client's buffer nor count as lost to it."""
        async with (
            self.system.events.subscribe(*kinds, buffer=_WATCH_BUFFER) as events,
            open_service_nursery() as nursery,
        ):
            nursery.start_soon(_until_closed, connection, nursery.cancel_scope)
            self.watchers += 1
            try:
                await connection.send_message(json.dumps(_success(request_id, {"watching": types})))
                lost = 0
                async for event in events:
                    if events.dropped > lost:
                        self.events_lost += events.dropped - lost
                        gap = {
                            "v": PROTOCOL_VERSION,
                            "id": request_id,
                            "lost": events.dropped - lost,
                        }
                        lost = events.dropped
                        await connection.send_message(json.dumps(gap))
                    message = {
                        "v": PROTOCOL_VERSION,
                        "id": request_id,
                        "event": event_to_json(event),
                    }
                    await connection.send_message(json.dumps(message))
                    self.events_sent += 1
            finally:
                self.watchers -= 1


async def _until_closed(
    connection: trio_websocket.WebSocketConnection, scope: trio.CancelScope
) -> None:
    """Read (and drop) what a watching client sends, and cancel ``scope`` once it has
    closed the connection."""
    try:
        while True:
            await connection.get_message()
    except trio_websocket.ConnectionClosed:
        scope.cancel()


class _BadRequest(Exception):
    pass


def _watch_kinds(types: object) -> tuple[type, ...]:
    """The event classes a watch's ``types`` names (none, for all events, when it is
    ``None``); a :class:`_BadRequest` naming the known types for anything else."""
    if types is None:
        return ()
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise _BadRequest("types must be a list of event type names")
    known = ", ".join(WATCH_TYPES)
    if not types:
        raise _BadRequest(
            f"types must name at least one event type (leave it out for all): {known}"
        )
    unknown = [name for name in dict.fromkeys(types) if name not in WATCH_TYPES]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise _BadRequest(f"unknown event type{plural} {listed}: the types are {known}")
    classes = _watch_classes()
    return tuple(classes[name] for name in dict.fromkeys(types))


def _watch_classes() -> dict[str, type]:
    """The classes of :data:`WATCH_TYPES`, by name (imported when a watch asks, so that
    importing this module, as the CLI does, does not load the cluster)."""
    from .actor import _events
    from .cluster import _member

    classes: tuple[type, ...] = (
        _events.ActorStarted,
        _events.ActorRestarted,
        _events.ActorFailed,
        _events.ActorStopped,
        _events.DeadLetter,
        _member.MemberJoined,
        _member.MemberUpdated,
        _member.MemberSuspect,
        _member.MemberFailed,
        _member.MemberLeft,
    )
    return {cls.__name__: cls for cls in classes}


def _whole(value: float) -> int | float:
    """``value`` as an int when it is a whole number: a snapshot's sums are floats,
    which JSON would print as ``1.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


_STATES = {STARTING: "starting", RUNNING: "running", STOPPING: "stopping", STOPPED: "stopped"}


def _actor_type(instance: object) -> str:
    """The type an operator knows the actor by: an agent's or a team's spec class
    (``Agent``, ``Pipeline``...), which the library's private actor class serves, else
    the actor's own class."""
    spec = getattr(instance, "spec", None)
    if type(instance).__module__.startswith("tinyagents.") and spec is not None:
        return type(spec).__qualname__
    return type(instance).__qualname__


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") or "/"
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _success(request_id: Any, result: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}


def _failure(request_id: Any, kind: str, message: str) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "id": request_id,
        "ok": False,
        "error": {"type": kind, "message": message},
    }


def event_to_json(event: object) -> dict[str, Any]:
    """An event as JSON: ``{"type": <class name>, "time": <unix seconds>, ...its
    fields}``, refs as paths (URIs when remote), members as Serf's keys, errors as
    ``"Type: text"``, anything else as its (shortened) repr."""
    fields: dict[str, Any] = {"type": type(event).__name__, "time": round(time.time(), 3)}
    cls = type(event)
    if attrs.has(cls):
        for field in attrs.fields(cls):
            fields[field.name] = _jsonable(getattr(event, field.name))
    return fields


def _jsonable(value: object, depth: int = 0) -> Any:
    from .cluster._member import Member

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, ActorRef):
        return value.path if value.is_local else value.uri
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str | int) else value.name
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, Member):
        host, port = value.address
        return {"name": value.id, "addr": host, "port": port, "tags": dict(value.tags),
                "status": value.state.label}  # fmt: skip
    if depth < 3 and isinstance(value, Mapping):
        return {str(key): _jsonable(item, depth + 1) for key, item in value.items()}
    if depth < 3 and isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item, depth + 1) for item in value]
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


# -- HTTP, around the WebSocket -----------------------------------------------------------


async def _read_head(stream: trio.abc.Stream) -> bytes | None:
    """The bytes up to and including the first blank line, or ``None`` if the client
    closed or sent too much first (all that was read is kept for the WebSocket)."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        if len(data) > _HEAD_LIMIT:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    try:
        text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed"}  # fmt: skip


async def _respond(
    stream: trio.abc.Stream, status: int, content_type: str, body: bytes, *, head: bool = False
) -> None:
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if status == 401:
        lines.append('WWW-Authenticate: Bearer realm="tinyagents"')
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    await stream.send_all(data if head else data + body)


def _peer_of(stream: trio.abc.Stream) -> str:
    if not isinstance(stream, trio.SocketStream):
        return "an unknown peer"
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "an unknown peer"
    return format_address((host, port))


class _Replayed(trio.abc.Stream):
    """A stream whose first bytes received are ``prefix`` (the request head already
    read), then those of ``stream``."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        send_eof = getattr(self._stream, "send_eof", None)
        if send_eof is not None:
            await send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
