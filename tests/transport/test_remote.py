"""Remote refs between real nodes on 127.0.0.1: separate actor systems in one process,
each with its own Transport, talking over real TCP."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tinyagents import Actor, ActorRef, ActorSystem, Context, StopReason, Terminated
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.errors import (
    ActorFailed,
    ActorStopped,
    AskTimeout,
    FrameTooLarge,
    NodeUnreachable,
    NotSerializable,
    RemoteError,
    TurnSuspended,
    UnknownMessageType,
)
from tinyagents.events import DeadLetter, DeadLetterReason
from tinyagents.llm import Chunk
from tinyagents.router import ConsistentHash, GetRoutees
from tinyagents.testing import ScriptedProvider
from tinyagents.transport import MessageRegistry, Transport, TransportConfig, message
from tinyagents.transport._service import _error_from_wire

GUARD = 20  # seconds: a test that hangs fails instead (no timing is asserted)


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "boom":
            raise ValueError("no booms here")
        if message == "deadline":
            return ctx.deadline - trio.current_time()
        if message == "sender":
            return ctx.sender
        return message


class Sleeper(Actor):
    def __init__(self, received: trio.Event | None = None) -> None:
        self.received = received

    async def receive(self, ctx: Context, message: Any) -> Any:
        if self.received is not None:
            self.received.set()
        await trio.sleep_forever()


class Collector(Actor):
    def __init__(self, box: list[Any], event: trio.Event, expected: int = 1) -> None:
        self.box = box
        self.event = event
        self.expected = expected

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, tuple | list) and message and message[0] == "watch":
            ctx.watch(message[1])
            return "watching"
        self.box.append(message)
        if len(self.box) >= self.expected:
            self.event.set()
        return None


class Asker(Actor):
    """Asks the ref it is sent, and answers with what that ref answered."""

    async def receive(self, ctx: Context, message: Any) -> Any:
        target, question = message
        return await target.ask(question, timeout=10)


@message
@attrs.frozen
class Order:
    item: str
    count: int
    reply_to: ActorRef | None = None


@attrs.frozen
class NotRegistered:
    value: int


@asynccontextmanager
async def node(name: str, **options: Any) -> AsyncIterator[tuple[ActorSystem, Transport]]:
    async with (
        ActorSystem(name, shutdown_timeout=2) as system,
        Transport(system, **options) as transport,
    ):
        yield system, transport


def uri(transport: Transport, path: str) -> str:
    host, port = transport.address
    return f"tinyagents://{transport.node}@{host}:{port}{path}"


async def test_tell_and_ask_across_nodes() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            await system_b.spawn(Echo, name="echo")
            ref = system_a.ref_for(uri(transport_b, "/user/echo"))
            assert not ref.is_local
            assert ref.node == "b"
            assert ref.uri == "tinyagents://b/user/echo"
            assert await ref.ask("hello", timeout=10) == "hello"
            assert await ref.ask({"n": [1, 2.5, b"x", None]}, timeout=10) == {
                "n": [1, 2.5, b"x", None]
            }
            box: list[Any] = []
            done = trio.Event()
            await system_b.spawn(lambda: Collector(box, done, 100), name="collector")
            collector = system_a.ref_for(uri(transport_b, "/user/collector"))
            for i in range(100):
                await collector.tell(i)
            await done.wait()
            assert box == list(range(100))  # per-sender order is kept


class Recorder(Actor):
    """Keeps what it is told; answers an ask with everything it has seen before it."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def receive(self, ctx: Context, message: Any) -> Any:
        if ctx.asked:
            return [len(self.seen), message]
        self.seen.append(message)
        return None


async def test_asks_written_at_once_never_overtake_queued_frames_and_big_ones_arrive_whole() -> (
    None
):
    # an ask (and its answer) is written by the asking task itself when the connection
    # is idle; it must still come after the tells queued before it, and a frame bigger
    # than the socket takes at once must arrive whole
    big = bytes(range(256)) * 8192  # 2 MiB
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, transport_a), node("b") as (system_b, transport_b):
            await system_b.spawn(Recorder, name="recorder")
            ref = system_a.ref_for(uri(transport_b, "/user/recorder"))
            assert await ref.ask("first", timeout=10) == [0, "first"]
            told = 0
            for burst in (1, 50, 500):
                for _ in range(burst):
                    ref.tell_nowait(told)
                    told += 1
                assert await ref.ask("count", timeout=10) == [told, "count"]
            answers: list[Any] = []
            async with trio.open_nursery() as nursery:
                for i in range(3):

                    async def ask_big(i: int = i) -> None:
                        answers.append(await ref.ask([i, big], timeout=10))

                    nursery.start_soon(ask_big)
                    ref.tell_nowait(f"between {i}")
            assert sorted(answer[1][0] for answer in answers) == [0, 1, 2]
            assert all(answer[1][1] == big for answer in answers)
            assert await ref.ask("last", timeout=10) == [told + 3, "last"]
            assert transport_a.stats.frames_sent == transport_b.stats.frames_received


