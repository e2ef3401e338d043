"""What every HTTP adapter shares: the client, error mapping, SSE and NDJSON reading."""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import attrs
import httpx
import trio

from .. import _tracing
from .._validate import check_seconds
from ..errors import (
    AuthenticationError,
    BadRequest,
    Overloaded,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from ._types import ChatRequest, ChatResponse, Chunk

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "BodyReader",
    "HTTPProvider",
    "SSEEvent",
    "close_stream",
    "deliver",
    "error_for_status",
    "iter_ndjson",
    "iter_sse",
    "parse_json",
    "read_in_task",
    "retry_after_from",
]

T = TypeVar("T")

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
"""The connection pool of an adapter: 100 connections, all kept alive between calls (httpx
keeps only 20 by default, which makes a busy agent team reconnect all the time). Pass
``limits=httpx.Limits(...)`` to change it."""

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""HTTP timeouts of the adapters: 10 s to connect, 60 s for any one read or write.
A whole call has no limit unless ``call_timeout`` (or the caller's cancel scope) sets one."""


def _lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    # httpx types it as an iterator; it is an async generator, which aclosing needs
    return cast("AsyncGenerator[str, None]", response.aiter_lines())


@attrs.frozen
class SSEEvent:
    """One server-sent event: its ``event`` name (``"message"`` when unnamed) and ``data``."""

    event: str
    data: str


async def iter_sse(response: httpx.Response) -> AsyncGenerator[SSEEvent, None]:
    """The events of a ``text/event-stream`` body, per the HTML standard's rules:
    ``data:`` lines join with newlines, ``:`` lines are comments, a blank line ends an
    event. An event not ended by a blank line when the body ends is still yielded."""
    event = ""
    data: list[str] = []
    # aclosing: httpx reads bodies through async generators that must be closed
    # explicitly under trio when reading stops early (encode/httpx#3686)
    async with contextlib.aclosing(_lines(response)) as lines:
        async for line in lines:
            if not line:
                if data:
                    yield SSEEvent(event or "message", "\n".join(data))
                event, data = "", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield SSEEvent(event or "message", "\n".join(data))


async def iter_ndjson(response: httpx.Response, provider: str) -> AsyncGenerator[Any, None]:
    """The JSON values of an ``application/x-ndjson`` body, one per non-blank line.

    Raises:
        ProtocolError: a line is not JSON.
    """
    async with contextlib.aclosing(_lines(response)) as lines:
        async for line in lines:
            if line.strip():
                yield parse_json(line, provider)


class BodyReader(Generic[T]):
    """What :func:`read_in_task` reads: ``items`` as they arrive, and the ``error`` that
    ended the body early (a broken connection), if any, for the consumer to raise."""

    def __init__(self, source: AsyncIterator[T]) -> None:
        self._source = source
        self._send, self.items = trio.open_memory_channel[T](math.inf)
        self.error: Exception | None = None

    def __aiter__(self) -> BodyReader[T]:
        return self

    async def __anext__(self) -> T:
        """The next item; several that arrived together cost one scheduler pass."""
        try:
            return self.items.receive_nowait()
        except trio.WouldBlock:
            try:
                return await self.items.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def _run(self) -> None:
        with self._send:
            try:
                async for item in self._source:
                    self._send.send_nowait(item)
            except Exception as exc:  # a broken body: the consumer raises it
                self.error = exc


@asynccontextmanager
async def read_in_task(source: AsyncIterator[T]) -> AsyncIterator[BodyReader[T]]:
    """Read ``source`` (a streaming body's lines or events) in a task of its own.

    Why a task: a loop over httpx's body that stops early (an error event, or the
    caller's cancellation while it waits in ``stream.send``) leaves httpx's chain of
    async generators suspended, and trio reports each as a ``ResourceWarning`` when it
    is collected. This task awaits nothing but the body, so its cancellation always
    arrives inside that chain and ends every generator in it. An exception raised in the
    block cancels the reader and comes out as itself (not in an exception group).
    """
    reader = BodyReader(source)
    problem: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader._run)
        try:
            yield reader
        except Exception as exc:
            problem = exc
        nursery.cancel_scope.cancel()
    if problem is not None:
        raise problem


