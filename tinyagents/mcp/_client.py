"""MCPServer: a connection to one MCP server, as a service, and its tools (internal)."""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol, Self

import trio

from .._nursery import open_service_nursery
from .._validate import check_int, check_seconds
from .._version import __version__
from ..errors import (
    MCPConnectionLost,
    MCPError,
    MCPProtocolError,
    MCPRequestError,
    MCPTimeout,
    MCPToolError,
    MCPVersionMismatch,
)
from ..llm._types import ToolSpec
from ..tool import ToolRegistry
from ._connection import Connection, Message, NotificationHandler
from ._http import HTTPConnection, HTTPTransport, StaleSession
from ._protocol import (
    CLIENT_CAPABILITIES_META,
    CLIENT_INFO_META,
    HANDSHAKE_VERSIONS,
    MODERN_VERSION,
    PROTOCOL_VERSION_META,
    SERVER_INFO_META,
    SUPPORTED_VERSIONS,
    UNSUPPORTED_PROTOCOL_VERSION,
    MCPToolResult,
    Progress,
    model_name,
)
from ._stdio import StdioTransport

__all__ = ["MCPServer", "MCPTool"]

logger = logging.getLogger("tinyagents.mcp")

ProgressCallback = Callable[[Progress], object]

_PROBE_TIMEOUT = 5.0  # at most, for server/discover: a server of an older revision may ignore it
_MAX_PAGES = 1000
_MAX_BACKOFF = 30.0


class _Transport(Protocol):
    label: str

    async def open(
        self, nursery: trio.Nursery, on_notification: NotificationHandler
    ) -> Connection: ...

    async def aclose(self) -> None: ...


class MCPTool:
    """One tool of an MCP server, as a :class:`~tinyagents.tool.Tool`.

    ``spec`` carries the tool's description and its JSON Schema (``inputSchema``) as
    the server gave them; its name is the MCP name with the server's ``prefix``, made
    safe for the LLM APIs (see :class:`MCPServer`). :meth:`call` calls it on the
    server; ``name`` is its MCP name and ``definition`` the server's whole entry.
    """

    def __init__(self, server: MCPServer, definition: Mapping[str, Any]) -> None:
        self.server = server
        self.definition = dict(definition)
        self.name: str = definition["name"]
        schema = definition.get("inputSchema")
        if not isinstance(schema, Mapping):
            schema = {"type": "object", "properties": {}}
        description = definition.get("description") or definition.get("title") or ""
        self.spec = ToolSpec(
            name=model_name(server.prefix, self.name),
            description=description if isinstance(description, str) else "",
            parameters=schema,
        )

    def __repr__(self) -> str:
        return f"<MCPTool {self.spec.name} of {self.server.label}>"

    async def call(self, arguments: Mapping[str, Any]) -> str:
        """Call the tool on the server with the server's default deadline; its text.

        Raises:
            MCPToolError: the tool reported failure (its text is the error).
            MCPError: the call could not be made or answered (see
                :meth:`MCPServer.call_tool`).
        """
        result = await self.server.call_tool(self.name, arguments)
        if result.is_error:
            raise MCPToolError(self.spec.name, result.text, server=self.server.label)
        return result.text


