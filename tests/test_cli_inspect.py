"""``tinyagents status | members | actors | watch`` against a live node: the node runs in
the test, the CLI as a subprocess (and in-process, in a worker thread, for the tables)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import tinyagents as ta
from tinyagents.admin import WATCH_TYPES, AdminServer
from tinyagents.cluster import GossipCluster, GossipConfig
from tinyagents.transport import Transport

GUARD = 60
TOKEN = "cli-test-token"


class Echo(ta.Actor):
    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        return message


@asynccontextmanager
async def live_admin(**options: Any) -> AsyncIterator[tuple[ta.ActorSystem, AdminServer]]:
    async with (
        ta.ActorSystem("cli-node") as system,
        Transport(system),
        GossipCluster(
            system, tags={"role": "web", "zone": "eu-1"}, config=GossipConfig.scaled(0.1)
        ),
        AdminServer(system, bind="127.0.0.1:0", **options) as admin,
    ):
        await system.spawn(Echo, name="echo")
        await system.spawn(Echo, name="other")
        yield system, admin


@asynccontextmanager
async def live_node(**options: Any) -> AsyncIterator[tuple[ta.ActorSystem, str]]:
    async with live_admin(**options) as (system, admin):
        yield system, where(admin)


def where(admin: AdminServer) -> str:
    host, port = admin.address
    return f"{host}:{port}"


def invoke(*args: str) -> Any:
    """The CLI in this process (CliRunner blocks, running trio.run itself: call it in a
    worker thread while the node runs in the test's)."""
    from typer.testing import CliRunner

    from tinyagents import cli as cli_module

    return CliRunner().invoke(cli_module.app, list(args))


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polls what the endpoint's tasks change
        await trio.sleep(0.01)


async def cli(*args: str, env: dict[str, str] | None = None) -> trio.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TINYAGENTS_")}
    environment.update(env or {})
    return await trio.run_process(
        [sys.executable, "-m", "tinyagents", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=environment,
    )


async def test_every_command_as_a_subprocess_with_json_output() -> None:
    with trio.fail_after(GUARD):
        async with live_node() as (_, addr):
            status = await cli("status", "--addr", addr, "--json")
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["node"] == "cli-node"

            members = await cli("members", "--json", env={"TINYAGENTS_ADDR": addr})
            assert members.returncode == 0, members.stderr
            (member,) = json.loads(members.stdout)
            assert member["name"] == "cli-node"
            assert member["tags"]["role"] == "web"

            actors = await cli("actors", "--addr", addr, "--json", "--path", "/user/echo")
            assert actors.returncode == 0
            assert [a["path"] for a in json.loads(actors.stdout)] == ["/user/echo"]

            table = await cli("actors", "--addr", addr)
            lines = table.stdout.decode().splitlines()
            assert lines[0].split() == [
                "Path", "Type", "State", "Mailbox", "Processed", "Dropped", "Restarts"
            ]  # fmt: skip
            assert lines[1].split()[:3] == ["/user/echo", "Echo", "running"]


async def test_filters_and_the_exit_status_when_nothing_matches() -> None:
    with trio.fail_after(GUARD):
        async with live_node() as (_, addr):
            found = await cli("members", "--addr", addr, "--status", "ali.*", "--tag", "zone=eu-.*")
            assert found.returncode == 0
            assert b"cli-node" in found.stdout
            for args in (["--status", "left"], ["--tag", "zone=us-.*"], ["--tag", "nope=.*"]):
                result = await cli("members", "--addr", addr, *args)
                assert result.returncode == 2
                assert result.stderr.decode().strip() == "error: no member matches the filters"
            bad = await cli("members", "--addr", addr, "--status", "(")
            assert bad.returncode == 2
            assert b"not a regular expression" in bad.stderr
            bad_tag = await cli("members", "--addr", addr, "--tag", "novalue")
            assert (bad_tag.returncode, bad_tag.stderr.strip()) == (
                2,
                b"error: --tag takes key=regexp, not 'novalue'",
            )
            nothing = await cli("actors", "--addr", addr, "--path", "/user/nobody")
            assert nothing.returncode == 2
            # an event type the endpoint cannot stream: one line naming those it can
            misspelt = await cli("watch", "--addr", addr, "--type", "DeadLetter", "--type", "Dead")
            assert misspelt.returncode == 2
            assert misspelt.stderr.decode().splitlines() == [
                f"error: unknown event type 'Dead': the types are {', '.join(WATCH_TYPES)}"
            ]


async def test_unreachable_refused_and_usage_errors() -> None:
    with trio.fail_after(GUARD):
        async with live_node(token=TOKEN) as (_, addr):
            missing = await cli("status", "--addr", addr)
            assert missing.returncode == 1
            assert missing.stderr.decode().splitlines() == [
                f"error: the node at {addr} refused the connection: a token is needed (--token)"
            ]
            wrong = await cli("status", "--addr", addr, "--token", "guess")
            assert wrong.returncode == 1
            assert b"wrong token" in wrong.stderr
            right = await cli(
                "status", "--json", env={"TINYAGENTS_ADDR": addr, "TINYAGENTS_TOKEN": TOKEN}
            )
            assert right.returncode == 0
        # the node is gone now: its port answers nothing
        gone = await cli("status", "--addr", addr)
        assert gone.returncode == 1
        (line,) = gone.stderr.decode().splitlines()
        assert line.startswith(f"error: no tinyagents node answers at {addr}: ")
        usage = await cli("status", "--addr", "127.0.0.1:notaport")
        assert usage.returncode == 2
        unknown_option = await cli("status", "--bogus")
        assert unknown_option.returncode == 2


async def test_no_arguments_prints_help_and_version_flag() -> None:
    with trio.fail_after(GUARD):
        bare = await cli()
        assert bare.returncode == 0
        text = bare.stdout.decode()
        for command in ("status", "members", "actors", "watch", "version", "stub-server"):
            assert command in text
        version = await cli("--version")
        assert (version.returncode, version.stdout.decode().strip()) == (0, ta.__version__)


async def test_watch_streams_events_and_ends_cleanly_on_ctrl_c() -> None:
    with trio.fail_after(GUARD):
        async with live_node() as (system, addr):
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "tinyagents", "watch", "--addr", addr, "--json",
                 "--type", "ActorStarted"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            assert process.stdout is not None
            assert process.stderr is not None
            buffer = b""
            # spawn actors until the watcher shows one (it may connect after the first)
            while b"\n" not in buffer:
                await system.spawn(Echo)
                with trio.move_on_after(0.2):
                    buffer += await process.stdout.receive_some(65536)
            event = json.loads(buffer.split(b"\n", 1)[0])
            assert event["type"] == "ActorStarted"
            assert event["ref"].startswith("/user/$")
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
            rest = b""
            while chunk := await process.stderr.receive_some(65536):
                rest += chunk
            assert b"Traceback" not in rest


def test_the_status_table_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tinyagents import cli as cli_module

    def fake_query(addr: str, token: str | None, op: str, **arguments: Any) -> Any:
        assert (addr, token, op) == ("127.0.0.1:7373", None, "status")
        return {
            "node": "n1",
            "version": "1.2.3",
            "uptime": 61.25,
            "actors": 4,
            "mailboxes": {"queued": 2, "processed": 1500, "dropped": 0},
            "dead_letters": {"total": 3, "by_reason": {"recipient_stopped": 3}},
            "restarts": 1,
            "llm": {"openai": {"calls": 2, "errors": 0, "input_tokens": 30, "output_tokens": 7}},
            "metrics": [],
        }

    monkeypatch.setattr(cli_module, "_query", fake_query)
    result = CliRunner().invoke(cli_module.app, ["status"])
    assert result.exit_code == 0
    rows = [line.split(None, 1) for line in result.output.splitlines()]
    assert [row[0] for row in rows] == [
        "node", "version", "uptime", "actors", "mailboxes", "dead", "restarts", "llm"
    ]  # fmt: skip
    assert "1,500 processed" in result.output
    assert "3 (recipient_stopped 3)" in result.output
    assert "2 calls, 0 errors, 30 input / 7 output tokens" in result.output


async def test_the_commands_in_process_against_a_live_node() -> None:
    with trio.fail_after(GUARD):
        async with live_node() as (_, addr):
            members = await trio.to_thread.run_sync(invoke, "members", "--addr", addr)
            assert members.exit_code == 0
            header, row = members.output.splitlines()
            assert header.split() == ["Name", "Address", "Status", "Tags"]
            assert row.split()[0] == "cli-node"
            assert row.split()[2] == "alive"
            assert "role=web" in row
            status = await trio.to_thread.run_sync(invoke, "status", "--addr", addr)
            assert status.exit_code == 0
            assert "cli-node" in status.output
            assert "no calls" in status.output

            actors = await trio.to_thread.run_sync(invoke, "actors", "--addr", addr)
            assert actors.exit_code == 0, actors.output
            header, *rows = actors.stdout.splitlines()
            assert header.split() == [
                "Path", "Type", "State", "Mailbox", "Processed", "Dropped", "Restarts"
            ]  # fmt: skip
            assert [row.split() for row in rows] == [
                ["/user/echo", "Echo", "running", "0/∞", "0", "0", "0"],
                ["/user/other", "Echo", "running", "0/∞", "0", "0", "0"],
            ]
            one = await trio.to_thread.run_sync(
                invoke, "actors", "--addr", addr, "--path", "/user/other"
            )
            assert one.exit_code == 0
            assert [row.split()[0] for row in one.stdout.splitlines()[1:]] == ["/user/other"]
            nothing = await trio.to_thread.run_sync(
                invoke, "actors", "--addr", addr, "--path", "/user/ech"
            )
            assert (nothing.exit_code, nothing.stdout) == (2, "")
            assert nothing.stderr == "error: no actor matches\n"


def test_version_in_process() -> None:
    for args in (["version"], ["--version"]):
        result = invoke(*args)
        assert (result.exit_code, result.stdout) == (0, f"{ta.__version__}\n")


async def test_watch_in_process_prints_events_and_the_events_it_lost() -> None:
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery, live_admin() as (system, admin):
            addr = where(admin)
            gone = await system.spawn(Echo, name="gone")
            await gone.stop()
            results: list[Any] = []

            async def watch() -> None:
                results.append(
                    await trio.to_thread.run_sync(
                        invoke, "watch", "--addr", addr, "--type", "DeadLetter"
                    )
                )

            nursery.start_soon(watch)
            await _until(lambda: admin.watchers == 1)
            # three buffers' worth at once: the watcher keeps the newest 1024
            for i in range(3 * 1024):
                gone.tell_nowait(f"late {i}")
            await _until(lambda: admin.events_sent == 1024)
            # leaving, the node closes the connection: the watch ends (exit status 1)
        (result,) = results
        assert result.exit_code == 1
        assert result.stderr == f"error: the node at {addr} closed the connection\n"
        lost, *lines = result.stdout.splitlines()
        assert lost == "... 2048 events lost (this client read too slowly)"
        assert len(lines) == 1024
        for i, line in zip(range(2048, 3 * 1024), lines, strict=True):
            moment, kind, *details = line.split()
            assert re.fullmatch(r"\d\d:\d\d:\d\d", moment)
            assert kind == "DeadLetter"
            assert " ".join(details) == (
                f"message=late {i} sender=None recipient=/user/gone reason=recipient_stopped"
            )
        assert admin.events_lost == 2048


async def test_watch_in_process_without_a_node_with_a_wrong_token_or_a_wrong_type() -> None:
    with trio.fail_after(GUARD):
        async with live_node(token=TOKEN) as (_, addr):
            for token, why in ((None, "a token is needed (--token)"), ("guess", "wrong token")):
                args = ["watch", "--addr", addr, *(["--token", token] if token else [])]
                refused = await trio.to_thread.run_sync(invoke, *args)
                assert (refused.exit_code, refused.stdout) == (1, "")
                assert refused.stderr == (
                    f"error: the node at {addr} refused the connection: {why}\n"
                )
            misspelt = await trio.to_thread.run_sync(
                invoke, "watch", "--addr", addr, "--token", TOKEN, "--type", "ActorStart"
            )
            assert misspelt.exit_code == 2
            assert misspelt.stderr.startswith("error: unknown event type 'ActorStart': ")
        unreachable = await trio.to_thread.run_sync(invoke, "watch", "--addr", addr)
        assert (unreachable.exit_code, unreachable.stdout) == (1, "")
        (line,) = unreachable.stderr.splitlines()
        assert line.startswith(f"error: no tinyagents node answers at {addr}: ")


def _documented() -> dict[str, str]:
    """``command -> output`` of the console blocks of docs/cli.md (first occurrence)."""
    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    found: dict[str, str] = {}
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        for command, output in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", block, flags=re.M):
            found.setdefault(command, output)
    return found


class Desk(ta.Actor):
    """The team of docs/cli.md's node: two agents."""

    async def started(self, ctx: ta.Context) -> None:
        from tinyagents.agent import Agent
        from tinyagents.testing import ScriptedProvider

        provider = ScriptedProvider(default="Done.")
        await ctx.spawn(Agent("writer", provider, "any-model"), name="writer")
        await ctx.spawn(Agent("editor", provider, "any-model"), name="editor")

    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        return None


async def test_the_docs_show_what_actors_and_a_misspelt_watch_print() -> None:
    from tinyagents.agent import Agent, Prompt
    from tinyagents.testing import ScriptedProvider

    documented = _documented()
    with trio.fail_after(GUARD):
        async with (
            ta.ActorSystem("node-a") as system,
            AdminServer(system, bind="127.0.0.1:0") as admin,
        ):
            bot = ScriptedProvider(default="Hello!")
            await (await system.spawn(Agent("bot", bot, "any-model"), name="bot")).ask(Prompt("Hi"))
            await system.spawn(Desk, name="desk")
            for command in ("actors", "actors --path /user/desk", "watch --type ActorStartd"):
                result = await trio.to_thread.run_sync(
                    invoke, *command.split(), "--addr", where(admin)
                )
                printed = "".join(line.rstrip() + "\n" for line in result.output.splitlines())
                assert printed == documented[f"tinyagents {command}"], command
