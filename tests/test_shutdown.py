"""Stopping actors and leaving ``async with ActorSystem()``: children before parents, the
grace period, dead letters of what was queued, and errors out of the block (DESIGN.md 2, 4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from tinyagents import Actor, ActorRef, ActorSystem, Bounded, Context, DeadLetter, DeadLetterReason
from tinyagents.errors import ActorStopped, ActorSystemError, SystemNotRunning
from tinyagents.events import ActorStopped as ActorStoppedEvent

Job = Callable[[Context], Awaitable[Any]]


def drain(events: Any) -> list[Any]:
    got = []
    while True:
        try:
            got.append(events.receive_nowait())
        except trio.WouldBlock:
            return got


async def capture(ref: ActorRef, message: Any, results: dict[Any, Any]) -> None:
    try:
        results[message] = ("reply", await ref.ask(message))
    except Exception as exc:
        results[message] = ("error", exc)


class Node(Actor):
    """Spawns the given subtree in ``started``; records its path in ``stopped``; answers
    messages (running async jobs)."""

    def __init__(self, log: list[str], tree: dict[str, Any] | None = None) -> None:
        self.log = log
        self.tree = tree or {}

    async def started(self, ctx: Context) -> None:
        for name, subtree in self.tree.items():
            await ctx.spawn(lambda subtree=subtree: Node(self.log, subtree), name=name)

    async def receive(self, ctx: Context, message: Any) -> Any:
        if callable(message):
            return await message(ctx)
        if message == "wait":
            await trio.sleep_forever()
        return message

    async def stopped(self, ctx: Context) -> None:
        await trio.lowlevel.checkpoint()
        self.log.append(ctx.self.path)


class Plain(Actor):
    """No ``started`` hook (spawned with start_soon); records its path in ``stopped``."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []

    async def receive(self, ctx: Context, message: Any) -> Any:
        return message

    async def stopped(self, ctx: Context) -> None:
        self.log.append(ctx.self.path)


class Gated(Actor):
    def __init__(self, gate: trio.Event, log: list[str]) -> None:
        self.gate = gate
        self.log = log

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        return message

    async def stopped(self, ctx: Context) -> None:
        self.log.append("stopped")


def assert_children_first(log: list[str]) -> None:
    """Every path appears once, and after every path below it."""
    assert len(log) == len(set(log))
    for i, path in enumerate(log):
        for later in log[i + 1 :]:
            assert not later.startswith(path + "/"), f"{path} stopped before its {later}"


# -- leaving the system ------------------------------------------------------------------------


async def test_leaving_the_system_stops_children_before_parents() -> None:
    log: list[str] = []
    tree = {"b": {"c": {}, "c2": {}}, "b2": {"d": {}}}
    with trio.fail_after(10):
        async with ActorSystem() as system:
            await system.spawn(lambda: Node(log, tree), name="a")
            await system.spawn(lambda: Node(log, {"y": {"z": {}}}), name="x")
            assert system.lookup("/user/a/b/c2") is not None
            assert log == []
    assert sorted(log) == sorted(
        [
            "/user/a",
            "/user/a/b",
            "/user/a/b/c",
            "/user/a/b/c2",
            "/user/a/b2",
            "/user/a/b2/d",
            "/user/x",
            "/user/x/y",
            "/user/x/y/z",
        ]
    )
    assert_children_first(log)
    assert log.index("/user/a/b/c") < log.index("/user/a/b") < log.index("/user/a")


async def test_leaving_the_system_calls_every_stopped_hook_even_of_fresh_actors() -> None:
    log: list[str] = []
    with trio.fail_after(10):
        async with ActorSystem() as system:
            refs = [await system.spawn(lambda: Plain(log), name=f"p{i}") for i in range(5)]
    assert sorted(log) == [f"/user/p{i}" for i in range(5)]
    assert not any(ref.is_alive for ref in refs)
    assert system.children == []


