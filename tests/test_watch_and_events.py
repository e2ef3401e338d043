"""Watch (Terminated once, unwatch), lifecycle events on ``system.events``, slow subscribers,
and dead letters with every reason the core produces (DESIGN.md section 2)."""

from __future__ import annotations

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
    Overflow,
    Stop,
    StopReason,
    Terminated,
)
from tinyagents.errors import AskTimeout
from tinyagents.events import (
    ActorFailed,
    ActorRestarted,
    ActorStarted,
    ActorStopped,
    DeadLetter,
    DeadLetterReason,
)

Job = Callable[[Context], Awaitable[Any]]


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


class Watcher(Actor):
    """Records every Terminated it gets; runs any other message as an async job."""

    def __init__(self, log: list[Terminated]) -> None:
        self.log = log

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, Terminated):
            self.log.append(message)
            return None
        return await message(ctx)


class Gated(Actor):
    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        return message


class Failing(Actor):
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "boom":
            error = ValueError("boom")
            self.errors.append(error)
            raise error
        return message


def drain(events: Any) -> list[Any]:
    got = []
    while True:
        try:
            got.append(events.receive_nowait())
        except trio.WouldBlock:
            return got


async def settle(*refs: ActorRef) -> None:
    """Let every actor handle what it has (system messages included)."""
    await trio.testing.wait_all_tasks_blocked()
    for ref in refs:
        if ref.is_alive:
            await ref.ask(noop)
    await trio.testing.wait_all_tasks_blocked()


async def noop(ctx: Context) -> None:
    return None


def watch(target: ActorRef, times: int = 1) -> Job:
    async def job(ctx: Context) -> None:
        for _ in range(times):
            ctx.watch(target)

    return job


def unwatch(target: ActorRef) -> Job:
    async def job(ctx: Context) -> None:
        ctx.unwatch(target)

    return job


# -- watch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("times", [1, 2, 3])
async def test_watch_delivers_terminated_exactly_once(times: int) -> None:
    log: list[Terminated] = []
    async with ActorSystem() as system:
        watcher = await system.spawn(lambda: Watcher(log), name="watcher")
        target = await system.spawn(Echo, name="target")
        await watcher.ask(watch(target, times))
        await settle(watcher)
        assert log == []
        await target.stop()
        await settle(watcher)
        await settle(watcher)
        assert log == [Terminated(target, StopReason.STOPPED, None)]
        # a second stop changes nothing
        await target.stop()
        await settle(watcher)
        assert log == [Terminated(target, StopReason.STOPPED, None)]


@pytest.mark.parametrize("times", [1, 2])
async def test_watch_of_an_actor_that_already_stopped_delivers_terminated_once(
    times: int,
) -> None:
    log: list[Terminated] = []
    async with ActorSystem() as system:
        watcher = await system.spawn(lambda: Watcher(log))
        target = await system.spawn(Echo)
        await target.stop()
        await watcher.ask(watch(target, times))
        await settle(watcher)
        await settle(watcher)
        assert log == [Terminated(target, StopReason.STOPPED, None)]


async def test_several_watchers_each_get_terminated_once() -> None:
    logs: list[list[Terminated]] = [[], [], []]
    async with ActorSystem() as system:
        target = await system.spawn(Echo)
        watchers = []
        for log in logs:
            watcher = await system.spawn(lambda log=log: Watcher(log))
            await watcher.ask(watch(target))
            watchers.append(watcher)
        await target.stop()
        await settle(*watchers)
    for log in logs:
        assert log == [Terminated(target, StopReason.STOPPED, None)]


async def test_unwatch_prevents_delivery() -> None:
    log: list[Terminated] = []
    async with ActorSystem() as system:
        watcher = await system.spawn(lambda: Watcher(log))
        target = await system.spawn(Echo)
        await watcher.ask(watch(target))
        await watcher.ask(unwatch(target))
        await target.stop()
        await settle(watcher)
        assert log == []


async def test_unwatch_after_the_target_stopped_drops_the_pending_terminated() -> None:
    log: list[Terminated] = []
    async with ActorSystem() as system:
        watcher = await system.spawn(lambda: Watcher(log))
        target = await system.spawn(Echo)

        async def watch_stop_unwatch(ctx: Context) -> None:
            ctx.watch(target)
            await target.stop()
            ctx.unwatch(target)

        with trio.fail_after(10):
            await watcher.ask(watch_stop_unwatch)
        await settle(watcher)
        assert log == []
        assert not target.is_alive


async def test_a_child_stopped_by_the_stop_supervisor_terminates_with_its_error() -> None:
    log: list[Terminated] = []
    errors: list[Exception] = []
    async with ActorSystem() as system:
        parent = await system.spawn(lambda: Watcher(log), name="parent")

        async def spawn_and_watch(ctx: Context) -> ActorRef:
            child = await ctx.spawn(lambda: Failing(errors), name="child", supervisor=Stop())
            ctx.watch(child)
            return child

        child = await parent.ask(spawn_and_watch)
        await child.tell("boom")
        with trio.fail_after(10):
            await settle(parent)
        assert len(errors) == 1
        assert log == [Terminated(child, StopReason.FAILED, errors[0])]
        assert log[0].error is errors[0]
        assert not child.is_alive
        assert system.lookup("/user/parent/child") is None
        assert parent.is_alive


