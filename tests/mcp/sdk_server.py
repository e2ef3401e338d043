"""An MCP server written with the official SDK, for the client's tests.

``python sdk_server.py`` serves over stdio; ``python sdk_server.py
http [PORT]`` serves Streamable HTTP on 127.0.0.1 on PORT (by default a free one) and
prints ``listening on <url>`` once it accepts connections.

Tools: ``add`` (two integers), ``slow`` (sleeps in steps, reporting progress after
each, and records a cancellation in the file named by ``MCP_TEST_CANCEL_LOG``),
``fail`` (raises), ``grow`` (adds the tool ``extra`` and announces the new list).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer[Any] = MCPServer("tinyagents-test", version="1.0", log_level="ERROR")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Sleep for ``steps`` tenths of a second, reporting progress after each."""
    try:
        for step in range(steps):
            await anyio.sleep(0.1)
            await ctx.report_progress(step + 1, steps, f"step {step + 1}")
    except anyio.get_cancelled_exc_class():
        log = os.environ.get("MCP_TEST_CANCEL_LOG")
        if log:
            # written at once: an await here, in a cancelled scope, would not run
            with open(log, "a") as file:  # noqa: ASYNC230
                file.write("cancelled\n")
        raise
    return f"slept {steps} steps"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with ``reason``."""
    raise ToolError(reason)


def extra() -> str:
    """A tool that exists once ``grow`` has run."""
    return "extra!"


@server.tool()
async def grow(ctx: Context) -> str:
    """Add the tool ``extra`` and announce that the tool list changed."""
    server.add_tool(extra)
    await ctx.notify_tools_changed()  # to subscriptions/listen streams (2026-07-28)
    try:
        await ctx.request_context.session.send_tool_list_changed()  # to the session (earlier)
    except Exception:
        pass
    return "grown"


def main() -> None:
    if sys.argv[1:2] == ["http"]:
        import uvicorn

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
        port = sock.getsockname()[1]
        app = server.streamable_http_app()
        config = uvicorn.Config(app, log_level="warning")

        async def serve() -> None:
            uv = uvicorn.Server(config)
            async with anyio.create_task_group() as tg:
                tg.start_soon(uv.serve, [sock])
                while not uv.started:  # noqa: ASYNC110 - uvicorn has no event for it
                    await anyio.sleep(0.01)
                print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)

        anyio.run(serve)
    else:
        server.run()


if __name__ == "__main__":
    main()
