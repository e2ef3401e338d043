"""The client's timing on trio's mock clock, with an in-process fake server: the
reconnection backoff and its bound, and request deadlines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

from tinyagents.errors import MCPConnectionLost, MCPTimeout
from tinyagents.mcp import MCPServer
from tinyagents.mcp._connection import Connection, Message, NotificationHandler


class FakeConnection(Connection):
    """Answers the handshake, lists one tool, and calls it (``hang`` never answers)."""

    def __init__(self, label: str, on_notification: NotificationHandler) -> None:
        super().__init__(label, on_notification)
        self.sent: list[Message] = []

    async def exchange(self, message: Message) -> Message:
        self.sent.append(message)
        method = message["method"]
        if method == "server/discover":
            return {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": -32601, "message": "no"},
            }
        if method == "initialize":
            result: dict[str, Any] = {"protocolVersion": "2025-11-25", "capabilities": {}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        elif message["params"]["name"] == "hang":
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                self.sent.append(self.cancelled(message["id"]))
                raise
        else:
            result = {"content": [{"type": "text", "text": "ok"}]}
        return {"jsonrpc": "2.0", "id": message["id"], "result": result}

    async def notify(self, message: Message) -> None:
        self.sent.append(message)

    async def aclose(self) -> None:
        self.lose(MCPConnectionLost("closed", server=self.label))


class FakeTransport:
    label = "fake"

    def __init__(self) -> None:
        self.opened: list[float] = []
        self.failing = 0  # how many of the next opens fail
        self.connections: list[FakeConnection] = []

    async def open(self, nursery: trio.Nursery, on_notification: NotificationHandler) -> Connection:
        self.opened.append(trio.current_time())
        if self.failing:
            self.failing -= 1
            raise MCPConnectionLost("refused", server=self.label)
        connection = FakeConnection(self.label, on_notification)
        self.connections.append(connection)
        return connection

    async def aclose(self) -> None:
        pass


def kill(transport: FakeTransport) -> None:
    transport.connections[-1].lose(MCPConnectionLost("died", server="fake"))


async def test_reconnection_backs_off_doubling(autojump_clock: trio.testing.MockClock) -> None:
    transport = FakeTransport()
    async with MCPServer(transport, reconnect_attempts=4, reconnect_backoff=0.5) as server:
        kill(transport)
        transport.failing = 3
        start = trio.current_time()
        assert (await server.call_tool("echo")).text == "ok"
        delays = [round(t - start, 6) for t in transport.opened[1:]]
        assert delays == [0.0, 0.5, 1.5, 3.5]  # 0.5, 1, 2 apart
        assert server.reconnects == 1


async def test_reconnection_gives_up_after_its_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = FakeTransport()
    async with MCPServer(transport, reconnect_attempts=3, reconnect_backoff=1.0) as server:
        kill(transport)
        transport.failing = 10
        start = trio.current_time()
        with pytest.raises(MCPConnectionLost, match="could not reconnect in 3 attempts"):
            await server.call_tool("echo")
        assert trio.current_time() - start == pytest.approx(3.0)  # 1 + 2
        transport.failing = 0
        assert (await server.call_tool("echo")).text == "ok"  # a later call tries again


async def test_every_request_has_a_deadline(autojump_clock: trio.testing.MockClock) -> None:
    transport = FakeTransport()
    async with MCPServer(transport, timeout=7) as server:
        start = trio.current_time()
        with pytest.raises(MCPTimeout, match="within 7 seconds"):
            await server.call_tool("hang")
        assert trio.current_time() - start == pytest.approx(7.0)
        with pytest.raises(MCPTimeout, match="within 2 seconds"):
            await server.call_tool("hang", timeout=2)
        sent = transport.connections[-1].sent
        assert [m["method"] for m in sent].count("notifications/cancelled") == 2
        assert (await server.call_tool("echo")).text == "ok"


async def test_concurrent_callers_share_one_reconnection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = FakeTransport()
    async with MCPServer(transport, reconnect_backoff=1.0) as server:
        kill(transport)
        transport.failing = 1
        results: list[str] = []

        async def call() -> None:
            results.append((await server.call_tool("echo")).text)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(call)
        assert results == ["ok"] * 5
        assert len(transport.connections) == 2


async def test_the_tools_are_relisted_after_a_reconnection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = FakeTransport()
    async with MCPServer(transport) as server:
        kill(transport)
        await server.call_tool("echo")
        await trio.sleep(1)
        methods = [m["method"] for m in transport.connections[-1].sent]
        assert "tools/list" in methods


def test_options_are_checked() -> None:
    transport: Any = FakeTransport()
    with pytest.raises(ValueError, match="protocol_version"):
        MCPServer(transport, protocol_version="2020-01-01")
    with pytest.raises(ValueError, match="timeout"):
        MCPServer(transport, timeout=0)
    with pytest.raises(ValueError, match="URL"):
        MCPServer.http("ftp://example.org")
    options: Mapping[str, Any] = {"reconnect_attempts": 0}
    with pytest.raises(ValueError, match="reconnect_attempts"):
        MCPServer(transport, **options)


async def test_a_server_outside_its_block_refuses_requests() -> None:
    server = MCPServer(FakeTransport())
    with pytest.raises(MCPConnectionLost, match="not open"):
        await server.call_tool("echo")
