"""A small HTTP/1.1 server on trio (with h11) for the provider stub servers.

Each dialect's stub subclasses :class:`StubServer` and implements :meth:`respond`,
turning a scripted :class:`StubReply` into its provider's exact wire format.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import attrs
import h11
import trio

from .._address import format_address
from .._nursery import open_service_nursery
from .._validate import check_seconds
from ..llm._types import ToolCall, Usage
from ._ports import check_host, check_port

__all__ = [
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "StubReply",
    "StubResponse",
    "StubServer",
]

_MAX_BODY = 16 * 1024 * 1024


class FaultKind(enum.Enum):
    """The failures a stub can inject."""

    RATE_LIMITED = "rate_limited"
    """HTTP 429, with ``Retry-After`` (and ``retry-after-ms``) when ``retry_after`` is set."""
    OVERLOADED = "overloaded"
    """HTTP 529 (Anthropic); other dialects answer 503."""
    SERVER_ERROR = "server_error"
    """HTTP 500 with the dialect's error body."""
    STATUS = "status"
    """Any HTTP ``status`` with the dialect's error body and ``message``."""
    MALFORMED = "malformed"
    """HTTP 200 whose body (or, streaming, whose first event) is not valid JSON."""
    TRUNCATED = "truncated"
    """A stream that stops after ``after`` chunks without its terminator; with
    ``cut_connection`` the connection is dropped mid-body instead of ending cleanly."""
    ERROR_IN_STREAM = "error_in_stream"
    """HTTP 200 whose stream carries ``after`` chunks, then the dialect's error event."""