def parse_json(text: str | bytes, provider: str) -> Any:
    """``json.loads``, raising :class:`ProtocolError` (with a short excerpt) on bad JSON."""
    try:
        return json.loads(text)
    except ValueError:
        excerpt = text[:120] if isinstance(text, str) else text[:120].decode(errors="replace")
        raise ProtocolError(provider, f"malformed JSON in the reply: {excerpt!r}") from None


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait as the provider advises: ``retry-after-ms``, else ``retry-after``
    (seconds, or an HTTP date). ``None`` when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return value if math.isfinite(value) and value >= 0 else None


def error_for_status(
    provider: str,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    quota_exhausted: bool = False,
) -> ProviderError:
    """The typed error for an HTTP error status (see :mod:`tinyagents.errors`)."""
    retry_after = retry_after_from(headers) if headers is not None else None
    if status in (401, 403):
        return AuthenticationError(provider, message, status=status)
    if status == 408:
        return ProviderTimeout(provider, message, status=status)
    if status == 409:
        return BadRequest(provider, message, status=status, retryable=True)
    if status == 429:
        return RateLimited(
            provider, message, retry_after=retry_after, quota_exhausted=quota_exhausted
        )
    if status == 529:
        return Overloaded(provider, message, retry_after=retry_after)
    if status >= 500:
        return ServerError(provider, message, status=status, retry_after=retry_after)
    return BadRequest(provider, message, status=status)


async def deliver(stream: trio.abc.SendChannel[Chunk], chunk: Chunk) -> None:
    """Send ``chunk`` to the caller's channel, without a trip through the scheduler when a
    memory channel has room (the body's next read is the call's checkpoint); otherwise
    wait for room as ``send`` does."""
    if isinstance(stream, trio.MemorySendChannel):
        try:
            stream.send_nowait(chunk)
        except trio.WouldBlock:
            pass
        else:
            return
    await stream.send(chunk)


async def close_stream(stream: trio.abc.SendChannel[Chunk] | None) -> None:
    """Close the caller's chunk channel, even inside a cancelled scope."""
    if stream is None:
        return
    if isinstance(stream, trio.MemorySendChannel):
        stream.close()  # synchronous: nothing to cancel
        return
    with trio.CancelScope(shield=True):
        await stream.aclose()


