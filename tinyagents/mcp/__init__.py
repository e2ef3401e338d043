"""Tools from MCP servers: a trio-native Model Context Protocol client.

::

    async with MCPServer.stdio("python", "weather_server.py") as weather:
        bot = await system.spawn(Agent("bot", provider, model, tools=weather.tools))

* :class:`MCPServer` connects to one server, over stdio (:meth:`MCPServer.stdio`, a
  child process) or Streamable HTTP (:meth:`MCPServer.http`), as an ``async with``
  service: it negotiates the protocol revision (the stateless 2026-07-28 one through
  ``server/discover``, else the ``initialize`` handshake of 2025-11-25 and earlier),
  lists the tools and follows their changes, puts a deadline on every request,
  cancels on the server what its caller cancels, and reconnects after the server
  died or forgot the session.
* :class:`MCPTool` is one of its tools as a :class:`~tinyagents.tool.Tool`, with the
  server's JSON Schema as it is; ``server.tools`` is a
  :class:`~tinyagents.tool.ToolRegistry` of them, for ``Agent(tools=...)``.
* :class:`MCPToolResult` is what ``tools/call`` answered; :class:`Progress` one
  progress notification.

The errors are in :mod:`tinyagents.errors`, under :class:`~tinyagents.errors.MCPError`.
"""

from ..errors import (
    MCPConnectionLost,
    MCPError,
    MCPProtocolError,
    MCPRequestError,
    MCPTimeout,
    MCPToolError,
    MCPVersionMismatch,
)
from ._client import MCPServer, MCPTool
from ._protocol import MCPToolResult, Progress

__all__ = [
    "MCPConnectionLost",
    "MCPError",
    "MCPProtocolError",
    "MCPRequestError",
    "MCPServer",
    "MCPTimeout",
    "MCPTool",
    "MCPToolError",
    "MCPToolResult",
    "MCPVersionMismatch",
    "Progress",
]