def _http_status(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError(
            f"{attribute.name} must be an HTTP status (an int in 100..599), not {value!r}"
        )


def _seconds_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_seconds(value, f"{attribute.name} (None or seconds)", inf=False)


def _seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_seconds(value, attribute.name, inf=False)


def _count(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, not {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, not {value!r}")


_QUOTA_MESSAGE = "quota exhausted"


@attrs.frozen
class Fault:
    """A failure to inject instead of (or in the middle of) an answer.

    Build one with the class methods (:meth:`rate_limited`, :meth:`overloaded`, ...).
    The fields are checked when it is made: ``kind`` a :class:`FaultKind`, ``status`` an
    HTTP status (100..599), ``retry_after`` ``None`` or seconds >= 0, ``after`` an int
    >= 0; anything else raises ``TypeError`` / ``ValueError`` at once, not when a stub
    renders it. ``message`` is the error text the stubs send (except where a service
    sends a fixed text of its own: see each stub).
    """

    kind: FaultKind = attrs.field(validator=attrs.validators.instance_of(FaultKind))
    status: int = attrs.field(default=500, validator=_http_status)
    message: str = attrs.field(
        default="injected fault", validator=attrs.validators.instance_of(str)
    )
    retry_after: float | None = attrs.field(default=None, validator=_seconds_or_none)
    after: int = attrs.field(default=0, validator=_count)
    cut_connection: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    quota_exhausted: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0, *, quota: bool = False) -> Fault:
        """429 Too Many Requests, with ``Retry-After`` (and ``retry-after-ms``) when
        ``retry_after`` is set.

        ``quota=True``: the account's quota or credit is spent, which waiting does not
        fix. Each stub then answers exactly as its service does when the quota is spent
        (OpenAI's ``insufficient_quota`` 429, OpenRouter's 402, Anthropic's spend-limit
        429, Mistral's 429 with no tokens left this month, Ollama's usage-limit 429), with
        no retry advice: ``retry_after`` is ignored (stored as ``None``)."""
        if quota:
            return cls(FaultKind.RATE_LIMITED, 429, _QUOTA_MESSAGE, quota_exhausted=True)
        return cls(FaultKind.RATE_LIMITED, 429, "rate limit exceeded", retry_after=retry_after)

    @classmethod
    def overloaded(cls, retry_after: float | None = None) -> Fault:
        """529 Overloaded (503 for dialects that have no 529)."""
        return cls(FaultKind.OVERLOADED, 529, "overloaded", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx error; ``ValueError`` for another status."""
        if isinstance(status, int) and not isinstance(status, bool) and not 500 <= status <= 599:
            raise ValueError(f"server_error takes a 5xx status, not {status}")
        return cls(FaultKind.SERVER_ERROR, status, "internal server error")

    @classmethod
    def status_code(cls, status: int, message: str = "injected error") -> Fault:
        """Any HTTP error status (400..599; ``ValueError`` for another)."""
        if isinstance(status, int) and not isinstance(status, bool) and not 400 <= status <= 599:
            raise ValueError(f"status_code takes an error status (400..599), not {status}")
        return cls(FaultKind.STATUS, status, message)

    @classmethod
    def malformed(cls) -> Fault:
        """A 200 reply that is not valid JSON."""
        return cls(FaultKind.MALFORMED, 200, "malformed")

    @classmethod
    def truncated(cls, after: int = 1, *, cut_connection: bool = False) -> Fault:
        """A stream that ends after ``after`` chunks without its terminator."""
        return cls(FaultKind.TRUNCATED, 200, after=after, cut_connection=cut_connection)

    @classmethod
    def error_in_stream(cls, after: int = 1, message: str = "overloaded") -> Fault:
        """An error event inside a 200 stream, after ``after`` chunks."""
        return cls(FaultKind.ERROR_IN_STREAM, 200, message, after=after)


def _tool_calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    if isinstance(value, ToolCall):
        raise TypeError("tool_calls must be a sequence of ToolCall; wrap one call in a list")
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"tool_calls must be a sequence of ToolCall, not {value!r}")
    calls = tuple(value)
    for call in calls:
        if not isinstance(call, ToolCall):
            raise TypeError(
                f"tool_calls must hold ToolCall objects (tinyagents.llm.ToolCall), not {call!r}"
            )
    return calls


@attrs.frozen
class StubReply:
    """One scripted answer of a stub server, in neutral terms.

    ``text`` is streamed in pieces of ``chunk_size`` characters, each after ``delay``
    seconds (slow tokens); a non-streamed answer comes after the same total time.
    ``tool_calls`` are rendered in the dialect's own form (a call without an ``id`` gets
    one of the dialect's shape). ``usage`` defaults to word counts of the request and the
    reply. ``finish_reason`` defaults to ``"tool_calls"`` when there are tool calls, else
    ``"stop"``. ``fault`` replaces or breaks the answer.

    The fields are checked when it is made (``TypeError`` / ``ValueError``): ``text`` a
    str, ``tool_calls`` :class:`~tinyagents.llm.ToolCall` objects, ``usage`` a
    :class:`~tinyagents.llm.Usage`, ``chunk_size`` an int >= 1, ``delay`` finite seconds
    >= 0, ``fault`` a :class:`Fault`.
    """

    text: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_tool_calls)
    usage: Usage | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Usage))
    )
    finish_reason: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )
    chunk_size: int = attrs.field(default=4, validator=_positive)
    delay: float = attrs.field(default=0.0, validator=_seconds)
    fault: Fault | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Fault))
    )

    @property
    def finish(self) -> str:
        """The neutral finish reason: ``stop``, ``length`` or ``tool_calls``."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def pieces(self) -> list[str]:
        """The text split into streamed deltas."""
        size = self.chunk_size
        return [self.text[i : i + size] for i in range(0, len(self.text), size)]

    async def generate(self) -> None:
        """Wait as long as producing this answer takes: ``delay`` per piece (at least one).
        Stubs call it before a whole (non-streamed) answer."""
        if self.delay > 0:
            await trio.sleep(self.delay * max(1, len(self.pieces())))


@attrs.frozen
class RecordedRequest:
    """A request a stub received: method, path (with query), headers (lower-case names)
    and the body, parsed as JSON when it is JSON."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any = None


@attrs.define
class StubResponse:
    """What the HTTP layer sends: a status, headers, and a body that is bytes or an async
    iterator of byte chunks (sent with chunked encoding, flushed one by one). With
    ``cut_connection`` the connection is closed after the iterator ends, without the
    terminating chunk."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | AsyncIterator[bytes] = b""
    cut_connection: bool = False


def json_response(
    status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()
) -> StubResponse:
    """A JSON body with its content type."""
    return StubResponse(
        status,
        [("content-type", "application/json"), *headers],
        json.dumps(payload).encode(),
    )


def word_count(text: str) -> int:
    return len(text.split())


Responder = Callable[[RecordedRequest], StubReply]


class StubServer:
    """A provider stub serving scripted replies over real HTTP on 127.0.0.1.

    Usage::

        async with OpenAIStub() as stub:
            stub.script(StubReply(text="Hello!"), StubReply(fault=Fault.rate_limited(0.5)))
            provider = OpenAI(api_key="test", base_url=stub.base_url)

    Replies are taken from the script in order; when it is empty, ``responder`` (by
    default an echo of the last user message) makes one. Every request is recorded in
    :attr:`requests`. The server is an async context manager; its tasks live in its own
    nursery and end with the block, and an exception of the block comes out as itself.

    ``host`` is a host name or IP address without a port (``"127.0.0.1"``, ``"::1"``),
    ``port`` an int in 0..65535 (0 picks a free port), ``responder`` a function of the
    :class:`RecordedRequest`; a wrong one raises ``TypeError`` / ``ValueError`` here,
    naming the expected form, not when the server starts.
    """

    dialect = "stub"
    base_path = ""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        responder: Responder | None = None,
    ) -> None:
        if responder is not None and not callable(responder):
            raise TypeError(
                "responder must be a function of the RecordedRequest returning a StubReply, "
                f"not {responder!r}"
            )
        self.host = check_host(host)
        self.port = check_port(port)
        self.requests: list[RecordedRequest] = []
        self.responder = responder or self.echo
        self._script: deque[StubReply] = deque()
        self._nursery_manager: Any = None
        self._nursery: trio.Nursery | None = None

    # -- scripting -------------------------------------------------------------------

    def script(self, *replies: StubReply | str) -> None:
        """Queue replies (a plain string is a text reply) for the next requests.

        Raises ``TypeError`` for anything else (nothing is queued then)."""
        queued = []
        for reply in replies:
            if isinstance(reply, str):
                reply = StubReply(text=reply)
            elif not isinstance(reply, StubReply):
                raise TypeError(f"script() takes StubReply objects or strings, not {reply!r}")
            queued.append(reply)
        self._script.extend(queued)

    def next_reply(self, request: RecordedRequest) -> StubReply:
        """The scripted reply for ``request``: the next queued one, else the responder's."""
        if self._script:
            return self._script.popleft()
        return self.responder(request)

    def echo(self, request: RecordedRequest) -> StubReply:
        """The default responder: repeats the last user message's text."""
        return StubReply(text=f"You said: {self.last_user_text(request)}")

    def last_user_text(self, request: RecordedRequest) -> str:
        """The text of the last user message of a chat request (dialects may refine)."""
        body = request.json if isinstance(request.json, dict) else {}
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(
                        str(block.get("text", ""))
                        for block in content
                        if isinstance(block, dict) and block.get("type") == "text"
                    )
        return ""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``http://[::1]:<port>`` for an IPv6 host)."""
        return f"http://{format_address((self.host, self.port))}"

    @property
    def base_url(self) -> str:
        """The URL to give as the adapter's (or official SDK's) base URL."""
        return self.url + self.base_path

    # -- to implement ------------------------------------------------------------------

    async def respond(self, request: RecordedRequest) -> StubResponse:
        """Answer one request in the dialect's wire format."""
        raise NotImplementedError

    # -- service ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Listen on ``host``:``port`` and serve in a nursery of the server's own.

        Raises ``OSError`` (as itself) if it cannot listen (a taken port, an unknown
        host), and ``RuntimeError`` if this server is already open."""
        if self._nursery is not None:
            raise RuntimeError(f"this {type(self).__name__} is already serving at {self.url}")
        # listen first, so that a taken port raises OSError as itself
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        manager = open_service_nursery()
        nursery = await manager.__aenter__()
        nursery.start_soon(trio.serve_listeners, self._serve_connection, listeners)
        self._nursery_manager = manager
        self._nursery = nursery
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Stop serving (open connections are closed) and let the block's exception
        through as itself: a ``ValueError`` raised in the block is caught by ``except
        ValueError``, Ctrl-C stays a ``KeyboardInterrupt``; several errors at once (the
        block's and a server task's) come out as an exception group."""
        assert self._nursery is not None
        manager, self._nursery_manager = self._nursery_manager, None
        self._nursery.cancel_scope.cancel()
        self._nursery = None
        return bool(await manager.__aexit__(exc_type, exc, tb))

    async def serve_forever(self) -> None:
        """Serve until cancelled (used by the ``tinyagents stub-server`` command)."""
        async with self:
            await trio.sleep_forever()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while True:
                    request = await self._read_request(stream, connection)
                    if request is None:
                        return
                    self.requests.append(request)
                    try:
                        response = await self.respond(request)
                    except Exception as exc:  # a bug in a stub: answer 500, keep serving
                        response = json_response(500, {"error": f"stub failure: {exc!r}"})
                    if not await self._send(stream, connection, response):
                        return
                    if connection.our_state is h11.MUST_CLOSE:
                        return
                    connection.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return

    async def _read_request(
        self, stream: trio.SocketStream, connection: h11.Connection
    ) -> RecordedRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
        assert head is not None
        headers = {k.decode().lower(): v.decode() for k, v in head.headers}
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        return RecordedRequest(
            head.method.decode(), head.target.decode(), headers, bytes(body), parsed
        )

    async def _send(
        self, stream: trio.SocketStream, connection: h11.Connection, response: StubResponse
    ) -> bool:
        """Send one response; False when the connection must be dropped."""
        headers = list(response.headers)
        body = response.body
        if isinstance(body, bytes):
            headers.append(("content-length", str(len(body))))
        else:
            headers.append(("transfer-encoding", "chunked"))
        await stream.send_all(
            connection.send(h11.Response(status_code=response.status, headers=headers))
        )
        if isinstance(body, bytes):
            if body:
                await stream.send_all(connection.send(h11.Data(data=body)))
        else:
            # close the body's generator even if the client went away mid-stream
            closing: Any = (
                contextlib.aclosing(body) if hasattr(body, "aclose") else contextlib.nullcontext()
            )
            async with closing:
                async for piece in body:
                    if piece:
                        await stream.send_all(connection.send(h11.Data(data=piece)))
            if response.cut_connection:
                return False
        await stream.send_all(connection.send(h11.EndOfMessage()))
        return True


async def paced(pieces: Iterable[bytes], delay: float) -> AsyncIterator[bytes]:
    """Yield ``pieces``, sleeping ``delay`` seconds before each (slow tokens)."""
    for piece in pieces:
        if delay > 0 and math.isfinite(delay):
            await trio.sleep(delay)
        yield piece