async def test_a_hanging_handler_is_cancelled_after_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    results: dict[Any, Any] = {}
    with trio.fail_after(1000):
        async with trio.open_nursery() as outside:
            async with ActorSystem(shutdown_timeout=7.0) as system:
                hang = await system.spawn(lambda: Node(log), name="hang")
                fine = await system.spawn(lambda: Node(log), name="fine")
                outside.start_soon(capture, hang, "wait", results)
                await trio.testing.wait_all_tasks_blocked()
                outside.start_soon(capture, hang, "queued", results)
                await trio.testing.wait_all_tasks_blocked()
                assert results == {}
                start = trio.current_time()
            elapsed = trio.current_time() - start
    assert elapsed == 7.0
    assert set(results) == {"wait", "queued"}
    for message, (kind, error) in results.items():
        assert kind == "error", message
        assert isinstance(error, ActorStopped), message
        assert error.path == "/user/hang"
    # both stopped hooks ran: the cancelled handler's actor still gets its hook
    assert sorted(log) == ["/user/fine", "/user/hang"]
    assert not hang.is_alive
    assert not fine.is_alive


async def test_a_hanging_child_is_cancelled_and_its_parent_ends_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    results: dict[Any, Any] = {}
    with trio.fail_after(1000):
        async with trio.open_nursery() as outside:
            async with ActorSystem(shutdown_timeout=3.0) as system:
                parent = await system.spawn(lambda: Node(log, {"kid": {}}), name="parent")
                kid = system.lookup("/user/parent/kid")
                assert kid is not None
                outside.start_soon(capture, kid, "wait", results)
                await trio.testing.wait_all_tasks_blocked()
                start = trio.current_time()
            elapsed = trio.current_time() - start
    assert elapsed == 3.0
    kind, error = results["wait"]
    assert kind == "error"
    assert isinstance(error, ActorStopped)
    assert not parent.is_alive
    assert not kid.is_alive


async def test_shutdown_with_nothing_hanging_takes_no_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with ActorSystem(shutdown_timeout=7.0) as system:
        await system.spawn(lambda: Node(log, {"b": {}}), name="a")
        start = trio.current_time()
    assert trio.current_time() == start
    assert log == ["/user/a/b", "/user/a"]


async def test_an_error_in_the_body_comes_out_unwrapped_and_actors_are_stopped() -> None:
    log: list[str] = []
    error = KeyError("from the body")
    with trio.fail_after(10), pytest.raises(KeyError) as info:
        async with ActorSystem() as system:
            ref = await system.spawn(lambda: Node(log, {"kid": {}}), name="a")
            raise error
    assert info.value is error
    assert type(info.value) is KeyError
    assert log == ["/user/a/kid", "/user/a"]
    assert not ref.is_alive
    assert not system.running


async def test_a_system_cannot_be_entered_twice() -> None:
    system = ActorSystem("once")
    async with system:
        with pytest.raises(ActorSystemError):
            async with system:
                pass
        # the failed second entry did not disturb the running system
        assert system.running
        ref = await system.spawn(Plain, name="p")
        assert ref.is_alive
    with pytest.raises(ActorSystemError):
        async with system:
            pass
    with pytest.raises(SystemNotRunning):
        await system.spawn(Plain)


# -- stopping one actor ---------------------------------------------------------------------------


async def test_stop_turns_queued_messages_into_dead_letters_and_waits_for_the_actor() -> None:
    gate = trio.Event()
    log: list[str] = []
    results: dict[Any, Any] = {}
    stop_returned = trio.Event()
    async with ActorSystem() as system, system.events.subscribe(DeadLetter) as events:
        ref = await system.spawn(lambda: Gated(gate, log), name="g")

        async def stop() -> None:
            await ref.stop()
            assert log == ["stopped"]
            assert not ref.is_alive
            stop_returned.set()

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, "wait", results)
                await trio.testing.wait_all_tasks_blocked()
                await ref.tell("q1")
                nursery.start_soon(capture, ref, "q2", results)
                await trio.testing.wait_all_tasks_blocked()
                await ref.tell("q3")
                nursery.start_soon(stop)
                await trio.testing.wait_all_tasks_blocked()
                # stop waits: the actor finishes the message it is handling first...
                assert not stop_returned.is_set()
                assert ref.is_alive
                # ...but what was queued is a dead letter at once, and its ask has failed
                assert list(results) == ["q2"]
                kind, error = results["q2"]
                assert kind == "error"
                assert isinstance(error, ActorStopped)
                assert drain(events) == [
                    DeadLetter(message, None, ref, DeadLetterReason.RECIPIENT_STOPPED)
                    for message in ["q1", "q2", "q3"]
                ]
                gate.set()
        assert stop_returned.is_set()
        assert drain(events) == []
    assert results["wait"] == ("reply", "wait")