async def test_a_restart_is_not_a_termination(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Terminated] = []
    errors: list[Exception] = []
    async with ActorSystem() as system:
        watcher = await system.spawn(lambda: Watcher(log))
        target = await system.spawn(lambda: Failing(errors))
        await watcher.ask(watch(target))
        await target.tell("boom")
        with trio.fail_after(100):
            assert await target.ask("restarted") == "restarted"
        await settle(watcher)
        assert len(errors) == 1
        assert log == []
        await target.stop()
        await settle(watcher)
        assert log == [Terminated(target, StopReason.STOPPED, None)]


async def test_a_stopped_watcher_gets_nothing_and_does_not_break_the_target() -> None:
    log: list[Terminated] = []
    async with ActorSystem() as system:
        watcher = await system.spawn(lambda: Watcher(log))
        target = await system.spawn(Echo)
        await watcher.ask(watch(target))
        await watcher.stop()
        with trio.fail_after(10):
            await target.stop()
        await trio.testing.wait_all_tasks_blocked()
        assert log == []
        assert not target.is_alive


# -- events ----------------------------------------------------------------------------------


async def test_lifecycle_events_are_published(autojump_clock: trio.testing.MockClock) -> None:
    errors: list[Exception] = []
    async with ActorSystem() as system, system.events.subscribe() as events:
        ref = await system.spawn(lambda: Failing(errors), name="f")
        await ref.tell("boom")
        with trio.fail_after(100):
            assert await ref.ask("after the restart") == "after the restart"
        await ref.stop()
        got = drain(events)
    [error] = errors
    assert got[0] == ActorStarted(ref)
    assert sorted(got[1:3], key=lambda event: type(event).__name__) == [
        ActorFailed(ref, error, "restart"),
        DeadLetter("boom", None, ref, DeadLetterReason.HANDLER_FAILED),
    ]
    assert got[3] == ActorRestarted(ref, error)
    assert got[4:] == [ActorStopped(ref, StopReason.STOPPED, None)]


async def test_events_of_a_child_stopped_by_failure() -> None:
    errors: list[Exception] = []
    async with ActorSystem() as system, system.events.subscribe() as events:
        ref = await system.spawn(lambda: Failing(errors), name="f", supervisor=Stop())
        await ref.tell("boom")
        await trio.testing.wait_all_tasks_blocked()
        assert not ref.is_alive
        got = drain(events)
    [error] = errors
    assert got[0] == ActorStarted(ref)
    assert ActorFailed(ref, error, "stop") in got
    assert got[-1] == ActorStopped(ref, StopReason.FAILED, error)


async def test_started_event_comes_after_the_started_hook() -> None:
    order: list[str] = []

    class Hooked(Echo):
        async def started(self, ctx: Context) -> None:
            order.append("hook")

    async with ActorSystem() as system, system.events.subscribe(ActorStarted) as events:

        async def listen() -> None:
            event = await events.receive()
            order.append(f"event {event.ref.path}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await trio.testing.wait_all_tasks_blocked()
            await system.spawn(Hooked, name="h")
    assert order == ["hook", "event /user/h"]


async def test_subscribe_with_kinds_filters_events() -> None:
    async with (
        ActorSystem() as system,
        system.events.subscribe(DeadLetter) as dead,
        system.events.subscribe(ActorStarted, ActorStopped) as lifecycle,
    ):
        ref = await system.spawn(Echo, name="e")
        await ref.stop()
        await ref.tell("late")
        got_dead = drain(dead)
        got_lifecycle = drain(lifecycle)
    assert got_dead == [DeadLetter("late", None, ref, DeadLetterReason.RECIPIENT_STOPPED)]
    assert got_lifecycle == [ActorStarted(ref), ActorStopped(ref, StopReason.STOPPED, None)]


async def test_events_published_before_subscribing_or_after_leaving_are_not_seen() -> None:
    async with ActorSystem() as system:
        stopped = await system.spawn(Echo)
        await stopped.stop()
        await stopped.tell("before")
        async with system.events.subscribe() as events:
            await stopped.tell("during")
            assert drain(events) == [
                DeadLetter("during", None, stopped, DeadLetterReason.RECIPIENT_STOPPED),
            ]
        await stopped.tell("after")
        assert not system.events.active
        with pytest.raises(trio.ClosedResourceError):
            events.receive_nowait()
        with pytest.raises(trio.ClosedResourceError):
            await events.receive()


async def test_a_slow_subscriber_loses_its_oldest_events_and_counts_them() -> None:
    async with ActorSystem() as system:
        target = await system.spawn(Echo)
        await target.stop()
        async with system.events.subscribe(DeadLetter, buffer=3) as slow:
            for i in range(10):
                await target.tell(i)
            assert slow.dropped == 7
            assert [event.message for event in drain(slow)] == [7, 8, 9]
            await target.tell(10)
            assert slow.dropped == 7
            assert [event.message for event in drain(slow)] == [10]


async def test_publishing_never_waits_for_a_subscriber_that_never_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with ActorSystem() as system:
        target = await system.spawn(Echo)
        await target.stop()
        before = system.dead_letters
        async with (
            system.events.subscribe(buffer=3) as never_read,
            system.events.subscribe(DeadLetter) as reader,
        ):
            received: list[Any] = []

            async def read() -> None:
                async for event in reader:
                    received.append(event.message)
                    if len(received) == 1000:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                with trio.fail_after(100):
                    for i in range(1000):
                        await target.tell(i)
            assert never_read.dropped == 997
            assert [event.message for event in drain(never_read)] == [997, 998, 999]
            assert received == list(range(1000))
        assert system.dead_letters == before + 1000


async def test_subscribe_needs_a_positive_buffer() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ValueError, match="buffer"):
            async with system.events.subscribe(buffer=0):
                pass


