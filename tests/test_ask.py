"""An ask always ends: in a reply, AskTimeout, ActorStopped, MessageDropped, ActorFailed or
MailboxFull (DESIGN.md sections 2 and 3). One test per outcome and way of reaching it."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from tinyagents import (
    Actor,
    ActorRef,
    ActorSystem,
    Bounded,
    Context,
    DeadLetter,
    DeadLetterReason,
    Overflow,
    Reply,
)
from tinyagents.errors import (
    ActorFailed,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    MessageDropped,
    ReplyError,
)

Job = Callable[[Context], Awaitable[Any]]


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


class Probe(Actor):
    """Runs the async function it is sent inside its handler and answers its result."""

    async def receive(self, ctx: Context, message: Job) -> Any:
        return await message(ctx)


class Gated(Actor):
    """Waits for ``gate`` when handling ``"wait"``; answers every message with itself."""

    def __init__(self, gate: trio.Event, log: list[Any] | None = None) -> None:
        self.gate = gate
        self.log = log if log is not None else []

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        self.log.append(message)
        return message


async def capture(ref: ActorRef, message: Any, results: dict[Any, Any], **kwargs: Any) -> None:
    """Ask and keep what the ask ended in (the reply or the exception) under ``message``."""
    try:
        results[message] = ("reply", await ref.ask(message, **kwargs))
    except Exception as exc:
        results[message] = ("error", exc)


async def busy(ref: ActorRef) -> None:
    """Make a Gated actor take "wait" and block on its gate."""
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    assert ref.statistics().busy


def drain(events: Any) -> list[Any]:
    got = []
    while True:
        try:
            got.append(events.receive_nowait())
        except trio.WouldBlock:
            return got


# -- replies ---------------------------------------------------------------------------


async def test_the_reply_is_the_handlers_return_value() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo)
        assert await ref.ask("ping") == "ping"
        assert await ref.ask(None) is None
        assert await ref.ask(("a", 1), timeout=math.inf) == ("a", 1)


async def test_ctx_reply_takes_precedence_over_the_return_value() -> None:
    seen: list[bool] = []

    class Replier(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            seen.append(ctx.asked)
            ctx.reply("from ctx.reply")
            seen.append(ctx.asked)
            return "from return"

    async with ActorSystem() as system:
        ref = await system.spawn(Replier)
        assert await ref.ask("x") == "from ctx.reply"
        assert await ref.ask("y") == "from ctx.reply"
    assert seen == [True, False, True, False]


async def test_a_detached_reply_is_answered_later_from_another_task() -> None:
    send, receive = trio.open_memory_channel[Reply](1)

    class Detacher(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            if message == "detach":
                await send.send(ctx.detach_reply())
                return "ignored return value"
            return message

    async with ActorSystem() as system:
        ref = await system.spawn(Detacher)
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "detach", results)
                reply = await receive.receive()
                await trio.testing.wait_all_tasks_blocked()
                assert not reply.done
                assert "detach" not in results
                # the actor is free for other messages while the reply is pending
                assert await ref.ask("meanwhile") == "meanwhile"
                assert "detach" not in results

                async def answer() -> None:
                    reply.send("answered later")

                nursery.start_soon(answer)
        assert results["detach"] == ("reply", "answered later")
        assert reply.done
        with pytest.raises(ReplyError):
            reply.send("twice")
        with pytest.raises(ReplyError):
            reply.fail(RuntimeError("too late"))


async def test_a_detached_reply_can_fail_the_ask_with_any_error() -> None:
    send, receive = trio.open_memory_channel[Reply](1)

    class Detacher(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            await send.send(ctx.detach_reply())

    error = LookupError("not found")
    async with ActorSystem() as system:
        ref = await system.spawn(Detacher)
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "q", results)
                reply = await receive.receive()
                reply.fail(error)
        assert results["q"] == ("error", error)


# -- AskTimeout ----------------------------------------------------------------------------


async def test_ask_timeout_after_exactly_the_timeout_and_the_late_reply_is_a_dead_letter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate), name="slow")
        async with system.events.subscribe(DeadLetter) as events:
            start = trio.current_time()
            with pytest.raises(AskTimeout) as info:
                await ref.ask("wait", timeout=2.5)
            assert trio.current_time() - start == 2.5
            assert info.value.timeout == 2.5
            assert info.value.path == "/user/slow"
            assert drain(events) == []
            before = system.dead_letters

            gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert drain(events) == [
                DeadLetter("wait", ref, None, DeadLetterReason.LATE_REPLY),
            ]
            assert system.dead_letters == before + 1
        assert await ref.ask("alive") == "alive"


async def test_ask_without_a_timeout_uses_the_systems_ask_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with ActorSystem(ask_timeout=7.0) as system:
        ref = await system.spawn(lambda: Gated(gate))
        start = trio.current_time()
        with pytest.raises(AskTimeout) as info:
            await ref.ask("wait")
        assert trio.current_time() - start == 7.0
        assert info.value.timeout == 7.0
        gate.set()


async def test_a_late_detached_reply_is_a_dead_letter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    replies: list[Reply] = []

    class Detacher(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            replies.append(ctx.detach_reply())

    async with ActorSystem() as system:
        ref = await system.spawn(Detacher)
        async with system.events.subscribe(DeadLetter) as events:
            with pytest.raises(AskTimeout):
                await ref.ask("q", timeout=1)
            replies[0].send("too late")
            assert drain(events) == [
                DeadLetter("too late", ref, None, DeadLetterReason.LATE_REPLY),
            ]


async def test_ask_timeout_while_waiting_for_room_sends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate, log), mailbox=Bounded(1))
        await busy(ref)
        await ref.tell("fill")
        start = trio.current_time()
        with pytest.raises(AskTimeout):
            await ref.ask("never sent", timeout=4)
        assert trio.current_time() - start == 4
        assert ref.statistics().length == 1
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask("after") == "after"
    assert log == ["wait", "fill", "after"]


# -- ActorStopped --------------------------------------------------------------------------


async def test_ask_to_an_actor_that_already_stopped_raises_actor_stopped() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo, name="gone")
        await ref.stop()
        with trio.fail_after(10), pytest.raises(ActorStopped) as info:
            await ref.ask("anyone?")
        assert info.value.path == "/user/gone"


async def test_ask_waiting_in_the_mailbox_when_the_actor_stops_raises_actor_stopped() -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate, log), name="slow")
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "wait", results)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(capture, ref, "queued", results)
                await trio.testing.wait_all_tasks_blocked()
                assert ref.statistics().length == 1
                nursery.start_soon(ref.stop)
                await trio.testing.wait_all_tasks_blocked()
                # the queued ask fails at once, not once the handler in hand has ended
                kind, error = results.pop("queued")
                assert kind == "error"
                assert isinstance(error, ActorStopped)
                assert error.path == "/user/slow"
                assert results == {}
                gate.set()
        assert results["wait"] == ("reply", "wait")
    assert log == ["wait"]


async def test_ask_with_a_pending_detached_reply_raises_actor_stopped_when_the_actor_stops() -> (
    None
):
    replies: list[Reply] = []

    class Detacher(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            replies.append(ctx.detach_reply())

    async with ActorSystem() as system:
        ref = await system.spawn(Detacher, name="d")
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "q", results)
                await trio.testing.wait_all_tasks_blocked()
                assert len(replies) == 1
                assert results == {}
                await ref.stop()
        kind, error = results["q"]
        assert kind == "error"
        assert isinstance(error, ActorStopped)
        assert error.path == "/user/d"
        assert replies[0].done
        with pytest.raises(ReplyError):
            replies[0].send("after the stop")


async def test_ask_waiting_for_room_raises_actor_stopped_when_the_actor_stops() -> None:
    gate = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate), mailbox=Bounded(1))
        await busy(ref)
        await ref.tell("fill")
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "blocked", results)
                await trio.testing.wait_all_tasks_blocked()
                assert results == {}
                nursery.start_soon(ref.stop)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
        kind, error = results["blocked"]
        assert kind == "error"
        assert isinstance(error, ActorStopped)


# -- MessageDropped ------------------------------------------------------------------------


async def test_ask_dropped_by_drop_newest_raises_message_dropped_at_once() -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(
            lambda: Gated(gate, log), name="n", mailbox=Bounded(1, overflow=Overflow.DROP_NEWEST)
        )
        await busy(ref)
        await ref.tell("fill")
        with trio.fail_after(10), pytest.raises(MessageDropped) as info:
            await ref.ask("dropped")
        assert info.value.policy == "DROP_NEWEST"
        assert info.value.path == "/user/n"
        assert not gate.is_set()
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask("after") == "after"
    assert log == ["wait", "fill", "after"]


async def test_ask_evicted_by_drop_oldest_raises_message_dropped_at_once() -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(
            lambda: Gated(gate, log), name="o", mailbox=Bounded(1, overflow=Overflow.DROP_OLDEST)
        )
        await busy(ref)
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "evicted", results)
                await trio.testing.wait_all_tasks_blocked()
                assert results == {}
                await ref.tell("newer")
                await trio.testing.wait_all_tasks_blocked()
                # the ask ended while the actor is still busy with "wait"
                assert not gate.is_set()
                kind, error = results["evicted"]
                assert kind == "error"
                assert isinstance(error, MessageDropped)
                assert error.policy == "DROP_OLDEST"
                assert error.path == "/user/o"
                gate.set()
                await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask("after") == "after"
    assert log == ["wait", "newer", "after"]


# -- ActorFailed ---------------------------------------------------------------------------


class Failing(Actor):
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "boom":
            error = ValueError("boom")
            self.errors.append(error)
            raise error
        return message


async def test_a_failing_handler_raises_actor_failed_carrying_its_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[Exception] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Failing(errors), name="f")
        with trio.fail_after(100), pytest.raises(ActorFailed) as info:
            await ref.ask("boom")
        assert len(errors) == 1
        assert info.value.error is errors[0]
        assert info.value.__cause__ is errors[0]
        assert info.value.path == "/user/f"
        # the default supervisor restarted it
        with trio.fail_after(100):
            assert await ref.ask("again") == "again"


async def test_a_handler_that_detached_the_reply_then_raised_fails_the_ask(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[Exception] = []
    replies: list[Reply] = []

    class DetachThenFail(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            replies.append(ctx.detach_reply())
            error = ValueError("after detaching")
            errors.append(error)
            raise error

    async with ActorSystem() as system:
        ref = await system.spawn(DetachThenFail, name="d")
        with trio.fail_after(100), pytest.raises(ActorFailed) as info:
            await ref.ask("q")
        assert info.value.error is errors[0]
        assert info.value.__cause__ is errors[0]
        assert replies[0].done


# -- MailboxFull ---------------------------------------------------------------------------


async def test_ask_and_tell_to_a_full_fail_mailbox_raise_mailbox_full() -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(
            lambda: Gated(gate, log), name="full", mailbox=Bounded(2, overflow=Overflow.FAIL)
        )
        await busy(ref)
        await ref.tell("one")
        await ref.tell("two")
        with trio.fail_after(10), pytest.raises(MailboxFull) as info:
            await ref.ask("three")
        assert info.value.capacity == 2
        assert info.value.path == "/user/full"
        with pytest.raises(MailboxFull):
            await ref.tell("four")
        with pytest.raises(MailboxFull):
            ref.tell_nowait("five")
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask("six") == "six"
    assert log == ["wait", "one", "two", "six"]


async def test_tell_nowait_to_a_full_block_mailbox_raises_mailbox_full() -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate, log), mailbox=Bounded(1))
        await busy(ref)
        ref.tell_nowait("fits")
        with pytest.raises(MailboxFull) as info:
            ref.tell_nowait("does not fit")
        assert info.value.capacity == 1
        gate.set()
        assert await ref.ask("end") == "end"
    assert log == ["wait", "fits", "end"]


async def test_ask_to_a_full_block_mailbox_waits_for_room() -> None:
    gate = trio.Event()
    log: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate, log), mailbox=Bounded(1))
        await busy(ref)
        await ref.tell("fill")
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "waits", results)
                await trio.testing.wait_all_tasks_blocked()
                assert results == {}
                assert ref.statistics().enqueued == 2  # "wait" and "fill": not yet "waits"
                gate.set()
        assert results["waits"] == ("reply", "waits")
    assert log == ["wait", "fill", "waits"]


# -- forward, asks from actors ---------------------------------------------------------------


async def test_forward_keeps_the_sender_and_the_target_answers_the_ask() -> None:
    class Back(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            return ("back", message, ctx.sender)

    class Front(Actor):
        def __init__(self, back: ActorRef) -> None:
            self.back = back

        async def receive(self, ctx: Context, message: Any) -> Any:
            if message == "rewrite":
                await ctx.forward(self.back, "rewritten")
            else:
                await ctx.forward(self.back)
            return "front must not answer"

    async with ActorSystem() as system:
        back = await system.spawn(Back, name="back")
        front = await system.spawn(lambda: Front(back), name="front")
        asker = await system.spawn(Probe, name="asker")
        assert await front.ask("hi") == ("back", "hi", None)
        assert await front.ask("rewrite") == ("back", "rewritten", None)

        async def ask_front(ctx: Context) -> Any:
            return await front.ask("from asker")

        assert await asker.ask(ask_front) == ("back", "from asker", asker)


async def test_forward_to_a_stopped_actor_fails_the_ask_with_actor_stopped() -> None:
    class Front(Actor):
        def __init__(self, back: ActorRef) -> None:
            self.back = back

        async def receive(self, ctx: Context, message: Any) -> Any:
            await ctx.forward(self.back)

    async with ActorSystem() as system:
        back = await system.spawn(Echo, name="back")
        await back.stop()
        front = await system.spawn(lambda: Front(back))
        with trio.fail_after(10), pytest.raises(ActorStopped) as info:
            await front.ask("x")
        assert info.value.path == "/user/back"


async def test_an_actor_can_ask_from_inside_its_handler() -> None:
    async with ActorSystem() as system:
        echo = await system.spawn(Echo)
        probe = await system.spawn(Probe)

        async def ask_echo(ctx: Context) -> Any:
            return [await echo.ask(i) for i in range(3)]

        with trio.fail_after(10):
            assert await probe.ask(ask_echo) == [0, 1, 2]


# -- misuse ------------------------------------------------------------------------------------


async def test_ctx_reply_for_a_told_message_or_twice_raises_reply_error() -> None:
    problems: list[tuple[Any, BaseException]] = []

    class Misuser(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            if message == "twice":
                ctx.reply("first")
            try:
                ctx.reply("again")
            except ReplyError as exc:
                problems.append((message, exc))
            if message == "told":
                try:
                    ctx.detach_reply()
                except ReplyError as exc:
                    problems.append(("detach", exc))
            return "returned"

    async with ActorSystem() as system:
        ref = await system.spawn(Misuser)
        await ref.tell("told")
        assert await ref.ask("twice") == "first"
        assert await ref.ask("once") == "again"
    assert [what for what, _ in problems] == ["told", "detach", "twice"]


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, -math.inf, math.nan])
async def test_ask_with_a_timeout_that_is_not_positive_raises_value_error(
    timeout: float,
) -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo)
        with pytest.raises(ValueError, match="timeout"):
            await ref.ask("x", timeout=timeout)
        assert ref.statistics().enqueued == 0


async def test_the_handler_sees_the_askers_deadline_also_through_forward(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, float]] = []

    class Last(Actor):
        async def receive(self, ctx: Context, message: Any) -> str:
            seen.append(("last", ctx.deadline))
            return "done"

    class First(Actor):
        def __init__(self, target: ActorRef) -> None:
            self.target = target

        async def receive(self, ctx: Context, message: Any) -> None:
            seen.append(("first", ctx.deadline))
            await ctx.forward(self.target)

    async with ActorSystem("deadline") as system:
        last = await system.spawn(Last)
        first = await system.spawn(lambda: First(last))
        start = trio.current_time()
        assert await first.ask("go", timeout=7.0) == "done"
        first.tell_nowait("told")
        await trio.testing.wait_all_tasks_blocked()
        assert await last.ask("no limit", timeout=math.inf) == "done"
    assert seen[:2] == [("first", start + 7.0), ("last", start + 7.0)]
    assert seen[2] == ("first", math.inf)
    assert seen[3] == ("last", math.inf)  # the told message, forwarded
    assert seen[4] == ("last", math.inf)
