"""One connection to an MCP server: JSON-RPC bookkeeping shared by the transports
(internal).

A :class:`Connection` sends a request and waits for the response with the same id;
messages that are not that response are routed: progress notifications to the
request they belong to, other notifications to the client, requests from the server
answered (``ping``) or refused (anything else: this client offers no capabilities).
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..errors import MCPConnectionLost
from ._protocol import METHOD_NOT_FOUND, Progress

__all__ = ["Connection", "EventParser", "Message", "NotificationHandler", "encode"]

logger = logging.getLogger("tinyagents.mcp")

Message = dict[str, Any]
NotificationHandler = Callable[[str, Mapping[str, Any]], None]
ProgressCallback = Callable[[Progress], object]


def encode(message: Message) -> bytes:
    """A message as compact UTF-8 JSON (never containing a raw newline)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class _Pending:
    __slots__ = ("done", "error", "progress", "reply", "tool")

    def __init__(self, tool: str, progress: ProgressCallback | None) -> None:
        self.done = trio.Event()
        self.reply: Message | None = None
        self.error: BaseException | None = None
        self.tool = tool
        self.progress = progress


class Connection(abc.ABC):
    """The transport-independent half of a connection.

    ``version`` is the negotiated protocol revision (``None`` before), ``modern``
    whether it is the stateless revision. ``lost`` is set, once, to the error that
    ended the connection; every waiting request fails with it.
    """

    def __init__(self, label: str, on_notification: NotificationHandler) -> None:
        self.label = label
        self.version: str | None = None
        self.modern = False
        self.lost: MCPConnectionLost | None = None
        self.garbage = 0
        self._on_notification = on_notification
        self._pending: dict[object, _Pending] = {}
        self._scopes: set[trio.CancelScope] = set()
        self._stopped = False

    # -- what a transport implements -----------------------------------------------

    @abc.abstractmethod
    async def exchange(self, message: Message) -> Message:
        """Send the request ``message`` and return the response to it (a JSON-RPC
        response, maybe an error). Raises :class:`MCPConnectionLost` when the
        connection breaks; on cancellation it tells the server (see :meth:`cancelled`)."""

    @abc.abstractmethod
    async def notify(self, message: Message) -> None:
        """Send the notification ``message``."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection, bounded and shielded; safe to call twice."""

    # -- shared -----------------------------------------------------------------------

    def spawn(self, nursery: trio.Nursery, task: Callable[[], Awaitable[None]]) -> None:
        """Run ``task`` in ``nursery`` for as long as this connection lives."""

        scope = trio.CancelScope()
        if self._stopped:
            scope.cancel()
        self._scopes.add(scope)

        async def run() -> None:
            try:
                with scope:
                    await task()
            finally:
                self._scopes.discard(scope)

        nursery.start_soon(run)

    def cancel_tasks(self) -> None:
        """Cancel the tasks of :meth:`spawn` (and any spawned later)."""
        self._stopped = True
        for scope in self._scopes:
            scope.cancel()

    async def request(
        self, message: Message, *, tool: str = "", progress: ProgressCallback | None = None
    ) -> Message:
        """:meth:`exchange`, with the request registered so that its progress
        notifications reach ``progress``."""
        if self.lost is not None:
            raise self.lost
        key = message["id"]
        self._pending[key] = _Pending(tool, progress)
        try:
            return await self.exchange(message)
        finally:
            self._pending.pop(key, None)

    def lose(self, error: MCPConnectionLost) -> None:
        """End the connection with ``error``: every waiting request fails with it."""
        if self.lost is None:
            self.lost = error
        for pending in self._pending.values():
            if not pending.done.is_set():
                pending.error = self.lost
                pending.done.set()

    async def wait_reply(self, key: object) -> Message:
        """The response with id ``key``, as routed by :meth:`route` (stream transports)."""
        pending = self._pending[key]
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.reply is not None
        return pending.reply

    def answered(self, key: object) -> bool:
        pending = self._pending.get(key)
        return pending is None or pending.done.is_set()

    def cancelled(self, key: object) -> Message:
        """The ``notifications/cancelled`` telling the server to stop request ``key``."""
        return {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": key, "reason": "the client cancelled the request"},
        }

    def parse(self, data: bytes | str) -> list[Message]:
        """The JSON-RPC messages in one line or event (a batch gives several); what is
        not JSON-RPC is counted, logged and dropped."""
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        items = value if isinstance(value, list) else [value]
        messages = [item for item in items if isinstance(item, dict) and item.get("jsonrpc")]
        if len(messages) != len(items) or not items:
            self.garbage += 1
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            logger.warning(
                "MCP server %s sent a line that is not JSON-RPC: %.120r", self.label, text
            )
        return messages

    def route(self, message: Message) -> Message | None:
        """Deliver one received message; the reply to send back, for a request from
        the server."""
        method = message.get("method")
        if isinstance(method, str):
            params = message.get("params")
            params = params if isinstance(params, Mapping) else {}
            if "id" in message:
                if method == "ping":
                    return {"jsonrpc": "2.0", "id": message["id"], "result": {}}
                return {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "error": {"code": METHOD_NOT_FOUND, "message": f"{method} is not supported"},
                }
            if method == "notifications/progress":
                self._progress(params)
            else:
                self._on_notification(method, params)
            return None
        if "id" in message and ("result" in message or "error" in message):
            pending = self._pending.get(message["id"])
            if pending is None or pending.done.is_set():
                logger.debug("MCP server %s answered an unknown request %r", self.label, message)
            else:
                pending.reply = message
                pending.done.set()
            return None
        self.garbage += 1
        logger.warning("MCP server %s sent a message of no known kind: %.120r", self.label, message)
        return None

    def is_reply_to(self, message: Message, key: object) -> bool:
        return (
            "method" not in message
            and message.get("id") == key
            and ("result" in message or "error" in message)
        )

    def _progress(self, params: Mapping[str, Any]) -> None:
        pending = self._pending.get(params.get("progressToken"))
        value = _number(params.get("progress"))
        if pending is None or pending.progress is None or value is None:
            return
        message = params.get("message")
        update = Progress(
            tool=pending.tool,
            progress=value,
            total=_number(params.get("total")),
            message=message if isinstance(message, str) else None,
        )
        try:
            pending.progress(update)
        except Exception:
            logger.exception("a progress callback of %s raised", self.label)


class EventParser:
    """Server-sent events from lines (``text/event-stream``): :meth:`feed` one line,
    get the data of an event when a blank line ends it. Only ``data`` matters here."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data: list[str] = []
        self._size = 0

    def feed(self, line: str) -> str | None:
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._size += len(value)
            if self._size > self.limit:
                raise ValueError(f"an event of over {self.limit:,} characters")
            self._data.append(value)
        return None

    def flush(self) -> str | None:
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        self._size = 0
        return data
