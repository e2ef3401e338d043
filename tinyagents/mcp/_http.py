"""The Streamable HTTP transport, on httpx (internal).

Every request is a POST; the server answers with one JSON body or with an event stream
(``text/event-stream``) carrying notifications and, last, the response. With the
handshake revisions the server names a session (``Mcp-Session-Id``) that every later
request carries, and may offer a GET event stream for notifications outside requests;
a 404 on a request with a session id means the session is gone (the server restarted)
and the client starts a new one. With the stateless revision there is no session,
every request carries the ``MCP-Protocol-Version``, ``Mcp-Method`` and (for a tool
call) ``Mcp-Name`` headers, and a request is cancelled by closing its response.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx
import trio

from ..errors import MCPConnectionLost, MCPProtocolError
from ._connection import Connection, EventParser, Message, NotificationHandler, encode

__all__ = ["HTTPConnection", "HTTPTransport", "StaleSession"]

logger = logging.getLogger("tinyagents.mcp")

_SAFE_HEADER = re.compile(r"^[\x20-\x7E]*$")
_NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def header_value(value: str) -> str:
    """``value`` as it may travel in a header: as it is when it is printable ASCII
    without edge spaces, else base64 in the ``=?base64?...?=`` form."""
    if _SAFE_HEADER.match(value) and value == value.strip() and not value.startswith("=?"):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="


class StaleSession(Exception):
    """The server does not know the session any more (HTTP 404)."""


class HTTPConnection(Connection):
    """One session (or, stateless, one negotiated revision) with an HTTP server."""

    def __init__(
        self, transport: HTTPTransport, nursery: trio.Nursery, on_notification: NotificationHandler
    ) -> None:
        super().__init__(transport.label, on_notification)
        self._transport = transport
        self._nursery = nursery
        self.session_id: str | None = None
        self._closed = False

    def _headers(self, message: Message | None) -> dict[str, str]:
        headers = {
            **self._transport.headers,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        method = message.get("method") if message is not None else None
        if self.version is not None and method != "initialize":
            headers["MCP-Protocol-Version"] = self.version
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.modern and isinstance(method, str):
            headers["Mcp-Method"] = method
            key = _NAME_BEARING.get(method)
            params = message.get("params") if message is not None else None
            if key is not None and isinstance(params, Mapping):
                name = params.get(key)
                if isinstance(name, str):
                    headers["Mcp-Name"] = header_value(name)
        return headers

    def _transport_error(self, what: str, exc: Exception) -> MCPConnectionLost:
        error = MCPConnectionLost(
            f"{what}: {type(exc).__name__}: {exc}".rstrip(": "), server=self.label
        )
        self.lose(error)
        return error

    async def _error_status(self, response: httpx.Response, key: object) -> Message:
        """The JSON-RPC error inside an HTTP error response; else raise."""
        body = (await response.aread())[: 64 * 1024]
        if response.status_code == 404 and self.session_id is not None:
            raise StaleSession
        for message in self._messages(body, quiet=True):
            if self.is_reply_to(message, key) or (
                "error" in message and message.get("id") in (None, key)
            ):
                return {**message, "id": key}
        text = body.decode("utf-8", "replace").strip()
        raise MCPProtocolError(
            f"HTTP {response.status_code} {response.reason_phrase}"
            + (f": {text[:300]}" if text else ""),
            server=self.label,
            status=response.status_code,
        )

    def _messages(self, data: bytes | str, *, quiet: bool = False) -> list[Message]:
        if quiet:
            garbage = self.garbage
            messages = self.parse(data) if data else []
            self.garbage = garbage
            return messages
        return self.parse(data)

    async def _answer(self, message: Message) -> None:
        """Deliver ``message``; POST the reply to a request from the server."""
        reply = self.route(message)
        if reply is not None:
            self.spawn(self._nursery, lambda: self._post_quietly(reply))

    async def _post_quietly(self, message: Message) -> None:
        with trio.move_on_after(self._transport.timeout):
            try:
                response = await self._transport.client.post(
                    self._transport.url, content=encode(message), headers=self._headers(message)
                )
                await response.aclose()
            except httpx.HTTPError as exc:
                logger.debug("MCP server %s: could not send %r: %s", self.label, message, exc)

    async def exchange(self, message: Message) -> Message:
        key = message["id"]
        client = self._transport.client
        answered = False
        try:
            async with client.stream(
                "POST", self._transport.url, content=encode(message), headers=self._headers(message)
            ) as response:
                if response.status_code >= 400:
                    answered = True
                    return await self._error_status(response, key)
                if message.get("method") == "initialize":
                    self.session_id = response.headers.get("mcp-session-id") or None
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind == "application/json":
                    body = await response.aread()
                    reply: Message | None = None
                    for item in self._messages(body):
                        if self.is_reply_to(item, key):
                            reply = item
                        else:
                            await self._answer(item)
                    if reply is None:
                        raise MCPProtocolError(
                            f"the JSON answer to {message.get('method')} holds no response to it",
                            server=self.label,
                            status=response.status_code,
                        )
                    answered = True
                    return reply
                if kind == "text/event-stream":
                    parser = EventParser(self._transport.max_message_bytes)
                    async for line in response.aiter_lines():
                        data = parser.feed(line.rstrip("\r\n"))
                        if data is None:
                            continue
                        for item in self._messages(data):
                            if self.is_reply_to(item, key):
                                answered = True
                                return item
                            await self._answer(item)
                    raise self._transport_error(
                        f"the event stream answering {message.get('method')} ended before the "
                        "response",
                        EOFError(),
                    )
                raise MCPProtocolError(
                    f"answered {message.get('method')} with HTTP {response.status_code} and the "
                    f"content type {kind or 'none'!r}, neither JSON nor an event stream",
                    server=self.label,
                    status=response.status_code,
                )
        except httpx.TransportError as exc:
            raise self._transport_error(f"{message.get('method')} failed", exc) from exc
        except ValueError as exc:  # an event over the limit
            raise MCPProtocolError(str(exc), server=self.label) from exc
        except trio.Cancelled:
            # stateless: closing the response is the cancellation; otherwise say so
            if not answered and not self.modern and self.lost is None:
                with trio.CancelScope(shield=True):
                    await self._post_quietly(self.cancelled(key))
            raise

    async def notify(self, message: Message) -> None:
        try:
            response = await self._transport.client.post(
                self._transport.url, content=encode(message), headers=self._headers(message)
            )
            await response.aclose()
        except httpx.TransportError as exc:
            raise self._transport_error(f"{message.get('method')} failed", exc) from exc
        if response.status_code == 404 and self.session_id is not None:
            raise StaleSession
        if response.status_code >= 400:
            raise MCPProtocolError(
                f"HTTP {response.status_code} to {message.get('method')}",
                server=self.label,
                status=response.status_code,
            )

    async def listen(self) -> None:
        """The GET event stream of a session, for notifications outside requests; ends
        quietly when the server offers none (405) or the stream breaks."""
        headers = self._headers(None)
        headers["Accept"] = "text/event-stream"
        del headers["Content-Type"]
        try:
            async with self._transport.client.stream(
                "GET", self._transport.url, headers=headers
            ) as response:
                if response.status_code != 200:
                    return
                parser = EventParser(self._transport.max_message_bytes)
                async for line in response.aiter_lines():
                    data = parser.feed(line.rstrip("\r\n"))
                    if data is not None:
                        for item in self._messages(data):
                            await self._answer(item)
        except (httpx.HTTPError, ValueError) as exc:
            logger.debug("MCP server %s: the GET stream ended: %s", self.label, exc)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.lose(MCPConnectionLost("the connection was closed", server=self.label))
        self.cancel_tasks()
        if self.session_id is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                try:
                    response = await self._transport.client.delete(
                        self._transport.url, headers=self._headers(None)
                    )
                    await response.aclose()
                except httpx.HTTPError:
                    pass


def _label(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


class HTTPTransport:
    """The server's URL and one httpx client for every connection to it."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        timeout: float,
        max_message_bytes: int,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.label = _label(url)
        self.headers: dict[str, Any] = dict(headers or {})
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._own_client = client is None
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made when first used, in the service's block
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=self.timeout), follow_redirects=False
            )
        return self._client

    async def open(self, nursery: trio.Nursery, on_notification: NotificationHandler) -> Connection:
        return HTTPConnection(self, nursery, on_notification)

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            with trio.CancelScope(shield=True):
                await self._client.aclose()
            self._client = None