async def test_registered_messages_and_refs_inside_them_cross() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            box: list[Any] = []
            done = trio.Event()
            local = await system_a.spawn(lambda: Collector(box, done), name="inbox")
            await system_b.spawn(Echo, name="echo")
            echo = system_a.ref_for(uri(transport_b, "/user/echo"))
            answer = await echo.ask(Order("tea", 2, local), timeout=10)
            assert answer == Order("tea", 2, local)
            assert answer.reply_to is local  # our own ref came back as the local ref
            # a ref to a local actor arrives on the other node as a ref that works
            asker_b = await system_b.spawn(Asker, name="asker")
            asker = system_a.ref_for(uri(transport_b, "/user/asker"))
            echo_a = await system_a.spawn(Echo, name="echo")
            assert await asker.ask((echo_a, "ping"), timeout=10) == "ping"
            assert asker_b.is_local
            # the implicit sender crosses too
            sender = await echo.ask("sender", timeout=10, sender=echo_a)
            assert sender is echo_a


async def test_a_missing_target_fails_at_once_and_is_a_dead_letter_on_both_sides() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            ghost = system_a.ref_for(uri(transport_b, "/user/nobody"))
            async with system_b.events.subscribe(DeadLetter) as letters_b:
                with pytest.raises(ActorStopped, match="nobody"):
                    await ghost.ask("anyone?", timeout=math.inf)
                letter = await letters_b.receive()
            assert letter.reason is DeadLetterReason.RECIPIENT_STOPPED
            assert letter.message == "anyone?"
            before = system_a.dead_letters
            other = system_a.ref_for(uri(transport_b, "/user/nobody-either"))
            async with system_a.events.subscribe(DeadLetter) as letters_a:
                await other.tell("hello?")
                await letters_a.receive()
            assert system_a.dead_letters == before + 1
            assert not other.is_alive  # the node said nothing lives there


async def test_a_remote_failure_is_actor_failed_with_the_remote_type_and_text() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            await system_b.spawn(Echo, name="echo")
            ref = system_a.ref_for(uri(transport_b, "/user/echo"))
            with pytest.raises(ActorFailed) as caught:
                await ref.ask("boom", timeout=10)
            cause = caught.value.__cause__
            assert isinstance(cause, RemoteError)
            assert cause.type_name == "ValueError"
            assert cause.text == "no booms here"
            assert cause.node == "b"
            assert await ref.ask("still here", timeout=10) == "still here"  # restarted


async def test_unknown_and_unserializable_messages_fail_with_typed_errors() -> None:
    @attrs.frozen
    class OnlyHere:
        value: int

    with trio.fail_after(GUARD):
        own = MessageRegistry()
        own.register(OnlyHere, "tests.OnlyHere")
        async with (
            node("a", registry=own) as (system_a, _),
            node("b") as (system_b, transport_b),
        ):
            await system_b.spawn(Echo, name="echo")
            ref = system_a.ref_for(uri(transport_b, "/user/echo"))
            with pytest.raises(NotSerializable):
                await ref.ask(NotRegistered(1), timeout=10)
            # registered on the sender only: the receiver does not know the type id
            with pytest.raises(UnknownMessageType):
                await ref.ask(OnlyHere(3), timeout=10)
            assert await ref.ask(Prompt("built-in types are in every registry"), timeout=10)
            assert await ref.ask("fine", timeout=10) == "fine"


async def test_the_deadline_travels_with_the_ask() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            await system_b.spawn(Echo, name="echo")
            ref = system_a.ref_for(uri(transport_b, "/user/echo"))
            left = await ref.ask("deadline", timeout=7)
            assert 0 < left <= 7
            assert await ref.ask("deadline", timeout=math.inf) == math.inf