async def test_stopping_a_stopped_actor_does_nothing() -> None:
    log: list[str] = []
    async with ActorSystem() as system, system.events.subscribe(ActorStoppedEvent) as events:
        ref = await system.spawn(lambda: Plain(log), name="p")
        with trio.fail_after(10):
            await ref.stop()
            await ref.stop()
            await ref.stop()
        assert log == ["/user/p"]
        assert len(drain(events)) == 1


async def test_concurrent_stops_all_return() -> None:
    log: list[str] = []
    gate = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate, log))
        await ref.tell("wait")
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(ref.stop)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
    assert log == ["stopped"]


async def test_an_actor_stopping_itself_does_not_deadlock() -> None:
    log: list[str] = []

    async def stop_myself(ctx: Context) -> str:
        await ctx.self.stop()
        return "handler went on"

    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Node(log), name="me")
        results: dict[Any, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, ref, stop_myself, results)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(capture, ref, "after", results)
        assert results[stop_myself] == ("reply", "handler went on")
        assert results["after"][0] == "error"
        assert isinstance(results["after"][1], ActorStopped)
        await trio.testing.wait_all_tasks_blocked()
        assert not ref.is_alive
        assert log == ["/user/me"]


async def test_a_child_stopping_its_parent_does_not_deadlock() -> None:
    log: list[str] = []

    async def stop_parent(ctx: Context) -> str:
        parent = ctx.parent
        assert parent is not None
        await parent.stop()
        return "child went on"

    async with ActorSystem() as system:
        parent = await system.spawn(lambda: Node(log, {"kid": {}}), name="parent")
        kid = system.lookup("/user/parent/kid")
        assert kid is not None
        with trio.fail_after(10):
            assert await kid.ask(stop_parent) == "child went on"
            await parent.stop()
        assert log == ["/user/parent/kid", "/user/parent"]


async def test_tell_to_a_stopped_actor_is_a_dead_letter_not_an_error() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Plain, name="p")
        await ref.stop()
        async with system.events.subscribe(DeadLetter) as events:
            await ref.tell("a")
            ref.tell_nowait("b")
            assert drain(events) == [
                DeadLetter("a", None, ref, DeadLetterReason.RECIPIENT_STOPPED),
                DeadLetter("b", None, ref, DeadLetterReason.RECIPIENT_STOPPED),
            ]
        assert system.dead_letters == 2


async def test_a_sender_blocked_on_a_full_mailbox_is_released_by_the_stop() -> None:
    gate = trio.Event()
    log: list[str] = []
    async with ActorSystem() as system, system.events.subscribe(DeadLetter) as events:
        ref = await system.spawn(lambda: Gated(gate, log), mailbox=Bounded(1))
        await ref.tell("wait")
        await trio.testing.wait_all_tasks_blocked()
        await ref.tell("fill")
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.tell, "blocked")
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(ref.stop)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
        letters = drain(events)
    assert [letter.message for letter in letters] == ["fill", "blocked"]
    assert all(letter.reason is DeadLetterReason.RECIPIENT_STOPPED for letter in letters)