# -- dead letters ----------------------------------------------------------------------------


async def test_system_dead_letters_counts_every_dead_letter() -> None:
    async with ActorSystem() as system:
        assert system.dead_letters == 0
        ref = await system.spawn(Echo)
        await ref.stop()
        for i in range(3):
            await ref.tell(i)
        ref.tell_nowait(3)
        assert system.dead_letters == 4


async def recipient_stopped(system: ActorSystem) -> list[DeadLetter]:
    ref = await system.spawn(Echo)
    sender = await system.spawn(Echo)
    await ref.stop()
    await ref.tell("late", sender=sender)
    return [DeadLetter("late", sender, ref, DeadLetterReason.RECIPIENT_STOPPED)]


async def dropped_newest(system: ActorSystem) -> list[DeadLetter]:
    gate = trio.Event()
    ref = await system.spawn(lambda: Gated(gate), mailbox=Bounded(1, overflow=Overflow.DROP_NEWEST))
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    await ref.tell("kept")
    await ref.tell("dropped")
    gate.set()
    return [DeadLetter("dropped", None, ref, DeadLetterReason.DROPPED_NEWEST)]


async def dropped_oldest(system: ActorSystem) -> list[DeadLetter]:
    gate = trio.Event()
    ref = await system.spawn(lambda: Gated(gate), mailbox=Bounded(1, overflow=Overflow.DROP_OLDEST))
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    await ref.tell("evicted")
    await ref.tell("kept")
    gate.set()
    return [DeadLetter("evicted", None, ref, DeadLetterReason.DROPPED_OLDEST)]


async def handler_failed(system: ActorSystem) -> list[DeadLetter]:
    ref = await system.spawn(lambda: Failing([]), supervisor=Stop())
    await ref.tell("boom")
    await trio.testing.wait_all_tasks_blocked()
    return [DeadLetter("boom", None, ref, DeadLetterReason.HANDLER_FAILED)]


async def late_reply(system: ActorSystem) -> list[DeadLetter]:
    gate = trio.Event()
    ref = await system.spawn(lambda: Gated(gate))
    with trio.move_on_after(1):
        await ref.ask("wait")
    with pytest.raises(AskTimeout):
        await ref.ask("wait", timeout=1)
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    return [
        DeadLetter("wait", ref, None, DeadLetterReason.LATE_REPLY),
        DeadLetter("wait", ref, None, DeadLetterReason.LATE_REPLY),
    ]


SCENARIOS = {
    DeadLetterReason.RECIPIENT_STOPPED: recipient_stopped,
    DeadLetterReason.DROPPED_NEWEST: dropped_newest,
    DeadLetterReason.DROPPED_OLDEST: dropped_oldest,
    DeadLetterReason.HANDLER_FAILED: handler_failed,
    DeadLetterReason.LATE_REPLY: late_reply,
}


ROUTER_REASONS = {DeadLetterReason.NO_ROUTEE, DeadLetterReason.MAILBOX_FULL}
"""Reasons that only routers produce (tinyagents.router), not the actor core."""

TRANSPORT_REASONS = {
    DeadLetterReason.NODE_UNREACHABLE,
    DeadLetterReason.UNDECODABLE,
    DeadLetterReason.EXPIRED,
}
"""Reasons that only messages between nodes produce (tests/transport has their cases)."""


def test_every_reason_the_core_produces_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(DeadLetterReason) - ROUTER_REASONS - TRANSPORT_REASONS


@pytest.mark.parametrize("reason", list(SCENARIOS), ids=lambda reason: reason.name)
async def test_each_dead_letter_reason_is_produced(
    reason: DeadLetterReason, autojump_clock: trio.testing.MockClock
) -> None:
    async with ActorSystem() as system:
        async with system.events.subscribe(DeadLetter) as events:
            with trio.fail_after(100):
                expected = await SCENARIOS[reason](system)
                await trio.testing.wait_all_tasks_blocked()
            got = drain(events)
        assert got == expected
        assert all(letter.reason is reason for letter in got)
        assert system.dead_letters == len(expected)