async def test_an_ask_times_out_and_the_late_reply_is_dropped() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            await system_b.spawn(Sleeper, name="sleeper")
            ref = system_a.ref_for(uri(transport_b, "/user/sleeper"))
            with pytest.raises(AskTimeout):
                await ref.ask("zzz", timeout=0.2)


async def test_remote_stop_ends_and_a_watch_sees_it_once() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            target = await system_b.spawn(Sleeper, name="sleeper")
            box: list[Any] = []
            got = trio.Event()
            watcher = await system_a.spawn(lambda: Collector(box, got), name="watcher")
            remote = system_a.ref_for(uri(transport_b, "/user/sleeper"))
            assert await watcher.ask(("watch", remote), timeout=10) == "watching"
            await trio.testing.wait_all_tasks_blocked()
            await remote.stop(grace=0)
            assert not remote.is_alive
            assert not target.is_alive
            await got.wait()
            (notice,) = box
            assert isinstance(notice, Terminated)
            assert notice.ref == remote
            assert notice.reason is StopReason.STOPPED


async def test_node_death_fails_pending_asks_and_terminates_watches() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _):
            box: list[Any] = []
            got = trio.Event()
            watcher = await system_a.spawn(lambda: Collector(box, got), name="watcher")
            outcome: list[BaseException] = []
            received = trio.Event()
            async with trio.open_nursery() as nursery, node("b") as (system_b, transport_b):
                await system_b.spawn(lambda: Sleeper(received), name="sleeper")
                remote = system_a.ref_for(uri(transport_b, "/user/sleeper"))
                await watcher.ask(("watch", remote), timeout=10)

                async def ask() -> None:
                    try:
                        await remote.ask("zzz", timeout=math.inf)
                    except Exception as error:
                        outcome.append(error)

                nursery.start_soon(ask)
                await received.wait()  # the ask reached node b
            # node b is gone: the ask fails with NodeUnreachable, not a timeout
            (error,) = outcome
            assert isinstance(error, NodeUnreachable)
            await got.wait()
            (notice,) = box
            assert notice.reason is StopReason.NODE_UNREACHABLE
            assert isinstance(notice.error, NodeUnreachable)
            # and a new ask to that node fails at once too
            with pytest.raises(NodeUnreachable):
                await remote.ask("anyone?", timeout=math.inf)


async def test_a_restarted_node_is_a_new_incarnation() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _):
            async with node("b") as (system_b, transport_b):
                echo_b = await system_b.spawn(Echo, name="echo")
                address = transport_b.address
                asker = await system_b.spawn(Asker, name="asker")
                echo_a = await system_a.spawn(Echo, name="echo")
                # node a learns a ref of node b's first incarnation through a message
                remote_asker = system_a.ref_for(uri(transport_b, "/user/asker"))
                old_ref = await remote_asker.ask((echo_a, "sender"), timeout=10)
                assert old_ref == remote_asker or old_ref is None or old_ref.node == "b"
                del echo_b, asker
            async with node("b", bind=address) as (system_b2, transport_b2):
                await system_b2.spawn(Echo, name="echo")
                fresh = system_a.ref_for(uri(transport_b2, "/user/echo"))
                assert await fresh.ask("again", timeout=10) == "again"


async def test_a_wrong_secret_is_refused_and_counted() -> None:
    with trio.fail_after(GUARD):
        async with (
            node("a", secret=b"the right secret") as (system_a, _),
            node("b", secret=b"a wrong secret!!") as (system_b, transport_b),
        ):
            await system_b.spawn(Echo, name="echo")
            ref = system_a.ref_for(uri(transport_b, "/user/echo"))
            with pytest.raises(NodeUnreachable, match="authentication failed"):
                await ref.ask("let me in", timeout=10)
            assert transport_b.stats.connections_refused == 1


async def test_the_right_secret_is_accepted() -> None:
    with trio.fail_after(GUARD):
        async with (
            node("a", secret=b"shared secret") as (system_a, _),
            node("b", secret=b"shared secret") as (system_b, transport_b),
        ):
            await system_b.spawn(Echo, name="echo")
            ref = system_a.ref_for(uri(transport_b, "/user/echo"))
            assert await ref.ask("hi", timeout=10) == "hi"


