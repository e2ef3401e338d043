"""The MCP client against real servers: one written with the official SDK, over stdio
and over Streamable HTTP, in both protocol eras; and a hand-written one that
misbehaves (garbage lines, paging, dying in the middle of a call, never answering).

Real processes run on the real clock: the ``fail_after`` guards are generous, and no
test asserts how long something took."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import tinyagents as ta
from tinyagents.agent import Agent, Prompt
from tinyagents.errors import (
    MCPConnectionLost,
    MCPProtocolError,
    MCPTimeout,
    MCPToolError,
    MCPVersionMismatch,
    ToolError,
)
from tinyagents.llm import ChatResponse, Message, ToolCall, Usage
from tinyagents.mcp import MCPServer, MCPTool, Progress
from tinyagents.testing import ScriptedProvider

pytest.importorskip("mcp")

HERE = Path(__file__).parent
SDK_SERVER = str(HERE / "sdk_server.py")
BAD_SERVER = str(HERE / "bad_server.py")
GUARD = 20  # seconds: a guard against a hang, never a timing assertion


@pytest.fixture(scope="module")
def cancel_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp") / "cancelled.log"


def start_http_server(
    cancel_log: Path, port: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start the SDK server serving Streamable HTTP on 127.0.0.1 (on ``port``, by
    default a free one); the process and its URL, once it accepts connections."""
    process = subprocess.Popen(
        [sys.executable, SDK_SERVER, "http", *([str(port)] if port is not None else [])],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "MCP_TEST_CANCEL_LOG": str(cancel_log)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        stop_http_server(process)
        raise AssertionError(f"the SDK server did not start: {line!r}")
    return process, line.split()[-1]


def stop_http_server(process: subprocess.Popen[str], *, kill: bool = False) -> None:
    if kill:
        process.kill()
    else:
        process.terminate()
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture(scope="module")
def http_url(cancel_log: Path) -> Iterator[str]:
    """The SDK server serving Streamable HTTP on a free port of 127.0.0.1."""
    process, url = start_http_server(cancel_log)
    try:
        yield url
    finally:
        stop_http_server(process)


async def heard_of_cancellation(log: Path) -> None:
    """Wait until the server's slow tool wrote that it was cancelled."""
    while "cancelled" not in await trio.Path(log).read_text():  # noqa: ASYNC110
        await trio.sleep(0.05)


def make(kind: str, http_url: str, cancel_log: Path, **options: Any) -> MCPServer:
    if kind == "stdio":
        return MCPServer.stdio(
            sys.executable, SDK_SERVER, env={"MCP_TEST_CANCEL_LOG": str(cancel_log)}, **options
        )
    return MCPServer.http(http_url, **options)


ERAS = [(None, "2026-07-28"), ("2025-11-25", "2025-11-25")]


@pytest.mark.parametrize("kind", ["stdio", "http"])
@pytest.mark.parametrize(("wanted", "negotiated"), ERAS, ids=["negotiated", "handshake"])
async def test_the_sdk_server_lists_calls_reports_progress_and_fails(
    kind: str, wanted: str | None, negotiated: str, http_url: str, cancel_log: Path
) -> None:
    with trio.fail_after(GUARD):
        async with make(kind, http_url, cancel_log, protocol_version=wanted) as server:
            assert server.protocol_version == negotiated
            assert server.server_info["name"] == "tinyagents-test"
            assert {"add", "slow", "fail", "grow"} <= set(server.tools.names())
            add = server.tools["add"]
            assert isinstance(add, MCPTool)
            assert isinstance(add, ta.tool.Tool)
            schema = add.spec.parameters
            assert schema["type"] == "object"
            assert set(schema["properties"]) == {"a", "b"}  # the server's schema, as it is
            assert add.spec.description == "Add two integers."

            assert (await server.call_tool("add", {"a": 2, "b": 3})).text == "5"
            assert await add.call({"a": 20, "b": 22}) == "42"

            failed = await server.call_tool("fail", {"reason": "no luck"})
            assert failed.is_error
            assert "no luck" in failed.text
            with pytest.raises(MCPToolError, match="no luck") as caught:
                await server.tools["fail"].call({"reason": "no luck"})
            assert isinstance(caught.value, ToolError)
            assert caught.value.tool == "fail"

            updates: list[Progress] = []
            done = await server.call_tool("slow", {"steps": 3}, progress=updates.append)
            assert done.text == "slept 3 steps"
            assert [(u.tool, u.progress, u.total) for u in updates] == [
                ("slow", 1.0, 3.0),
                ("slow", 2.0, 3.0),
                ("slow", 3.0, 3.0),
            ]
            assert updates[0].message == "step 1"


@pytest.mark.parametrize("kind", ["stdio", "http"])
@pytest.mark.parametrize(("wanted", "negotiated"), ERAS, ids=["negotiated", "handshake"])
async def test_a_cancelled_call_returns_at_once_and_the_server_stays_usable(
    kind: str, wanted: str | None, negotiated: str, http_url: str, cancel_log: Path
) -> None:
    await trio.Path(cancel_log).write_text("")
    with trio.fail_after(GUARD):
        async with make(kind, http_url, cancel_log, protocol_version=wanted) as server:
            with trio.move_on_after(0.3) as scope:
                await server.call_tool("slow", {"steps": 100})  # 10 s if not cancelled
            assert scope.cancelled_caught
            assert (await server.call_tool("add", {"a": 1, "b": 1})).text == "2"
            # the server heard of it: its handler was cancelled
            await heard_of_cancellation(cancel_log)


@pytest.mark.parametrize("kind", ["stdio", "http"])
@pytest.mark.parametrize(("wanted", "negotiated"), ERAS, ids=["negotiated", "handshake"])
async def test_the_tools_follow_the_servers_list_changed(
    kind: str, wanted: str | None, negotiated: str, http_url: str, cancel_log: Path
) -> None:
    with trio.fail_after(GUARD):
        async with make(kind, http_url, cancel_log, protocol_version=wanted) as server:
            registry = server.tools
            await server.call_tool("grow")
            while "extra" not in registry:  # noqa: ASYNC110 - changed by the client's task
                await trio.sleep(0.02)
            assert await registry["extra"].call({}) == "extra!"


async def test_a_request_past_its_deadline_times_out_and_is_cancelled(
    http_url: str, cancel_log: Path
) -> None:
    await trio.Path(cancel_log).write_text("")
    with trio.fail_after(GUARD):
        async with make("stdio", http_url, cancel_log) as server:
            with pytest.raises(MCPTimeout) as caught:
                await server.call_tool("slow", {"steps": 100}, timeout=0.3)
            assert caught.value.method == "tools/call"
            assert caught.value.timeout == 0.3
            assert isinstance(caught.value, TimeoutError)
            await heard_of_cancellation(cancel_log)
            assert (await server.call_tool("add", {"a": 1, "b": 2})).text == "3"


async def test_a_stale_http_session_is_replaced(http_url: str, cancel_log: Path) -> None:
    with trio.fail_after(GUARD):
        async with MCPServer.http(http_url, protocol_version="2025-11-25") as server:
            conn = server._conn
            assert conn is not None
            conn.session_id = "0" * 32  # as if the server had restarted and forgotten it
            assert (await server.call_tool("add", {"a": 4, "b": 4})).text == "8"
            assert server._conn is not conn
            assert server.reconnects == 1


@pytest.mark.parametrize(("wanted", "negotiated"), ERAS, ids=["negotiated", "handshake"])
async def test_an_http_server_that_dies_mid_call_fails_the_call_and_its_successor_is_used(
    wanted: str | None, negotiated: str, tmp_path: Path
) -> None:
    log = tmp_path / "cancelled.log"
    process, url = start_http_server(log)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        with trio.fail_after(GUARD):
            async with MCPServer.http(
                url, protocol_version=wanted, reconnect_backoff=0.05
            ) as server:
                assert server.protocol_version == negotiated
                under_way = trio.Event()
                async with trio.open_nursery() as nursery:

                    async def call() -> None:
                        with pytest.raises(MCPConnectionLost):
                            await server.call_tool(
                                "slow", {"steps": 200}, progress=lambda *_: under_way.set()
                            )

                    nursery.start_soon(call)
                    await under_way.wait()  # the server is working on it
                    await trio.to_thread.run_sync(lambda: stop_http_server(process, kill=True))
                # a new server on the same address (it knows no session of the old one)
                process, _ = await trio.to_thread.run_sync(start_http_server, log, port)
                assert (await server.call_tool("add", {"a": 2, "b": 3})).text == "5"
                assert server.reconnects >= 1
    finally:
        if process.poll() is None:
            stop_http_server(process)


def calls(name: str, arguments: dict[str, Any]) -> ChatResponse:
    message = Message.assistant(tool_calls=[ToolCall("call-1", name, arguments)])
    return ChatResponse(message, Usage(10, 5), "tool_calls")


@pytest.mark.parametrize("kind", ["stdio", "http"])
async def test_an_agent_calls_an_mcp_tool(kind: str, http_url: str, cancel_log: Path) -> None:
    provider = ScriptedProvider(
        [
            calls("math_add", {"a": 19, "b": 23}),
            lambda request: f"The sum is {request.messages[-1].content}.",
        ]
    )
    with trio.fail_after(GUARD):
        async with (
            make(kind, http_url, cancel_log, prefix="math_") as server,
            ta.ActorSystem("mcp") as system,
        ):
            bot = await system.spawn(Agent("bot", provider, "m", tools=server.tools))
            response = await bot.ask(Prompt("What is 19 + 23?"), timeout=GUARD)
    assert response.text == "The sum is 42."
    assert response.tool_calls == 1
    offered = {spec.name: spec for spec in provider.requests[0].tools}
    assert {"math_add", "math_slow", "math_fail", "math_grow"} <= set(offered)
    assert set(offered["math_add"].parameters["properties"]) == {"a", "b"}


# -- the misbehaving server --------------------------------------------------------------


def bad(*args: str, **options: Any) -> MCPServer:
    return MCPServer.stdio(sys.executable, BAD_SERVER, *args, **options)


async def test_garbage_is_dropped_and_every_page_of_tools_is_listed() -> None:
    with trio.fail_after(GUARD):
        async with bad() as server:
            assert server.protocol_version == "2025-11-25"  # no server/discover there
            assert server.tools.names() == ["echo", "die", "hang"]
            assert (await server.call_tool("echo", {"text": "hi"})).text == "hi"
            conn = server._conn
            assert conn is not None
            assert conn.garbage >= 8  # two bad lines before each answer


async def test_a_server_that_dies_mid_call_fails_the_call_and_is_restarted() -> None:
    with trio.fail_after(GUARD):
        async with bad(reconnect_backoff=0.05) as server:
            with pytest.raises(MCPConnectionLost) as caught:
                await server.call_tool("die")
            assert caught.value.returncode == 3
            assert "exited with status 3" in str(caught.value)
            assert "about to die" in str(caught.value)  # its stderr, quoted
            assert "about to die" in server.stderr_tail()
            assert (await server.call_tool("echo", {"text": "back"})).text == "back"
            assert server.reconnects == 1


async def test_a_server_that_never_answers_hits_the_deadline() -> None:
    with trio.fail_after(GUARD):
        async with bad(timeout=5) as server:
            with pytest.raises(MCPTimeout):
                await server.call_tool("hang", timeout=0.2)
            assert (await server.call_tool("echo", {"text": "still here"})).text == "still here"


async def test_a_repeated_cursor_is_a_protocol_error() -> None:
    with trio.fail_after(GUARD), pytest.raises(MCPProtocolError, match="repeats the cursor"):
        async with bad("--page-loop"):
            pass


async def test_pinning_the_stateless_revision_on_a_handshake_server_is_a_mismatch() -> None:
    with trio.fail_after(GUARD), pytest.raises(MCPVersionMismatch):
        async with bad(protocol_version="2026-07-28"):
            pass


async def test_a_program_that_cannot_start_is_a_lost_connection(tmp_path: Path) -> None:
    with pytest.raises(MCPConnectionLost, match="could not be started"):
        async with MCPServer.stdio(tmp_path / "no-such-program"):
            pass


async def test_an_unreachable_http_server_is_a_lost_connection() -> None:
    from tinyagents.testing._ports import free_port

    url = f"http://127.0.0.1:{free_port()}/mcp"
    with trio.fail_after(GUARD), pytest.raises(MCPConnectionLost):
        async with MCPServer.http(url):
            pass
