"""Supervision: restarts, backoff, intensity, AllForOne, Escalate, Stop — on trio's mock clock."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.errors import ActorFailed, ActorStopped
from tinyagents.events import ActorRestarted, DeadLetter, DeadLetterReason


class Boom(Exception):
    pass


class Flaky(ta.Actor):
    """Fails on "boom"; records (event, time) in a shared log; counts per instance."""

    def __init__(self, log: list[tuple[str, float]]) -> None:
        self.log = log
        self.count = 0

    async def started(self, ctx: ta.Context) -> None:
        self.log.append(("started", trio.current_time()))

    async def restarted(self, ctx: ta.Context, error: BaseException | None) -> None:
        self.log.append(("restarted", trio.current_time()))

    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if message == "boom":
            raise Boom("boom")
        self.count += 1
        return (message, self.count)


def restart_times(log: list[tuple[str, float]]) -> list[float]:
    return [t for event, t in log if event == "restarted"]


async def test_one_for_one_backoff_delays_are_exact(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    strategy = ta.OneForOne(
        max_restarts=None,
        backoff=ta.Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0, reset_after=100),
    )
    async with ta.ActorSystem("backoff") as system:
        ref = await system.spawn(lambda: Flaky(log), supervisor=strategy)
        failures: list[float] = []
        for _ in range(7):
            failures.append(trio.current_time())
            with pytest.raises(ActorFailed):
                await ref.ask("boom")
            # the restart happens after the backoff; the next ask waits in the mailbox
            assert await ref.ask("ping") == ("ping", 1)
        delays = [r - f for r, f in zip(restart_times(log), failures, strict=True)]
        assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


async def test_backoff_resets_after_quiet_period(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    backoff = ta.Backoff(initial=0.1, maximum=1.0, jitter=0.0, reset_after=5.0)
    async with ta.ActorSystem("reset") as system:
        ref = await system.spawn(
            lambda: Flaky(log), supervisor=ta.OneForOne(max_restarts=None, backoff=backoff)
        )
        for _ in range(3):
            with pytest.raises(ActorFailed):
                await ref.ask("boom")
        await ref.ask("ping")
        await trio.sleep(5.5)  # quiet for longer than reset_after
        before = trio.current_time()
        with pytest.raises(ActorFailed):
            await ref.ask("boom")
        await ref.ask("ping")
        assert restart_times(log)[-1] - before == pytest.approx(0.1)


async def test_default_backoff_is_quiet_period_midpoint() -> None:
    assert ta.Backoff().quiet_period == pytest.approx((0.05 + 1.0) / 2)
    assert ta.OneForOne() == ta.OneForOne(
        max_restarts=5,
        within=60.0,
        backoff=ta.Backoff(initial=0.05, maximum=1.0, multiplier=2.0, jitter=0.2),
    )


def test_jitter_stays_within_bounds() -> None:
    backoff = ta.Backoff(initial=1.0, maximum=100.0, multiplier=2.0, jitter=0.25)
    rng = random.Random(7)
    seen = set()
    for attempt in range(1, 7):
        base = 2.0 ** (attempt - 1)
        for _ in range(200):
            delay = backoff.delay(attempt, rng)
            assert base * 0.75 <= delay <= base * 1.25
            seen.add(round(delay / base, 2))
    assert len(seen) > 20  # it really is jittered
    capped = ta.Backoff(initial=1.0, maximum=1.0, jitter=0.5)
    assert all(capped.delay(9, rng) <= 1.0 for _ in range(100))


def test_backoff_validation() -> None:
    with pytest.raises(ValueError, match="maximum"):
        ta.Backoff(initial=2.0, maximum=1.0)
    with pytest.raises(ValueError, match="jitter"):
        ta.Backoff(jitter=1.0)
    with pytest.raises(ValueError, match="multiplier"):
        ta.Backoff(multiplier=0.5)
    with pytest.raises(ValueError, match="initial"):
        ta.Backoff(initial=-1.0)
    with pytest.raises(ValueError, match="max_restarts"):
        ta.OneForOne(max_restarts=-1)
    with pytest.raises(ValueError, match="attempt"):
        ta.Backoff().delay(0)


async def test_restart_keeps_mailbox_and_dead_letters_failing_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    gate = trio.Event()

    class Gated(Flaky):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if message == "wait":
                await gate.wait()
                raise Boom("after wait")
            return await super().receive(ctx, message)

    async with ta.ActorSystem("keep") as system:
        async with system.events.subscribe(DeadLetter, ActorRestarted) as events:
            ref = await system.spawn(lambda: Gated(log))
            assert await ref.ask("a") == ("a", 1)
            ref.tell_nowait("wait")
            await trio.testing.wait_all_tasks_blocked()
            ref.tell_nowait("queued-1")
            ref.tell_nowait("queued-2")
            gate.set()
            # the queued messages survive the restart and reach the fresh instance
            assert await ref.ask("after") == ("after", 3)
            letter = events.receive_nowait()
            assert isinstance(letter, DeadLetter)
            assert letter.message == "wait"
            assert letter.reason is DeadLetterReason.HANDLER_FAILED
            restarted = events.receive_nowait()
            assert isinstance(restarted, ActorRestarted)
            assert isinstance(restarted.error, Boom)
            assert restarted.ref == ref
        assert [event for event, _ in log] == ["started", "restarted"]


async def test_too_many_restarts_escalate_to_the_system(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    strategy = ta.OneForOne(max_restarts=3, within=10.0, backoff=ta.Backoff(jitter=0.0))
    with pytest.raises(Boom) as info:
        async with ta.ActorSystem("intensity") as system:
            ref = await system.spawn(lambda: Flaky(log), supervisor=strategy)
            for _ in range(3):
                with pytest.raises(ActorFailed):
                    await ref.ask("boom")
            with pytest.raises(ActorFailed):
                await ref.ask("boom")  # the fourth failure within 10 s: escalates
            await trio.sleep_forever()  # the system cancels the body
    assert len(restart_times(log)) == 3
    assert any("/user/$1" in note for note in getattr(info.value, "__notes__", []))


async def test_restarts_spread_beyond_the_window_do_not_escalate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    strategy = ta.OneForOne(max_restarts=2, within=10.0, backoff=ta.Backoff(jitter=0.0))
    async with ta.ActorSystem("window") as system:
        ref = await system.spawn(lambda: Flaky(log), supervisor=strategy)
        for _ in range(6):
            with pytest.raises(ActorFailed):
                await ref.ask("boom")
            await trio.sleep(6.0)  # two failures per 10 s window at most
        assert await ref.ask("ping") == ("ping", 1)
    assert len(restart_times(log)) == 6


async def test_all_for_one_restarts_every_sibling(autojump_clock: trio.testing.MockClock) -> None:
    logs: dict[str, list[tuple[str, float]]] = {"a": [], "b": [], "c": []}
    strategy = ta.AllForOne(backoff=ta.Backoff(jitter=0.0))
    async with ta.ActorSystem("all") as system:
        refs = {
            name: await system.spawn(lambda log=log: Flaky(log), name=name, supervisor=strategy)
            for name, log in logs.items()
        }
        for ref in refs.values():
            assert (await ref.ask("x"))[1] == 1
        with pytest.raises(ActorFailed):
            await refs["b"].ask("boom")
        for ref in refs.values():
            assert (await ref.ask("x"))[1] == 1  # every instance is fresh
    for log in logs.values():
        assert [event for event, _ in log] == ["started", "restarted"]


async def test_escalate_fails_the_parent_which_its_own_supervisor_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    parent_log: list[tuple[str, float]] = []
    child_log: list[tuple[str, float]] = []

    class Parent(Flaky):
        async def started(self, ctx: ta.Context) -> None:
            await super().started(ctx)
            await ctx.spawn(lambda: Flaky(child_log), name="child", supervisor=ta.Escalate())

        async def restarted(self, ctx: ta.Context, error: BaseException | None) -> None:
            await super().restarted(ctx, error)
            self.error = error
            await ctx.spawn(lambda: Flaky(child_log), name="child", supervisor=ta.Escalate())

        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if message == "error":
                return repr(getattr(self, "error", None))
            return await super().receive(ctx, message)

    async with ta.ActorSystem("escalate") as system:
        parent = await system.spawn(lambda: Parent(parent_log), name="parent")
        child = system.lookup("/user/parent/child")
        assert child is not None
        with pytest.raises(ActorFailed):
            await child.ask("boom")
        assert await parent.ask("error") == "Boom('boom')"
        new_child = system.lookup("/user/parent/child")
        assert new_child is not None
        assert new_child != child
        assert not child.is_alive
        assert await new_child.ask("x") == ("x", 1)
    assert [event for event, _ in parent_log] == ["started", "restarted"]


async def test_escalate_at_the_top_stops_the_system_and_raises_unwrapped() -> None:
    stopped: list[str] = []

    class Other(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> None:
            pass

        async def stopped(self, ctx: ta.Context) -> None:
            stopped.append("other")

    with pytest.raises(Boom):
        async with ta.ActorSystem("top") as system:
            await system.spawn(Other)
            ref = await system.spawn(lambda: Flaky([]), supervisor=ta.Escalate())
            ref.tell_nowait("boom")
            await trio.sleep_forever()
    assert stopped == ["other"]  # the rest of the system stopped gracefully


async def test_stop_strategy_stops_the_child_with_terminated_failed() -> None:
    seen: list[ta.Terminated] = []

    class Watcher(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if isinstance(message, ta.Terminated):
                seen.append(message)
                return None
            ref = await ctx.spawn(lambda: Flaky([]), supervisor=ta.Stop())
            ctx.watch(ref)
            return ref

    async with ta.ActorSystem("stop") as system:
        watcher = await system.spawn(Watcher)
        child = await watcher.ask("spawn")
        with pytest.raises(ActorFailed):
            await child.ask("boom")
        with pytest.raises(ActorStopped):
            await child.ask("ping")
        await trio.testing.wait_all_tasks_blocked()
    assert len(seen) == 1
    assert seen[0].ref == child
    assert seen[0].reason is ta.StopReason.FAILED
    assert isinstance(seen[0].error, Boom)


async def test_base_exceptions_are_not_supervised() -> None:
    class Fatal(BaseException):
        pass

    restarted: list[Any] = []

    class Dies(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> None:
            raise Fatal

        async def restarted(self, ctx: ta.Context, error: BaseException | None) -> None:
            restarted.append(error)  # pragma: no cover - must not happen

    with pytest.raises(Fatal):
        async with ta.ActorSystem("base") as system:
            ref = await system.spawn(Dies)
            ref.tell_nowait("x")
            await trio.sleep_forever()
    assert restarted == []


async def test_failing_restarted_hook_counts_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []

    class BadRestart(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> None:
            raise Boom("handler")

        async def restarted(self, ctx: ta.Context, error: BaseException | None) -> None:
            attempts.append(trio.current_time())
            raise Boom("restart")

    strategy = ta.OneForOne(max_restarts=3, within=60.0, backoff=ta.Backoff(jitter=0.0))
    with pytest.raises(Boom, match="restart"):
        async with ta.ActorSystem("hook") as system:
            ref = await system.spawn(BadRestart, supervisor=strategy)
            ref.tell_nowait("x")
            await trio.sleep_forever()
    assert len(attempts) == 3
    assert [b - a for a, b in itertools.pairwise(attempts)] == pytest.approx([0.1, 0.2])


async def test_stop_during_backoff_is_prompt(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    strategy = ta.OneForOne(backoff=ta.Backoff(initial=30.0, maximum=30.0, jitter=0.0))
    async with ta.ActorSystem("prompt") as system:
        ref = await system.spawn(lambda: Flaky(log), supervisor=strategy)
        with pytest.raises(ActorFailed):
            await ref.ask("boom")
        start = trio.current_time()
        await ref.stop()
        assert trio.current_time() == start  # did not sit out the 30 s backoff
    assert restart_times(log) == []


async def test_all_for_one_restarts_siblings_after_its_backoff_whatever_their_strategies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    logs: dict[str, list[tuple[str, float]]] = {"a": [], "b": [], "c": []}
    all_for_one = ta.AllForOne(backoff=ta.Backoff(initial=2.0, maximum=2.0, jitter=0.0))
    strategies: dict[str, ta.OneForOne | ta.AllForOne | ta.Stop] = {
        "a": ta.Stop(),  # its own failures would stop it...
        "b": all_for_one,
        "c": ta.OneForOne(backoff=ta.Backoff(initial=9.0, maximum=9.0, jitter=0.0)),
    }
    async with ta.ActorSystem("all") as system:
        refs = {
            name: await system.spawn(
                lambda log=log: Flaky(log), name=name, supervisor=strategies[name]
            )
            for name, log in logs.items()
        }
        failed_at = trio.current_time()
        with pytest.raises(ActorFailed):
            await refs["b"].ask("boom")
        # ...but b's AllForOne restarts it with the others, all after b's backoff (2 s)
        for ref in refs.values():
            assert (await ref.ask("x"))[1] == 1
    for name, log in logs.items():
        assert restart_times(log) == [failed_at + 2.0], name


async def test_a_stop_during_an_all_for_one_backoff_stops_the_siblings_without_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    logs: dict[str, list[tuple[str, float]]] = {"a": [], "b": []}
    strategy = ta.AllForOne(backoff=ta.Backoff(initial=5.0, maximum=5.0, jitter=0.0))
    async with ta.ActorSystem("all") as system:
        refs = {
            name: await system.spawn(lambda log=log: Flaky(log), name=name, supervisor=strategy)
            for name, log in logs.items()
        }
        with pytest.raises(ActorFailed):
            await refs["b"].ask("boom")
        await trio.sleep(1.0)
        start = trio.current_time()
        await refs["a"].stop()
        assert trio.current_time() == start
        await trio.sleep(10.0)
        assert (await refs["b"].ask("x"))[1] == 1
    assert restart_times(logs["a"]) == []
    assert restart_times(logs["b"]) == [start - 1.0 + 5.0]


async def test_tasks_of_an_instance_do_not_outlive_it_across_a_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, int]] = []

    class Ticker(ta.Actor):
        instances = 0

        def __init__(self) -> None:
            Ticker.instances += 1
            self.number = Ticker.instances

        async def started(self, ctx: ta.Context) -> None:
            ctx.start_soon(self.tick)

        async def tick(self) -> None:
            try:
                while True:
                    await trio.sleep(1.0)
                    seen.append(("tick", self.number))
            finally:
                seen.append(("task ended", self.number))
                # an error while unwinding is not a failure of the next instance
                raise RuntimeError("cleanup failed")

        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if message == "boom":
                raise Boom("boom")
            return self.number

    strategy = ta.OneForOne(backoff=ta.Backoff(initial=0.0, maximum=0.0, jitter=0.0))
    async with ta.ActorSystem("tasks") as system:
        ref = await system.spawn(Ticker, supervisor=strategy)
        await trio.sleep(1.5)
        with pytest.raises(ActorFailed):
            await ref.ask("boom")
        assert await ref.ask("which") == 2
        assert seen == [("tick", 1), ("task ended", 1)]
        await trio.sleep(1.5)
        assert seen[-1] == ("tick", 2)
        assert await ref.ask("which") == 2  # not restarted by the old task's error
        await ref.stop()
    assert seen[-1] == ("task ended", 2)