class HTTPProvider:
    """Base of the HTTP adapters: owns an ``httpx.AsyncClient``, maps errors, closes the
    stream channel exactly once. Subclasses implement :meth:`_complete` and
    :meth:`_stream` for their dialect.

    Use as ``async with Adapter(...) as provider:`` or call :meth:`aclose` when done.
    """

    name: str = "http"
    gen_ai_provider: ClassVar[str] = "http"
    """The service as OpenTelemetry's ``gen_ai.provider.name`` names it (traces)."""
    api_key_env: ClassVar[str | None] = None
    default_base_url: ClassVar[str] = ""
    requires_key: ClassVar[bool] = True

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        call_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        if api_key is None and self.api_key_env is not None:
            api_key = os.environ.get(self.api_key_env) or None
        self.__api_key = api_key
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if name is not None:
            self.name = name
        if call_timeout is not None:
            call_timeout = check_seconds(call_timeout, "call_timeout (None or seconds)", zero=False)
        self.call_timeout = call_timeout
        self._client = httpx.AsyncClient(
            timeout=timeout,
            headers=dict(headers or {}),
            transport=transport,
            limits=limits if limits is not None else DEFAULT_LIMITS,
        )

    def __repr__(self) -> str:
        key = "set" if self.__api_key else "unset"
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, key {key})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client. The provider cannot be used afterwards."""
        await self._client.aclose()

    # -- for subclasses --------------------------------------------------------------

    def _api_key(self) -> str:
        key = self.__api_key
        if not key:
            if not self.requires_key:
                return ""
            hint = f" or set {self.api_key_env}" if self.api_key_env else ""
            raise AuthenticationError(self.name, f"no API key: pass api_key={hint}")
        return key

    def _auth_headers(self) -> dict[str, str]:
        """Headers carrying the key (``Authorization: Bearer`` by default)."""
        key = self._api_key()
        return {"authorization": f"Bearer {key}"} if key else {}

    def _error_message(self, body: Any, text: str, headers: Mapping[str, str]) -> tuple[str, bool]:
        """The readable message of an error reply (its parsed JSON ``body``, its ``text``
        and ``headers``), and whether it says the quota is spent (not worth retrying)."""
        if isinstance(body, Mapping):
            error = body.get("error", body)
            if isinstance(error, Mapping):
                message = str(error.get("message") or error.get("type") or text)
                code = str(error.get("code") or error.get("type") or "")
                return message, code in ("insufficient_quota", "402")
            if isinstance(error, str):
                return error, False
        return text[:300] or "(empty body)", False

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        raw = await response.aread()
        text = raw.decode(errors="replace")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        message, quota = self._error_message(body, text, response.headers)
        key = self.__api_key
        if key:
            message = message.replace(key, "[redacted]")  # some services echo the key
        raise error_for_status(
            self.name, response.status_code, message, response.headers, quota_exhausted=quota
        )

    async def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` as JSON and return the parsed JSON reply."""
        with self._translate_errors():
            response = await self._client.post(
                self.base_url + path, json=body, headers=self._auth_headers()
            )
            await self._raise_for_status(response)
            return parse_json(response.content, self.name)

    @asynccontextmanager
    async def _post_stream(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` and yield the streaming response (its status already checked)."""
        with self._translate_errors():
            async with self._client.stream(
                "POST", self.base_url + path, json=body, headers=self._auth_headers()
            ) as response:
                await self._raise_for_status(response)
                yield response

    def _translate_errors(self) -> Any:
        return _TranslateErrors(self.name)

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError

    async def _stream(
        self, request: ChatRequest, stream: trio.abc.SendChannel[Chunk]
    ) -> ChatResponse:
        raise NotImplementedError

    # -- the Provider protocol ----------------------------------------------------------

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Send ``request``; see :class:`~tinyagents.llm.Provider`.

        Cancellation (the caller's cancel scope, or ``call_timeout``, which raises
        :class:`~tinyagents.errors.ProviderTimeout`) closes the HTTP response, so the
        provider stays usable; ``stream`` is closed in every case. The call is counted
        in the calling actor's metrics and, while tracing is on, traced as a ``chat``
        span (see :mod:`tinyagents.tracing`).
        """
        with _tracing.LLMCall(self.name, self.gen_ai_provider, request, self.base_url) as call:
            try:
                if self.call_timeout is None:
                    return call.done(await self._dispatch(request, stream))
                with trio.move_on_after(self.call_timeout):
                    return call.done(await self._dispatch(request, stream))
                raise ProviderTimeout(
                    self.name, f"no complete answer within call_timeout={self.call_timeout:g}s"
                )
            finally:
                await close_stream(stream)

    async def _dispatch(
        self, request: ChatRequest, stream: trio.abc.SendChannel[Chunk] | None
    ) -> ChatResponse:
        if stream is None:
            return await self._complete(request)
        return await self._stream(request, stream)


class _TranslateErrors:
    """Turns httpx's exceptions into the library's typed errors."""

    __slots__ = ("provider",)

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, ProviderError):
            return
        if isinstance(exc, httpx.TimeoutException):
            raise ProviderTimeout(self.provider, f"timed out: {type(exc).__name__}") from exc
        if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc):
            # no response at all (a stale keep-alive connection, say): worth trying again
            raise ProviderConnectionError(
                self.provider, f"the server closed the connection: {exc}"
            ) from exc
        if isinstance(exc, httpx.RemoteProtocolError):
            raise ProtocolError(
                self.provider, f"the reply broke off or was malformed: {exc}"
            ) from exc
        if isinstance(exc, httpx.TransportError):
            raise ProviderConnectionError(
                self.provider, f"connection failed: {type(exc).__name__}: {exc}"
            ) from exc
