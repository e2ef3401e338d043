"""``ActorRef.stop(grace=...)`` always ends: the queue is refused at once, the handler in
hand gets the grace, the ``stopped`` hook runs shielded and bounded (on trio's mock clock)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.errors import ActorFailed, ActorStartFailed, ActorStopped, HookTimeout
from tinyagents.events import ActorFailed as ActorFailedEvent
from tinyagents.events import ActorRestarted, DeadLetter, DeadLetterReason


def drain(events: Any) -> list[Any]:
    got = []
    while True:
        try:
            got.append(events.receive_nowait())
        except trio.WouldBlock:
            return got


class Hangs(ta.Actor):
    """``"hang"`` waits forever (as a stuck LLM call does); ``"self-stop"`` stops its own
    actor and then hangs; anything else is echoed. Records its hooks in ``log``."""

    def __init__(self, log: list[tuple[str, float]], *, hang_in_stopped: bool = False) -> None:
        self.log = log
        self.hang_in_stopped = hang_in_stopped

    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if message == "hang":
            self.log.append(("handling", trio.current_time()))
            await trio.sleep_forever()
        if message == "self-stop":
            await ctx.self.stop(grace=2.0)
            self.log.append(("stop returned", trio.current_time()))
            await trio.sleep_forever()
        return message

    async def stopped(self, ctx: ta.Context) -> None:
        self.log.append(("stopped", trio.current_time()))
        if self.hang_in_stopped:
            await trio.sleep_forever()


async def outcome_of(ref: ta.ActorRef, message: Any, results: dict[Any, Any]) -> None:
    try:
        results[message] = ("reply", await ref.ask(message, timeout=math.inf))
    except Exception as exc:
        results[message] = ("error", exc, trio.current_time())


async def test_stop_of_a_hung_actor_ends_after_exactly_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    results: dict[Any, Any] = {}
    async with ta.ActorSystem() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(lambda: Hangs(log), name="hung")
        nursery.start_soon(outcome_of, ref, "hang", results)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await ref.stop(grace=3.0)
        assert trio.current_time() - start == 3.0
        assert not ref.is_alive
    kind, error, when = results["hang"]
    assert kind == "error"
    assert isinstance(error, ActorStopped)
    assert when - start == 3.0
    assert "grace (3s)" in str(error)
    # the stopped hook still ran, after the handler was cancelled
    assert log == [("handling", start), ("stopped", start + 3.0)]


async def test_the_default_grace_is_the_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with ta.ActorSystem(shutdown_timeout=7.0) as system:
        ref = await system.spawn(lambda: Hangs(log))
        await ref.tell("hang")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await ref.stop()
        assert trio.current_time() - start == 7.0


async def test_a_queued_ask_fails_at_once_on_stop(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    results: dict[Any, Any] = {}
    system = ta.ActorSystem()
    async with system, system.events.subscribe(DeadLetter) as letters:
        async with trio.open_nursery() as nursery:
            ref = await system.spawn(lambda: Hangs(log), name="hung")
            nursery.start_soon(outcome_of, ref, "hang", results)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(outcome_of, ref, "queued", results)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            nursery.start_soon(ref.stop)
            await trio.testing.wait_all_tasks_blocked()
            # no time has passed: the queued ask has failed and is a dead letter already
            assert trio.current_time() == start
            kind, error, when = results["queued"]
            assert kind == "error"
            assert isinstance(error, ActorStopped)
            assert when == start
            assert drain(letters) == [
                DeadLetter("queued", None, ref, DeadLetterReason.RECIPIENT_STOPPED)
            ]
            assert "hang" not in results
        # the message in hand became a dead letter when its handler was cut off
        assert drain(letters) == [DeadLetter("hang", None, ref, DeadLetterReason.RECIPIENT_STOPPED)]
    assert [entry for entry, _ in log] == ["handling", "stopped"]


async def test_a_hanging_stopped_hook_is_cut_off_and_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    system = ta.ActorSystem()
    async with system, system.events.subscribe(ActorFailedEvent) as failures:
        ref = await system.spawn(lambda: Hangs(log, hang_in_stopped=True), name="h")
        start = trio.current_time()
        await ref.stop(grace=1.5)
        assert trio.current_time() - start == 1.5
        assert not ref.is_alive
        (event,) = drain(failures)
    assert event.ref == ref
    assert event.directive == "stop"
    assert isinstance(event.error, HookTimeout)
    assert event.error.hook == "stopped"
    assert event.error.grace == 1.5
    assert event.error.path == "/user/h"
    assert "did not return within 1.5s" in str(event.error)


async def test_a_hung_handler_and_a_hung_hook_take_the_grace_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with ta.ActorSystem() as system:
        ref = await system.spawn(lambda: Hangs(log, hang_in_stopped=True))
        await ref.tell("hang")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await ref.stop(grace=2.0)
        assert trio.current_time() - start == 4.0
    assert log == [("handling", start), ("stopped", start + 2.0)]


async def test_a_hook_is_shielded_from_outer_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []

    class SlowHook(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            return message

        async def stopped(self, ctx: ta.Context) -> None:
            await trio.sleep(1.0)
            log.append("hook finished")

    async with ta.ActorSystem() as system:
        ref = await system.spawn(SlowHook)
        with trio.move_on_after(0.5) as scope:
            await ref.stop(grace=5.0)
        assert scope.cancelled_caught  # the caller stopped waiting...
        await trio.sleep(1.0)
        assert log == ["hook finished"]  # ...but the hook was not cut short
        assert not ref.is_alive


async def test_stop_called_from_inside_the_actor_bounds_its_own_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    results: dict[Any, Any] = {}
    async with ta.ActorSystem() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(lambda: Hangs(log), name="selfish")
        start = trio.current_time()
        nursery.start_soon(outcome_of, ref, "self-stop", results)
        await trio.testing.wait_all_tasks_blocked()
        # stop() returned at once inside the handler, which went on until the grace ended
        assert log == [("stop returned", start)]
        assert ref.is_alive
        await trio.sleep(2.0)
        await trio.testing.wait_all_tasks_blocked()
        assert not ref.is_alive
    _, error, when = results["self-stop"]
    assert isinstance(error, ActorStopped)
    assert when - start == 2.0
    assert log[-1] == ("stopped", start + 2.0)


async def test_ctx_stop_with_a_grace_does_not_wait(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []

    class Stopper(ta.Actor):
        async def receive(self, ctx: ta.Context, message: ta.ActorRef) -> float:
            ctx.stop(message, grace=4.0)
            return trio.current_time()

    async with ta.ActorSystem() as system:
        victim = await system.spawn(lambda: Hangs(log))
        stopper = await system.spawn(Stopper)
        await victim.tell("hang")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        assert await stopper.ask(victim) == start
        assert victim.is_alive
        await trio.sleep(4.0)
        await trio.testing.wait_all_tasks_blocked()
        assert not victim.is_alive


async def test_stop_during_a_restart_backoff_ends_at_once_without_restarting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []

    class Fails(Hangs):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if message == "boom":
                raise ValueError("boom")
            return await super().receive(ctx, message)

    strategy = ta.OneForOne(backoff=ta.Backoff(initial=10.0, maximum=10.0, jitter=0.0))
    system = ta.ActorSystem()
    async with system, system.events.subscribe(ActorRestarted) as restarts:
        ref = await system.spawn(lambda: Fails(log), supervisor=strategy)
        with pytest.raises(ActorFailed):
            await ref.ask("boom")
        await trio.sleep(1.0)  # inside the 10 s backoff
        start = trio.current_time()
        await ref.stop(grace=5.0)
        assert trio.current_time() == start
        assert not ref.is_alive
        assert drain(restarts) == []
    assert log == [("stopped", start)]


async def test_a_second_stop_can_shorten_the_grace(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    async with ta.ActorSystem() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(lambda: Hangs(log))
        await ref.tell("hang")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        nursery.start_soon(lambda: ref.stop(grace=100.0))
        await trio.sleep(1.0)
        await ref.stop(grace=0)
        assert trio.current_time() - start == 1.0
        # and a longer one does not lengthen it
        await ref.stop(grace=math.inf)


async def test_grace_zero_cancels_the_handler_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with ta.ActorSystem() as system:
        ref = await system.spawn(lambda: Hangs(log))
        await ref.tell("hang")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await ref.stop(grace=0)
        assert trio.current_time() == start
    assert log == [("handling", start), ("stopped", start)]


async def test_an_infinite_grace_waits_for_the_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()

    class Gated(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            await gate.wait()
            return message

    results: dict[Any, Any] = {}
    async with ta.ActorSystem(shutdown_timeout=1.0) as system, trio.open_nursery() as nursery:
        ref = await system.spawn(Gated)
        nursery.start_soon(outcome_of, ref, "slow", results)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(lambda: ref.stop(grace=math.inf))
        await trio.sleep(1000.0)
        assert ref.is_alive
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert not ref.is_alive
    assert results["slow"] == ("reply", "slow")


async def test_children_stop_within_the_same_grace(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    kid: list[ta.ActorRef] = []

    class Parent(Hangs):
        async def started(self, ctx: ta.Context) -> None:
            kid.append(await ctx.spawn(lambda: Hangs(log), name="kid"))

    async with ta.ActorSystem() as system:
        parent = await system.spawn(lambda: Parent(log), name="parent")
        await parent.tell("hang")
        await kid[0].tell("hang")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await parent.stop(grace=3.0)
        # both handlers were cut at the same deadline: the child did not get 3 s more
        assert trio.current_time() - start == 3.0
        assert not kid[0].is_alive


async def test_shutdown_stops_an_actor_hung_in_its_started_hook(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []

    class NeverStarts(ta.Actor):
        async def started(self, ctx: ta.Context) -> None:
            await trio.sleep_forever()

    async def spawn(system: ta.ActorSystem) -> None:
        try:
            await system.spawn(NeverStarts, name="never")
        except ActorStartFailed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        async with ta.ActorSystem(shutdown_timeout=2.0) as system:
            nursery.start_soon(spawn, system)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
        assert trio.current_time() - start == 2.0
    (error,) = errors
    assert isinstance(error.error, ActorStopped)
    assert "stopped while it started" in str(error.error)


@pytest.mark.parametrize(
    ("grace", "error", "problem"),
    [
        (-1.0, ValueError, "must be a number of seconds >= 0"),
        (math.nan, ValueError, "must be a number of seconds, not NaN"),
        ("1", TypeError, "must be a number"),
        (True, TypeError, "must be a number"),
    ],
)
async def test_a_bad_grace_is_refused(grace: Any, error: type[Exception], problem: str) -> None:
    async with ta.ActorSystem() as system:
        ref = await system.spawn(lambda: Hangs([]))
        with pytest.raises(error, match=f"a stop's grace {problem}"):
            await ref.stop(grace=grace)
        assert ref.is_alive