class MCPServer:
    """A connection to an MCP server, and its tools.

    Made with :meth:`stdio` (a program started as a child process) or :meth:`http`
    (a Streamable HTTP endpoint) and used as ``async with``::

        async with MCPServer.stdio("python", "weather_server.py") as weather:
            bot = await system.spawn(Agent("bot", provider, "gpt-4o", tools=weather.tools))

    Entering the block connects, negotiates the protocol revision and lists the tools
    (following ``nextCursor`` through every page); it raises the :class:`MCPError`
    that prevented it. Leaving it closes the connection (stdio: stdin is closed, then
    SIGTERM, then SIGKILL, each after ``stop_timeout`` seconds; HTTP: the session is
    deleted) and cancels what is still running.

    **Tools.** :attr:`tools` is a :class:`~tinyagents.tool.ToolRegistry` of
    :class:`MCPTool`\\ s, kept up to date: when the server announces that its tools
    changed (``notifications/tools/list_changed``), and after a reconnection, the list
    is fetched again and the registry changed in place. ``Agent(tools=server.tools)``
    shares that registry, so the agent sees the changes from its next turn on;
    ``Agent(tools=[*server.tools, other])`` takes the tools of the moment. A tool's
    model-facing name is ``prefix`` + its MCP name, with characters the LLM APIs
    refuse replaced by ``_`` (the call goes to the MCP name).

    **Deadlines.** Every request has one: ``timeout`` seconds by default, or the
    ``timeout`` of :meth:`call_tool` / :meth:`list_tools`. When it passes the request
    raises :class:`MCPTimeout` and is cancelled on the server. When the caller is
    cancelled (an agent's turn deadline, a cancel scope), the server is told too:
    ``notifications/cancelled``, or, over stateless HTTP, the request's response
    closed.

    **Failures and reconnection.** A server that dies or whose connection breaks
    fails the requests in flight with :class:`MCPConnectionLost` (with the exit
    status and the last lines of its stderr, for a process); they are not retried,
    since a tool may have had effects. The next request reconnects: a new process, or
    a new HTTP session, in up to ``reconnect_attempts`` tries, ``reconnect_backoff``
    seconds apart and doubling. Over HTTP, a 404 to a request naming a session means
    the server forgot it (it restarted): the client initializes a new session and
    sends the request again, once.

    **Protocol revisions.** With ``protocol_version=None`` the client offers the
    newest it speaks: it asks ``server/discover`` (the stateless revision,
    2026-07-28) and, when the server does not answer it with that revision, falls
    back to the ``initialize`` handshake offering 2025-11-25, accepting any of
    2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05 in answer. A revision given
    as ``protocol_version`` is the only one offered. No revision in common raises
    :class:`MCPVersionMismatch`.

    **Progress.** ``on_progress`` (a plain function, called in the task reading the
    server's messages, so it must not block) receives a :class:`Progress` for every
    progress notification of a tool call, unless the call gave its own ``progress``.
    """

    def __init__(
        self,
        transport: _Transport,
        *,
        timeout: float = 30.0,
        protocol_version: str | None = None,
        prefix: str = "",
        on_progress: ProgressCallback | None = None,
        reconnect_attempts: int = 3,
        reconnect_backoff: float = 0.5,
        client_name: str = "tinyagents",
    ) -> None:
        """Use :meth:`stdio` or :meth:`http`; their keyword options are these."""
        self.timeout = check_seconds(timeout, "MCPServer timeout (seconds > 0)", zero=False)
        if protocol_version is not None and protocol_version not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unknown MCP protocol_version {protocol_version!r}: use None (negotiate) or "
                f"one of {', '.join(SUPPORTED_VERSIONS)}"
            )
        if not isinstance(prefix, str):
            raise TypeError(f"MCPServer prefix must be a string, not {prefix!r:.80}")
        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"MCPServer on_progress must be a function, not {on_progress!r:.80}")
        self.protocol_version_wanted = protocol_version
        self.prefix = prefix
        self.on_progress = on_progress
        self.reconnect_attempts = check_int(
            reconnect_attempts, "MCPServer reconnect_attempts (an int >= 1)", minimum=1
        )
        self.reconnect_backoff = check_seconds(
            reconnect_backoff, "MCPServer reconnect_backoff (seconds)", inf=False
        )
        self.client_info = {"name": client_name, "version": __version__}
        self.reconnects = 0
        self._transport = transport
        self._tools = ToolRegistry()
        self._mine: set[str] = set()
        self._ids = itertools.count(1)
        self._conn: Connection | None = None
        self._connect_lock = trio.Lock()
        self._refresh = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._stack: AsyncExitStack | None = None
        self._state = "new"
        self._result: Mapping[str, Any] = {}

    # -- making one ---------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str | os.PathLike[str],
        *args: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stop_timeout: float = 2.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        **options: Any,
    ) -> MCPServer:
        """A server run as ``command *args``, speaking over its stdin and stdout.

        ``env`` is added to this process's environment for it; ``cwd`` is where it runs.
        ``stop_timeout`` is the grace between each step of stopping it. A line of
        stdout that is not JSON-RPC is logged and dropped; one over
        ``max_message_bytes`` too. ``options`` are those of the class (``timeout``,
        ``protocol_version``, ``prefix``, ``on_progress``, ``reconnect_attempts``,
        ``reconnect_backoff``, ``client_name``).
        """
        stop_timeout = check_seconds(stop_timeout, "MCPServer stop_timeout", inf=False)
        check_int(max_message_bytes, "MCPServer max_message_bytes (an int >= 1024)", minimum=1024)
        transport = StdioTransport(
            [os.fspath(part) for part in (command, *args)],
            env=env,
            cwd=cwd,
            stop_timeout=stop_timeout,
            max_message_bytes=max_message_bytes,
        )
        return cls(transport, **options)

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_message_bytes: int = 16 * 1024 * 1024,
        **options: Any,
    ) -> MCPServer:
        """A server at the Streamable HTTP endpoint ``url`` (such as
        ``"http://127.0.0.1:8000/mcp"``); ``headers`` go with every request (an
        ``Authorization`` header, say). ``options`` are those of the class."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"MCPServer.http takes an http:// or https:// URL, not {url!r:.80}")
        check_int(max_message_bytes, "MCPServer max_message_bytes (an int >= 1024)", minimum=1024)
        timeout = options.get("timeout", 30.0)
        transport = HTTPTransport(
            url,
            headers=headers,
            timeout=float(timeout) if isinstance(timeout, int | float) else 30.0,
            max_message_bytes=max_message_bytes,
        )
        return cls(transport, **options)

    # -- what it knows ---------------------------------------------------------------

    @property
    def label(self) -> str:
        """The server's command line or URL, as errors name it."""
        return self._transport.label

    @property
    def tools(self) -> ToolRegistry:
        """The server's tools, as of the last listing (see the class docstring)."""
        return self._tools

    @property
    def protocol_version(self) -> str | None:
        """The revision negotiated with the server (``None`` while not connected)."""
        return None if self._conn is None else self._conn.version

    @property
    def server_info(self) -> Mapping[str, Any]:
        """The server's name and version, as it gave them (may be empty)."""
        info = self._result.get("serverInfo")
        if not isinstance(info, Mapping):
            meta = self._result.get("_meta")
            info = meta.get(SERVER_INFO_META) if isinstance(meta, Mapping) else None
        return info if isinstance(info, Mapping) else {}

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """The capabilities the server declared."""
        value = self._result.get("capabilities")
        return value if isinstance(value, Mapping) else {}

    @property
    def instructions(self) -> str | None:
        """The server's instructions for the model, if it gave any."""
        value = self._result.get("instructions")
        return value if isinstance(value, str) else None

    def stderr_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines a stdio server wrote to its stderr ("" over HTTP)."""
        if isinstance(self._transport, StdioTransport):
            return self._transport.stderr_tail(lines)
        return ""

    def __repr__(self) -> str:
        return f"<MCPServer {self.label} {self._state}>"

    # -- the service -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise MCPError("an MCPServer is entered once; make a new one", server=self.label)
        self._state = "open"
        stack = AsyncExitStack()
        try:
            self._nursery = await stack.enter_async_context(open_service_nursery())
            stack.push_async_callback(self._shutdown)
            async with self._connect_lock:
                await self._connect_locked(first=True)
            await self.list_tools()
            self._nursery.start_soon(self._follow_changes)
        except BaseException:
            self._state = "closed"
            if not await stack.__aexit__(*sys.exc_info()):
                raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._state = "closed"
        assert self._stack is not None
        return await self._stack.__aexit__(exc_type, exc, tb)

    async def _shutdown(self) -> None:
        with trio.CancelScope(shield=True):
            if self._conn is not None:
                await self._conn.aclose()
            await self._transport.aclose()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _follow_changes(self) -> None:
        while True:
            await self._refresh.wait()
            self._refresh = trio.Event()
            try:
                await self.list_tools()
            except MCPError as error:
                logger.warning(
                    "MCP server %s: could not list its changed tools: %s", self.label, error
                )

    def _notified(self, method: str, params: Mapping[str, Any]) -> None:
        if method == "notifications/tools/list_changed":
            self._refresh.set()
        elif method == "notifications/message":
            logger.info("MCP server %s: %s", self.label, params.get("data"))
        else:
            logger.debug("MCP server %s notified %s", self.label, method)

    # -- connecting --------------------------------------------------------------------

    async def _connection(self) -> Connection:
        if self._state != "open":
            raise MCPConnectionLost(
                "the MCPServer is not open (use it inside its async with block)",
                server=self.label,
            )
        conn = self._conn
        if conn is not None and conn.lost is None:
            return conn
        async with self._connect_lock:
            if self._conn is not None and self._conn.lost is None:
                return self._conn
            return await self._connect_locked()

    async def _connect_locked(self, *, first: bool = False) -> Connection:
        old, self._conn = self._conn, None
        if old is not None:
            await old.aclose()
        attempts = 1 if first else self.reconnect_attempts
        delay = self.reconnect_backoff
        last: MCPError | None = None
        for attempt in range(attempts):
            if attempt:
                logger.info("MCP server %s: reconnecting in %gs (%s)", self.label, delay, last)
                await trio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
            try:
                conn = await self._open()
            except (MCPConnectionLost, MCPTimeout) as error:
                last = error
                continue
            self._conn = conn
            if not first:
                self.reconnects += 1
                self._refresh.set()  # the restarted server may have other tools
            return conn
        assert last is not None
        if first:
            raise last
        raise MCPConnectionLost(
            f"could not reconnect in {attempts} attempts: {last.detail}",
            server=self.label,
            returncode=getattr(last, "returncode", None),
        ) from last

    async def _open(self) -> Connection:
        assert self._nursery is not None
        conn = await self._transport.open(self._nursery, self._notified)
        try:
            await self._negotiate(conn)
        except BaseException:
            await conn.aclose()
            raise
        if isinstance(conn, HTTPConnection) and conn.session_id is not None:
            conn.spawn(self._nursery, conn.listen)
        if conn.modern and _listens(self.capabilities):
            conn.spawn(self._nursery, lambda: self._subscribe(conn))
        return conn

    async def _negotiate(self, conn: Connection) -> None:
        wanted = self.protocol_version_wanted
        if wanted in (None, MODERN_VERSION):
            # the probe goes as a request of the stateless revision (envelope, headers)
            conn.modern, conn.version = True, MODERN_VERSION
            try:
                result = await self._send(
                    conn, "server/discover", {}, timeout=min(self.timeout, _PROBE_TIMEOUT)
                )
            except MCPRequestError as error:
                supported = _supported(error.data)
                if wanted == MODERN_VERSION or (
                    error.code == UNSUPPORTED_PROTOCOL_VERSION
                    and supported
                    and not set(supported) & set(HANDSHAKE_VERSIONS)
                ):
                    raise MCPVersionMismatch(
                        [MODERN_VERSION] if wanted else SUPPORTED_VERSIONS,
                        supported,
                        server=self.label,
                    ) from error
                result = None
            except (MCPProtocolError, MCPTimeout):
                if wanted == MODERN_VERSION:
                    raise
                result = None
            finally:
                conn.modern, conn.version = False, None
            if result is not None:
                versions = result.get("supportedVersions")
                versions = (
                    [v for v in versions if isinstance(v, str)]
                    if isinstance(versions, list)
                    else []
                )
                if MODERN_VERSION in versions:
                    conn.version = MODERN_VERSION
                    conn.modern = True
                    self._result = result
                    return
                if wanted == MODERN_VERSION:
                    raise MCPVersionMismatch([MODERN_VERSION], versions, server=self.label)
        offered = HANDSHAKE_VERSIONS if wanted is None else (wanted,)
        result = await self._send(
            conn,
            "initialize",
            {
                "protocolVersion": offered[0],
                "capabilities": {},
                "clientInfo": self.client_info,
            },
            timeout=self.timeout,
        )
        version = result.get("protocolVersion")
        if version not in offered:
            raise MCPVersionMismatch(
                offered, [version] if isinstance(version, str) else [], server=self.label
            )
        conn.version = version
        self._result = result
        await conn.notify({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _subscribe(self, conn: Connection) -> None:
        """Stateless revision: a ``subscriptions/listen`` request open for as long as
        the connection, whose notifications say when the tools change."""
        params = {"notifications": {"toolsListChanged": True}}
        try:
            await self._send(conn, "subscriptions/listen", params, timeout=math.inf)
        except MCPError as error:
            logger.debug("MCP server %s: subscriptions/listen ended: %s", self.label, error)

    # -- requests ----------------------------------------------------------------------

    def _message(
        self, method: str, params: Mapping[str, Any], *, modern: bool, progress: bool
    ) -> Message:
        key = next(self._ids)
        body = dict(params)
        meta = dict(body.get("_meta") or {})
        if progress:
            meta["progressToken"] = key
        if modern:
            meta[PROTOCOL_VERSION_META] = MODERN_VERSION
            meta[CLIENT_INFO_META] = self.client_info
            meta[CLIENT_CAPABILITIES_META] = {}
        if meta:
            body["_meta"] = meta
        return {"jsonrpc": "2.0", "id": key, "method": method, "params": body}

    async def _send(
        self,
        conn: Connection,
        method: str,
        params: Mapping[str, Any],
        *,
        timeout: float,
        tool: str = "",
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """One request on ``conn`` within ``timeout``; its result."""
        message = self._message(method, params, modern=conn.modern, progress=progress is not None)
        with trio.move_on_after(timeout) as scope:
            reply = await conn.request(message, tool=tool, progress=progress)
        if scope.cancelled_caught:
            raise MCPTimeout(method, timeout, server=self.label)
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, Mapping):
                raise MCPProtocolError(f"a malformed error answering {method}", server=self.label)
            code = error.get("code")
            raise MCPRequestError(
                method,
                code if isinstance(code, int) else 0,
                str(error.get("message", "")),
                server=self.label,
                data=error.get("data"),
            )
        result = reply.get("result")
        if not isinstance(result, dict):
            raise MCPProtocolError(f"the result of {method} is not an object", server=self.label)
        return result

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        tool: str = "",
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Send any request and return its result (a JSON object).

        Reconnects first if the connection was lost. Blocks until the answer, at most
        ``timeout`` seconds (the server's default when ``None``).

        Raises:
            MCPTimeout: no answer in time (the request is cancelled on the server).
            MCPConnectionLost: the connection broke, or could not be made again.
            MCPRequestError: the server answered with a JSON-RPC error.
            MCPProtocolError: the answer broke the protocol.
        """
        seconds = self.timeout if timeout is None else check_seconds(timeout, "timeout", zero=False)
        conn = await self._connection()
        try:
            return await self._send(
                conn, method, params or {}, timeout=seconds, tool=tool, progress=progress
            )
        except StaleSession:
            pass
        async with self._connect_lock:
            if self._conn is conn:
                await self._connect_locked()
        conn = await self._connection()
        try:
            return await self._send(
                conn, method, params or {}, timeout=seconds, tool=tool, progress=progress
            )
        except StaleSession:
            raise MCPProtocolError(
                "answered 404 to a session it had just started", server=self.label, status=404
            ) from None

    async def list_tools(self, *, timeout: float | None = None) -> tuple[MCPTool, ...]:
        """Fetch the server's tools, every page (``nextCursor``), and update
        :attr:`tools`; each page's request has its own deadline. A tool whose
        model-facing name repeats an earlier one is skipped, with a warning.

        Raises the errors of :meth:`request`; :class:`MCPProtocolError` for a listing
        that is not one, or a cursor that repeats."""
        found: dict[str, MCPTool] = {}
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            result = await self.request(
                "tools/list", {"cursor": cursor} if cursor else {}, timeout=timeout
            )
            items = result.get("tools")
            if not isinstance(items, list):
                raise MCPProtocolError(
                    "tools/list answered without a tools list", server=self.label
                )
            for item in items:
                if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                    raise MCPProtocolError(
                        f"a tool without a name: {item!r:.120}", server=self.label
                    )
                made = MCPTool(self, item)
                if made.spec.name in found:
                    logger.warning(
                        "MCP server %s lists the tool %s twice; the first is kept",
                        self.label,
                        made.spec.name,
                    )
                    continue
                found[made.spec.name] = made
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
            if cursor in seen:
                raise MCPProtocolError(
                    f"tools/list repeats the cursor {cursor!r}", server=self.label
                )
            seen.add(cursor)
        else:
            raise MCPProtocolError(f"tools/list has over {_MAX_PAGES} pages", server=self.label)
        self._install(found)
        return tuple(found.values())

    def _install(self, found: Mapping[str, MCPTool]) -> None:
        for name in self._mine - set(found):
            if name in self._tools:
                self._tools.remove(name)
        for name, made in found.items():
            held = self._tools.get(name)
            if held is not None and name in self._mine:
                self._tools.remove(name)
            self._tools.register(made)
        self._mine = set(found)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> MCPToolResult:
        """Call the tool ``name`` (its MCP name) with ``arguments``; what it answered.

        A tool that reports failure is not an exception here: the result has
        ``is_error`` set (an :class:`MCPTool` turns it into :class:`MCPToolError`).
        ``progress`` (a plain function; by default the server's ``on_progress``)
        receives the call's progress notifications. Cancelling the caller cancels the
        call on the server.

        Raises the errors of :meth:`request` (an unknown tool is usually an
        :class:`MCPRequestError` with code -32602).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"call_tool takes a tool name, not {name!r:.80}")
        result = await self.request(
            "tools/call",
            {"name": name, "arguments": dict(arguments or {})},
            timeout=timeout,
            tool=name,
            progress=progress if progress is not None else self.on_progress,
        )
        content = result.get("content", [])
        if not isinstance(content, list):
            raise MCPProtocolError("tools/call answered without a content list", server=self.label)
        return MCPToolResult(
            content=tuple(item for item in content if isinstance(item, Mapping)),
            structured=result.get("structuredContent"),
            is_error=result.get("isError") is True,
        )


def _supported(data: object) -> list[str]:
    if isinstance(data, Mapping):
        supported = data.get("supported")
        if isinstance(supported, list):
            return [v for v in supported if isinstance(v, str)]
    return []


def _listens(capabilities: Mapping[str, Any]) -> bool:
    tools = capabilities.get("tools")
    return isinstance(tools, Mapping) and tools.get("listChanged") is True