async def test_both_nodes_talking_at_once_share_one_connection() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, transport_a), node("b") as (system_b, transport_b):
            await system_a.spawn(Echo, name="echo")
            await system_b.spawn(Echo, name="echo")
            to_b = system_a.ref_for(uri(transport_b, "/user/echo"))
            to_a = system_b.ref_for(uri(transport_a, "/user/echo"))
            answers: list[Any] = []
            async with trio.open_nursery() as nursery:
                for i in range(5):
                    nursery.start_soon(lambda i=i: _ask_into(to_b, i, answers))
                    nursery.start_soon(lambda i=i: _ask_into(to_a, -i, answers))
            assert sorted(answers) == sorted([*range(5), *(-i for i in range(5))])
            await trio.sleep(0.1)
            opened = transport_a.stats.connections_opened + transport_b.stats.connections_opened
            assert opened == 1


def _held_accept(monkeypatch: pytest.MonkeyPatch, on: str, release: trio.Event) -> None:
    """Make node ``on`` wait for ``release`` between finishing an inbound handshake and
    using the connection (the window in which a simultaneous open can go wrong)."""
    from tinyagents.transport import _service

    accept = _service.accept_handshake

    async def held(stream: Any, reader: Any, local: Any, **options: Any) -> Any:
        identity = await accept(stream, reader, local, **options)
        if local.node == on:
            await release.wait()
        return identity

    monkeypatch.setattr(_service, "accept_handshake", held)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (state of the transports, polled)."""
    while True:
        if condition():
            return
        await trio.sleep(0.01)


@pytest.mark.parametrize(
    ("held", "first"),
    [
        # "b" still sets up the connection "a" dialed when "b" dials too: "a" keeps its
        # own (released once "a" has answered b's dial)
        ("b", "a"),
        # "a" still sets up the connection "b" dialed when "a" dials too: both
        # connections come up, and both nodes keep the one "a" dialed (released once
        # a's own connection is up)
        ("a", "b"),
    ],
)
async def test_a_simultaneous_open_loses_nothing_and_settles_on_one_connection(
    monkeypatch: pytest.MonkeyPatch, held: str, first: str
) -> None:
    release = trio.Event()
    _held_accept(monkeypatch, held, release)
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, transport_a), node("b") as (system_b, transport_b):
            systems = {"a": (system_a, transport_b), "b": (system_b, transport_a)}
            transports = {"a": transport_a, "b": transport_b}
            boxes: dict[str, list[Any]] = {"a": [], "b": []}
            done = {"a": trio.Event(), "b": trio.Event()}
            for name, (system, _) in systems.items():
                await system.spawn(
                    lambda b=boxes[name], e=done[name]: Collector(b, e, 5), name="collector"
                )
                await system.spawn(Echo, name="echo")
            second = "b" if first == "a" else "a"

            async def talk(name: str, answers: list[Any]) -> None:
                system, other = systems[name]
                collector = system.ref_for(uri(other, "/user/collector"))
                echo = system.ref_for(uri(other, "/user/echo"))
                for i in range(5):
                    collector.tell_nowait(f"{name}{i}")
                answers.append(await echo.ask(name, timeout=10))

            def released() -> bool:
                if held == "b":
                    stats = transport_a.stats
                    return stats.connections_refused + stats.connections_accepted >= 1
                return transport_a.peer("b").connection is not None

            answers: list[Any] = []
            async with (
                system_a.events.subscribe(DeadLetter) as dead_a,
                system_b.events.subscribe(DeadLetter) as dead_b,
            ):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(talk, first, answers)
                    # the first dial is through on its dialer; its acceptor is held
                    await _until(lambda: transports[first].peer(second).connection is not None)
                    nursery.start_soon(talk, second, answers)
                    await _until(released)
                    release.set()
                await done["a"].wait()
                await done["b"].wait()
                # both nodes use one connection, the one "a" (the smaller id) dialed
                await _until(
                    lambda: (
                        (to_b := transport_a.peer("b").connection) is not None
                        and (to_a := transport_b.peer("a").connection) is not None
                        and to_b.outbound
                        and not to_a.outbound
                    )
                )
                for events in (dead_a, dead_b):
                    with pytest.raises(trio.WouldBlock):
                        events.receive_nowait()
            assert sorted(answers) == ["a", "b"]
            assert boxes["b"] == [f"a{i}" for i in range(5)]
            assert boxes["a"] == [f"b{i}" for i in range(5)]


async def test_a_dial_that_finishes_while_its_transport_closes_is_closed_not_attached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the handshake's result may already be on its way when the transport closes (the
    # dialing task then resumes with it, not with Cancelled): the connection must be
    # closed, and the transport must still exit cleanly
    closed = trio.Event()
    finished = trio.Event()
    original_open = Transport._open
    original_close = Transport._close

    async def open_late(self: Transport, address: Any, node: str) -> Any:
        with trio.CancelScope(shield=True):
            await closed.wait()
            result = await original_open(self, address, node)
        finished.set()
        return result

    def close(self: Transport) -> None:
        original_close(self)
        if self.node == "a":
            closed.set()

    monkeypatch.setattr(Transport, "_open", open_late)
    monkeypatch.setattr(Transport, "_close", close)
    with trio.fail_after(GUARD):
        async with node("b") as (system_b, transport_b):
            await system_b.spawn(Echo, name="echo")
            async with (
                ActorSystem("a", shutdown_timeout=2) as system_a,
                system_a.events.subscribe(DeadLetter) as dead,
            ):
                async with Transport(system_a) as transport_a:
                    system_a.ref_for(uri(transport_b, "/user/echo")).tell_nowait("hello")
                    await _until(lambda: transport_a.peer("b").dialing)
                # the dial got through after a's transport had closed; a exited cleanly
                assert finished.is_set()
                assert transport_a.stats.connections_opened == 0
                assert (await dead.receive()).reason is DeadLetterReason.NODE_UNREACHABLE
            # b sees that connection end and forgets it
            await _until(lambda: transport_b.peer("a").connection is None)


async def _ask_into(ref: ActorRef, value: int, answers: list[Any]) -> None:
    answers.append(await ref.ask(value, timeout=10))


async def test_an_agent_asked_across_nodes_streams_its_deltas_back() -> None:
    provider = ScriptedProvider(["Hello from the other node."], chunk_size=5)
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            await system_b.spawn(Agent("bot", provider, "scripted-1"), name="bot")
            bot = system_a.ref_for(uri(transport_b, "/user/bot"))
            send, receive = trio.open_memory_channel[Chunk](100)
            chunks: list[Chunk] = []

            async def consume() -> None:
                async with receive:
                    async for chunk in receive:
                        chunks.append(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                response = await bot.ask(Prompt("hi", stream=send), timeout=10)
            assert isinstance(response, Response)
            assert response.text == "Hello from the other node."
            assert response.agent == "bot"
            text = "".join(chunk.delta for chunk in chunks if chunk.delta)
            assert text == "Hello from the other node."
            assert len(chunks) > 2


async def test_a_suspended_turn_is_resumed_across_nodes_with_decisions() -> None:
    from tinyagents.approval import Approve, Deny, Resume
    from tinyagents.llm import ChatResponse, Message, ToolCall, Usage
    from tinyagents.tool import tool

    sent: list[str] = []

    @tool(requires_approval=True)
    async def pay(amount: int) -> str:
        """Pay an amount."""
        sent.append(f"pay {amount}")
        return "paid"

    @tool(requires_approval=True)
    async def refund(amount: int) -> str:
        """Refund an amount."""
        sent.append(f"refund {amount}")
        return "refunded"

    answer = Message.assistant(
        tool_calls=[ToolCall("c1", "pay", {"amount": 5}), ToolCall("c2", "refund", {"amount": 9})]
    )
    provider = ScriptedProvider(
        [ChatResponse(answer, Usage(1, 1), "tool_calls"), lambda r: str(r.messages[-2:])]
    )
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            await system_b.spawn(Agent("bot", provider, "m", tools=[pay, refund]), name="bot")
            bot = system_a.ref_for(uri(transport_b, "/user/bot"))
            with pytest.raises(TurnSuspended) as info:
                await bot.ask(Prompt("settle up"), timeout=10)
            # typed as on the agent's node: the waiting calls, with their arguments
            assert info.value.agent == "bot"
            assert [(c.id, c.name, dict(c.arguments)) for c in info.value.waiting] == [
                ("c1", "pay", {"amount": 5}),
                ("c2", "refund", {"amount": 9}),
            ]
            assert "pay (c1)" in str(info.value)
            decisions = {"c1": Approve({"amount": 6}), "c2": Deny("not today")}
            response = await bot.ask(Resume(decisions), timeout=10)
    assert sent == ["pay 6"]
    assert "not approved: not today" in response.text
    assert response.tool_calls == 2


class Named(Actor):
    def __init__(self, node: str) -> None:
        self.node = node

    async def receive(self, ctx: Context, message: Any) -> Any:
        return [self.node, message]


async def test_a_consistent_hash_router_with_remote_routees() -> None:
    with trio.fail_after(GUARD):
        async with node("a") as (system_a, _), node("b") as (system_b, transport_b):
            local = await system_a.spawn(lambda: Named("a"), name="shard")
            await system_b.spawn(lambda: Named("b"), name="shard")
            remote = system_a.ref_for(uri(transport_b, "/user/shard"))
            router = await system_a.spawn(ConsistentHash([local, remote]), name="router")
            owners = {}
            for i in range(40):
                owner, key = await router.ask(f"key-{i}", timeout=10)
                assert key == f"key-{i}"
                owners[key] = owner
            assert set(owners.values()) == {"a", "b"}  # same path, both nodes on the ring
            for key, owner in owners.items():  # and stable
                assert (await router.ask(key, timeout=10))[0] == owner
            await remote.stop(grace=0)
            await trio.testing.wait_all_tasks_blocked()
            assert await router.ask(GetRoutees(), timeout=10) == [local]
            assert {(await router.ask(key, timeout=10))[0] for key in owners} == {"a"}


class Forwarder(Actor):
    def __init__(self, target: ActorRef) -> None:
        self.target = target

    async def receive(self, ctx: Context, message: Any) -> Any:
        await ctx.forward(self.target)


async def test_a_forwarded_ask_is_answered_across_three_nodes() -> None:
    with trio.fail_after(GUARD):
        async with (
            node("a") as (system_a, _),
            node("b") as (system_b, transport_b),
            node("c") as (system_c, transport_c),
        ):
            await system_c.spawn(Echo, name="echo")
            echo_on_c = system_b.ref_for(uri(transport_c, "/user/echo"))
            await system_b.spawn(lambda: Forwarder(echo_on_c), name="forwarder")
            forwarder = system_a.ref_for(uri(transport_b, "/user/forwarder"))
            # a asks b, b forwards to c, c's answer reaches a
            assert await forwarder.ask("via b", timeout=10) == "via b"
            with pytest.raises(ActorFailed) as caught:
                await forwarder.ask("boom", timeout=10)
            assert isinstance(caught.value.__cause__, RemoteError)
            assert caught.value.__cause__.text == "no booms here"


async def test_the_frame_limit_on_both_sides() -> None:
    small = TransportConfig(frame_limit=2048)
    with trio.fail_after(GUARD):
        async with (
            node("a", config=small) as (system_a, _),
            node("b") as (system_b, transport_b),
        ):
            await system_b.spawn(Echo, name="echo")
            echo = system_a.ref_for(uri(transport_b, "/user/echo"))
            # too large to send: the sender says so, nothing is sent
            with pytest.raises(FrameTooLarge) as caught:
                await echo.ask(b"x" * 4000, timeout=10)
            assert caught.value.limit == 2048
            assert await echo.ask("small", timeout=10) == "small"
        async with (
            node("a") as (system_a, _),
            node("b", config=small) as (system_b, transport_b),
        ):
            await system_b.spawn(Echo, name="echo")
            echo = system_a.ref_for(uri(transport_b, "/user/echo"))
            assert await echo.ask("small", timeout=10) == "small"
            # over the receiver's limit: b closes that connection and counts it
            with pytest.raises(NodeUnreachable):
                await echo.ask(b"x" * 4000, timeout=10)
            assert transport_b.stats.frames_too_large == 1
            assert await echo.ask("b goes on", timeout=10) == "b goes on"


@pytest.mark.parametrize(
    "data",
    ["not json", "[]", '{"agent": "bot"}', '{"agent": "bot", "detail": "x", "waiting": [1]}'],
)
def test_a_garbled_suspension_from_a_peer_is_a_remote_error(data: str) -> None:
    error = _error_from_wire(
        "suspended", data, "agent 'bot' has a suspended turn", "/user/bot", None, "b"
    )
    assert isinstance(error, RemoteError)
    assert error.type_name == "TurnSuspended"
    assert error.node == "b"