async def test_a_hanging_stopped_hook_is_cancelled_after_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []

    class HangsInStopped(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            return message

        async def stopped(self, ctx: Context) -> None:
            log.append("stopping")
            await trio.sleep_forever()

    with trio.fail_after(1000):
        async with ActorSystem(shutdown_timeout=2.5) as system:
            ref = await system.spawn(HangsInStopped)
            start = trio.current_time()
        assert trio.current_time() - start == 2.5
    assert log == ["stopping"]
    assert not ref.is_alive


async def test_an_error_in_the_body_waits_for_the_grace_period_of_a_hanging_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    error = KeyError("from the body")
    with trio.fail_after(1000), pytest.raises(KeyError) as info:
        async with ActorSystem(shutdown_timeout=4.0) as system:
            hang = await system.spawn(lambda: Node(log), name="hang")
            await hang.tell("wait")
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            raise error
    assert info.value is error
    assert trio.current_time() - start == 4.0
    assert not hang.is_alive


@pytest.mark.parametrize("size", [1, 2])
async def test_an_exception_group_raised_in_the_body_comes_out_as_itself(size: int) -> None:
    group = ExceptionGroup("from the body", [ValueError(1), KeyError(2)][:size])
    with trio.fail_after(10), pytest.raises(ExceptionGroup) as info:
        async with ActorSystem() as system:
            await system.spawn(Plain)
            raise group
    assert info.value is group


async def test_leaving_the_block_by_outer_cancellation_still_stops_actors_gracefully(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    with trio.move_on_after(5) as outer:
        async with ActorSystem() as system:
            await system.spawn(lambda: Node(log, {"b": {"c": {}}}), name="a")
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert log == ["/user/a/b/c", "/user/a/b", "/user/a"]


async def test_statistics_of_an_actor_cancelled_mid_handler_show_it_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with ActorSystem(shutdown_timeout=1.0) as system:
        hang = await system.spawn(lambda: Node(log), name="hang")
        await hang.tell("wait")
        await trio.testing.wait_all_tasks_blocked()
        assert hang.statistics().busy
    assert not hang.is_alive
    stats = hang.statistics()
    assert stats.length == 0
    assert not stats.busy


async def test_stopped_events_come_children_first() -> None:
    log: list[str] = []
    system = ActorSystem()
    async with system.events.subscribe(ActorStoppedEvent) as events:
        with trio.fail_after(10):
            async with system:
                await system.spawn(lambda: Node(log, {"b": {"c": {}}, "b2": {}}), name="a")
        paths = [event.ref.path for event in drain(events)]
    assert sorted(paths) == ["/user/a", "/user/a/b", "/user/a/b/c", "/user/a/b2"]
    assert_children_first(paths)
    assert all(event_path in log for event_path in paths)


async def test_outer_cancellation_gives_a_hanging_actor_the_grace_period_then_cancels_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    results: dict[Any, Any] = {}
    with trio.fail_after(1000):
        async with trio.open_nursery() as outside:
            start = trio.current_time()
            with trio.move_on_after(5) as outer:
                async with ActorSystem(shutdown_timeout=3.0) as system:
                    hang = await system.spawn(lambda: Node(log), name="hang")
                    await system.spawn(lambda: Node(log), name="fine")
                    outside.start_soon(capture, hang, "wait", results)
                    await trio.sleep_forever()
            elapsed = trio.current_time() - start
    assert outer.cancelled_caught
    assert elapsed == 5 + 3
    kind, error = results["wait"]
    assert kind == "error"
    assert isinstance(error, ActorStopped)
    assert sorted(log) == ["/user/fine", "/user/hang"]


async def timed_ask(ref: ActorRef, seen: list[tuple[str, float]]) -> None:
    start = trio.current_time()
    try:
        await ref.ask("wait", timeout=1.0)
    except Exception as exc:
        seen.append((type(exc).__name__, trio.current_time() - start))


async def test_asks_pending_during_the_grace_period_still_time_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    seen: list[tuple[str, float]] = []
    with trio.fail_after(1000):
        async with trio.open_nursery() as outside:
            async with ActorSystem(shutdown_timeout=10.0) as system:
                hang = await system.spawn(lambda: Node(log), name="hang")
                outside.start_soon(timed_ask, hang, seen)
                await trio.testing.wait_all_tasks_blocked()
                start = trio.current_time()
            # the handler of the asked message was given the whole grace...
            assert trio.current_time() - start == 10.0
    # ...but the ask ended at its own deadline, the timer running during the shutdown
    assert seen == [("AskTimeout", 1.0)]


async def test_asks_pending_during_the_grace_period_after_outer_cancellation_still_time_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    seen: list[tuple[str, float]] = []
    with trio.fail_after(1000):
        async with trio.open_nursery() as outside:
            with trio.move_on_after(0.5):
                async with ActorSystem(shutdown_timeout=10.0) as system:
                    hang = await system.spawn(lambda: Node(log), name="hang")
                    outside.start_soon(timed_ask, hang, seen)
                    await trio.sleep_forever()
    assert seen == [("AskTimeout", 1.0)]


async def test_a_value_error_in_the_body_is_caught_as_itself() -> None:
    caught: list[ValueError] = []
    try:
        async with ActorSystem() as system:
            await system.spawn(Plain)
            raise ValueError("from the body")
    except ValueError as error:  # not an ExceptionGroup
        caught.append(error)
    assert str(caught[0]) == "from the body"


async def test_keyboard_interrupt_in_the_body_stays_a_keyboard_interrupt() -> None:
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        async with ActorSystem() as system:
            await system.spawn(lambda: Node(log, {"b": {}}), name="a")
            raise KeyboardInterrupt
    # the actors still stopped gracefully on the way out
    assert log == ["/user/a/b", "/user/a"]
