"""The admin endpoint: its JSON operations, its token, /metrics, and clients that
misbehave (garbage, silence, never reading) without harm to the node."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket

import tinyagents as ta
from tinyagents._admin_client import (
    AdminErrorReply,
    AdminRefused,
    AdminUnreachable,
    _connect,
    admin_request,
    admin_watch,
)
from tinyagents.admin import (
    PROTOCOL_VERSION,
    WATCH_TYPES,
    AdminError,
    AdminServer,
    _watch_classes,
)
from tinyagents.cluster import GossipCluster, GossipConfig
from tinyagents.errors import SystemNotRunning
from tinyagents.metrics import record_llm_call
from tinyagents.transport import Transport

GUARD = 30


class Echo(ta.Actor):
    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if message == "llm":
            record_llm_call(
                provider="anthropic",
                model="claude-x",
                seconds=0.5,
                input_tokens=11,
                output_tokens=4,
            )
        return message


@asynccontextmanager
async def node(**options: Any) -> AsyncIterator[tuple[ta.ActorSystem, AdminServer]]:
    async with (
        ta.ActorSystem("node-a") as system,
        AdminServer(system, bind="127.0.0.1:0", **options) as admin,
    ):
        yield system, admin


def where(admin: AdminServer) -> str:
    host, port = admin.address
    return f"{host}:{port}"


async def raw(admin: AdminServer, *messages: str, token: str | None = None) -> list[Any]:
    """Send ``messages`` over one WebSocket and return the replies, one each."""
    replies = []
    async with _connect(where(admin), token) as ws:
        for message in messages:
            await ws.send_message(message)
            replies.append(json.loads(await ws.get_message()))
    return replies


async def test_status_actors_and_members_of_a_live_node() -> None:
    with trio.fail_after(GUARD):
        async with node() as (system, admin):
            echo = await system.spawn(Echo, name="echo")
            child_box: list[ta.ActorRef] = []

            class Parent(ta.Actor):
                async def started(self, ctx: ta.Context) -> None:
                    child_box.append(await ctx.spawn(Echo, name="kid"))

                async def receive(self, ctx: ta.Context, message: Any) -> Any:
                    return None

            await system.spawn(Parent, name="team", mailbox=ta.Bounded(8))
            await echo.ask("llm")
            echo.tell_nowait("hello")
            await echo.ask("sync")
            status = await admin_request(where(admin), None, "status")
            assert status["node"] == "node-a"
            assert status["version"] == ta.__version__
            assert status["actors"] == 3
            assert status["mailboxes"]["processed"] >= 3
            assert status["dead_letters"] == {"total": 0, "by_reason": {}}
            assert status["llm"] == {
                "anthropic": {"calls": 1, "errors": 0, "input_tokens": 11, "output_tokens": 4}
            }
            assert any(m["name"] == "tinyagents_actors" for m in status["metrics"])

            actors = await admin_request(where(admin), None, "actors")
            assert [a["path"] for a in actors] == ["/user/echo", "/user/team", "/user/team/kid"]
            echo_row = actors[0]
            assert echo_row["type"] == "Echo"
            assert echo_row["state"] == "running"
            assert echo_row["mailbox"]["capacity"] is None
            assert echo_row["mailbox"]["processed"] == 3
            assert actors[1]["mailbox"]["capacity"] == 8
            under = await admin_request(where(admin), None, "actors", path="/user/team")
            assert [a["path"] for a in under] == ["/user/team", "/user/team/kid"]
            assert await admin_request(where(admin), None, "actors", path="/user/te") == []

            # without a cluster, the node alone
            (alone,) = await admin_request(where(admin), None, "members")
            assert alone["name"] == "node-a"
            assert alone["status"] == "alive"


async def test_members_use_serfs_key_names() -> None:
    with trio.fail_after(GUARD):
        async with (
            ta.ActorSystem("a") as system_a,
            Transport(system_a),
            GossipCluster(system_a, tags={"role": "web"}, config=GossipConfig.scaled(0.1)) as a,
            AdminServer(system_a, bind="127.0.0.1:0") as admin,
            ta.ActorSystem("b") as system_b,
            GossipCluster(system_b, config=GossipConfig.scaled(0.1)) as b,
        ):
            await b.join(a.address)
            found = await admin_request(where(admin), None, "members")
            assert [m["name"] for m in found] == ["a", "b"]
            first = found[0]
            assert set(first) == {"name", "addr", "port", "tags", "status"}
            assert (first["addr"], first["port"]) == a.address
            assert first["tags"]["role"] == "web"
            assert "ta-transport" in first["tags"]
            assert {m["status"] for m in found} == {"alive"}


async def test_protocol_errors_are_answered_and_the_connection_goes_on() -> None:
    with trio.fail_after(GUARD):
        async with node() as (_, admin):
            replies = await raw(
                admin,
                "not json",
                "[1, 2]",
                json.dumps({"v": 99, "id": "x", "op": "status"}),
                json.dumps({"v": 1, "id": 7, "op": "reboot"}),
                json.dumps({"v": 1, "id": 8, "op": "actors", "path": 3}),
                json.dumps({"v": 1, "id": 9, "op": "watch", "types": "DeadLetter"}),
                json.dumps({"v": 1, "id": 10, "op": "status"}),
            )
            kinds = [r["error"]["type"] if not r["ok"] else "ok" for r in replies]
            assert kinds == [
                "BadRequest",
                "BadRequest",
                "UnsupportedVersion",
                "UnknownOperation",
                "BadRequest",
                "BadRequest",
                "ok",
            ]
            assert all(r["v"] == PROTOCOL_VERSION for r in replies)
            assert replies[3]["id"] == 7
            assert "status, members, actors, watch" in replies[3]["error"]["message"]
            assert replies[-1]["result"]["node"] == "node-a"


async def test_garbage_frames_and_oversized_messages() -> None:
    with trio.fail_after(GUARD):
        async with node() as (_, admin):
            async with _connect(where(admin), None) as ws:
                await ws.send_message(b"\xff\xfe\x00garbage")
                reply = json.loads(await ws.get_message())
                assert reply["error"]["type"] == "BadRequest"
                await ws.send_message("x" * (65 * 1024))  # above the request limit
                with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1009  # message too big
            assert (await admin_request(where(admin), None, "status"))["node"] == "node-a"


async def test_watch_streams_lifecycle_and_dead_letter_events() -> None:
    with trio.fail_after(GUARD):
        async with node() as (system, admin):
            got: list[dict[str, Any]] = []
            done = trio.Event()

            def on_message(message: dict[str, Any]) -> None:
                got.append(message)
                if len(got) == 3:
                    done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    admin_watch, where(admin), None, ["ActorStarted", "ActorStopped", "DeadLetter"],
                    on_message,
                )  # fmt: skip
                while admin.connections == 0 or not system.events.active:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                echo = await system.spawn(Echo, name="echo")
                await echo.stop()
                echo.tell_nowait({"late": True})
                await done.wait()
                nursery.cancel_scope.cancel()
            events = [message["event"] for message in got]
            assert [e["type"] for e in events] == ["ActorStarted", "ActorStopped", "DeadLetter"]
            assert events[0]["ref"] == "/user/echo"
            assert events[1]["reason"] == "stopped"
            assert events[2]["reason"] == "recipient_stopped"
            assert events[2]["message"] == {"late": True}


async def test_a_watcher_that_never_reads_loses_its_oldest_events_not_the_node() -> None:
    with trio.fail_after(GUARD):
        async with node() as (system, admin), trio.open_nursery() as nursery:
            connection = await trio_websocket.connect_websocket(
                nursery, admin.address[0], admin.address[1], "/", use_ssl=False
            )
            await connection.send_message(json.dumps({"v": 1, "id": 1, "op": "watch"}))
            assert json.loads(await connection.get_message())["ok"]
            # never read again: the node goes on, and this watcher loses events
            echo = await system.spawn(Echo, name="echo")
            for i in range(20_000):
                echo.tell_nowait("x" * 200)
                if i % 500 == 0:
                    await trio.lowlevel.checkpoint()
            await echo.stop()
            for _ in range(3_000):
                echo.tell_nowait("dead letter")
                await trio.lowlevel.checkpoint()
            assert await (await system.spawn(Echo)).ask("still serving") == "still serving"
            status = await admin_request(where(admin), None, "status")
            assert status["dead_letters"]["total"] >= 3_000
            while admin.events_lost == 0:  # noqa: ASYNC110 - set by the watcher's task
                await trio.sleep(0.01)
            await trio.aclose_forcefully(connection)
            nursery.cancel_scope.cancel()


async def test_garbage_silence_and_plain_http_do_no_harm(autojump_clock: Any) -> None:
    async with node() as (_, admin):
        # garbage
        stream = await trio.open_tcp_stream(*admin.address)
        await stream.send_all(b"\x00\xff" * 1000 + b"\r\n\r\n")
        assert b"400" in await stream.receive_some(1024)
        await stream.aclose()
        # a head that never ends
        stream = await trio.open_tcp_stream(*admin.address)
        await stream.send_all(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 3000)
        assert await stream.receive_some(1024) == b""  # closed, too long
        await stream.aclose()
        # silence: closed after the head timeout (the mock clock jumps there)
        stream = await trio.open_tcp_stream(*admin.address)
        with trio.fail_after(60):
            assert await stream.receive_some(1024) == b""
        await stream.aclose()
        # a WebSocket upgrade that is not one
        stream = await trio.open_tcp_stream(*admin.address)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        await stream.receive_some(1024)
        await stream.aclose()
        # still serving
        status = await admin_request(where(admin), None, "status")
        assert status["node"] == "node-a"


async def test_metrics_over_plain_http() -> None:
    with trio.fail_after(GUARD):
        async with node() as (system, admin):
            await system.spawn(Echo)
            host, port = admin.address
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                response = await client.get("/metrics")
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
                assert "# TYPE tinyagents_actors gauge\ntinyagents_actors 1\n" in response.text
                assert (await client.get("/other")).status_code == 404
                assert (await client.post("/metrics")).status_code == 405


async def test_a_token_is_checked_and_refusals_are_counted_and_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tinyagents.admin")
    with trio.fail_after(GUARD):
        async with node(token="s3cret-token") as (_, admin):
            with pytest.raises(AdminRefused, match="a token is needed"):
                await admin_request(where(admin), None, "status")
            with pytest.raises(AdminRefused, match="wrong token"):
                await admin_request(where(admin), "guess", "status")
            assert admin.refused == 2
            status = await admin_request(where(admin), "s3cret-token", "status")
            assert status["node"] == "node-a"
            host, port = admin.address
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                assert (await client.get("/metrics")).status_code == 401
                authorized = {"Authorization": "Bearer s3cret-token"}
                assert (await client.get("/metrics", headers=authorized)).status_code == 200
            assert admin.refused == 3
    assert "refused a connection" in caplog.text
    assert "s3cret" not in caplog.text
    assert "guess" not in caplog.text


async def test_arguments_and_lifecycle() -> None:
    async with ta.ActorSystem("a") as system:
        with pytest.raises(ValueError, match="not a loopback address"):
            AdminServer(system, bind="0.0.0.0:7373")
        AdminServer(system, bind="0.0.0.0:0", token="t")  # allowed with a token
        with pytest.raises(ValueError, match="empty"):
            AdminServer(system, token="")
        with pytest.raises(TypeError, match="token"):
            AdminServer(system, token=b"bytes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ActorSystem"):
            AdminServer("a")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="bind"):
            AdminServer(system, bind="127.0.0.1")
        async with AdminServer(system, bind="127.0.0.1:0") as first:
            with pytest.raises(AdminError, match="cannot listen"):
                async with AdminServer(system, bind=first.address):
                    pass
            with pytest.raises(AdminError, match="already started"):
                await first.__aenter__()
        with pytest.raises(AdminUnreachable):
            await admin_request(f"127.0.0.1:{first.address[1]}", None, "status")
    with pytest.raises(SystemNotRunning):
        async with AdminServer(system, bind="127.0.0.1:0"):
            pass


async def test_a_body_error_comes_out_plain() -> None:
    async with ta.ActorSystem("a") as system:
        with pytest.raises(ValueError, match="body"):
            async with AdminServer(system, bind="127.0.0.1:0"):
                raise ValueError("body")


async def test_agents_and_teams_are_listed_by_their_spec_type() -> None:
    from tinyagents.agent import Agent
    from tinyagents.team import Pipeline
    from tinyagents.testing import ScriptedProvider

    with trio.fail_after(10):
        async with (
            ta.ActorSystem("node-a") as system,
            AdminServer(system, bind=("127.0.0.1", 0)) as admin,
        ):
            bot = await system.spawn(Agent("bot", ScriptedProvider(), "m"), name="bot")
            await system.spawn(Pipeline([bot]), name="pipe")
            actors = await admin_request(where(admin), None, "actors")
            assert {a["path"]: a["type"] for a in actors} == {
                "/user/bot": "Agent",
                "/user/pipe": "Pipeline",
            }


async def test_a_watch_for_unknown_event_types_is_a_bad_request() -> None:
    with trio.fail_after(GUARD):
        async with node() as (system, admin):
            unknown, several, empty, known = await raw(
                admin,
                json.dumps({"v": 1, "id": 1, "op": "watch", "types": ["ActorStartd"]}),
                json.dumps({"v": 1, "id": 2, "op": "watch", "types": ["Nope", "DeadLetter", "X"]}),
                json.dumps({"v": 1, "id": 3, "op": "watch", "types": []}),
                json.dumps({"v": 1, "id": 4, "op": "watch", "types": ["DeadLetter"]}),
            )
            assert unknown["error"] == {
                "type": "BadRequest",
                "message": "unknown event type 'ActorStartd': the types are "
                + ", ".join(WATCH_TYPES),
            }
            assert several["error"]["message"].startswith("unknown event types 'Nope', 'X': ")
            assert empty["error"]["type"] == "BadRequest"
            assert known == {"v": 1, "id": 4, "ok": True, "result": {"watching": ["DeadLetter"]}}
            with pytest.raises(AdminErrorReply, match="unknown event type 'Bogus'") as caught:
                await admin_watch(where(admin), None, ["Bogus"], lambda message: None)
            assert caught.value.kind == "BadRequest"
            # the accepted watch ended with its connection, without waiting for an event
            await trio.testing.wait_all_tasks_blocked()
            assert admin.watchers == 0
            assert not system.events.active


def test_every_watch_type_names_an_event_class() -> None:
    from tinyagents import cluster, events

    classes = _watch_classes()
    assert tuple(classes) == WATCH_TYPES
    for name, cls in classes.items():
        assert cls is getattr(events if hasattr(events, name) else cluster, name)


async def test_a_watch_for_one_type_does_not_lose_events_of_other_types() -> None:
    with trio.fail_after(GUARD):
        async with node() as (system, admin), _connect(where(admin), None) as ws:
            gone = await system.spawn(Echo, name="gone")
            await gone.stop()
            await ws.send_message(json.dumps({"v": 1, "id": 5, "op": "watch",
                                              "types": ["ActorStarted"]}))  # fmt: skip
            assert json.loads(await ws.get_message())["ok"]
            assert admin.watchers == 1
            for _ in range(3 * 1024):  # more dead letters than a watcher's buffer, at once
                gone.tell_nowait("dead letter")
            await system.spawn(Echo, name="after")
            first = json.loads(await ws.get_message())
            assert first == {"v": 1, "id": 5, "event": first["event"]}  # not {"lost": n}
            assert (first["event"]["type"], first["event"]["ref"]) == (
                "ActorStarted",
                "/user/after",
            )
            assert admin.events_lost == 0
            assert system.dead_letters == 3 * 1024


async def test_status_counts_are_json_integers() -> None:
    class Fragile(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if message == "boom":
                raise ValueError("boom")
            return message

    with trio.fail_after(GUARD):
        async with node() as (system, admin):
            fragile = await system.spawn(Fragile, name="fragile")
            await (await system.spawn(Echo, name="echo")).ask("llm")
            with pytest.raises(ta.errors.ActorFailed):
                await fragile.ask("boom")  # restarted by the default supervisor
            await fragile.ask("after")
            await fragile.stop()
            fragile.tell_nowait("late")  # a dead letter
            (reply,) = await raw(admin, json.dumps({"v": 1, "id": 1, "op": "status"}))
            status = reply["result"]
            counts = [
                status["restarts"],
                *status["mailboxes"].values(),
                *status["dead_letters"]["by_reason"].values(),
                *status["llm"]["anthropic"].values(),
                *(m["value"] for m in status["metrics"] if "value" in m),
                *(m["count"] for m in status["metrics"] if "count" in m),
            ]
            assert all(type(count) is int for count in counts), counts
            assert status["restarts"] == 1
            assert status["dead_letters"]["by_reason"] == {
                "handler_failed": 1,
                "recipient_stopped": 1,
            }
            assert status["mailboxes"]["queued"] == 0
            assert isinstance(status["uptime"], float)


async def test_watch_streams_the_member_events_of_a_real_cluster() -> None:
    config = GossipConfig.scaled(0.1)
    with trio.fail_after(GUARD):
        async with (
            ta.ActorSystem("a") as system_a,
            GossipCluster(system_a, config=config) as a,
            AdminServer(system_a, bind="127.0.0.1:0") as admin,
            _connect(where(admin), None) as ws,
        ):
            request = {"v": 1, "id": "m", "op": "watch", "types": ["MemberJoined", "MemberLeft"]}
            await ws.send_message(json.dumps(request))
            assert json.loads(await ws.get_message())["ok"]  # subscribed from here on
            async with (
                ta.ActorSystem("b") as system_b,
                GossipCluster(system_b, tags={"role": "worker"}, config=config) as b,
            ):
                assert await b.join(a.address) == 1
                joined = json.loads(await ws.get_message())["event"]
                assert joined["type"] == "MemberJoined"
                assert joined["member"] == {
                    "name": "b",
                    "addr": b.address[0],
                    "port": b.address[1],
                    "tags": {"role": "worker"},
                    "status": "alive",
                }
            # b left gracefully on leaving its block
            left = json.loads(await ws.get_message())["event"]
            assert (left["type"], left["member"]["name"]) == ("MemberLeft", "b")
            assert left["member"]["status"] == "left"
            assert admin.events_lost == 0
