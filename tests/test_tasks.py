"""Tasks of an actor: ctx.start_soon."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.errors import ActorStopped
from tinyagents.events import ActorFailed


class Slow(ta.Actor):
    """Answers each ask from a task after ``message`` seconds, so asks overlap."""

    async def receive(self, ctx: ta.Context, message: Any) -> None:
        reply = ctx.detach_reply()

        async def answer() -> None:
            await trio.sleep(message)
            reply.send(message)

        ctx.start_soon(answer)


async def test_detached_replies_answered_from_tasks_overlap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with ta.ActorSystem("tasks") as system:
        ref = await system.spawn(Slow)
        results: list[float] = []
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for delay in (3.0, 1.0, 2.0):
                nursery.start_soon(lambda d=delay: _collect(ref, d, results))
        assert results == [1.0, 2.0, 3.0]
        assert trio.current_time() - start == pytest.approx(3.0)  # concurrent, not 6 s


async def _collect(ref: ta.ActorRef, delay: float, results: list[float]) -> None:
    results.append(await ref.ask(delay))


async def test_stopping_cancels_tasks_and_fails_their_replies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with ta.ActorSystem("stop") as system:
        ref = await system.spawn(Slow)
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                with pytest.raises(ActorStopped):
                    await ref.ask(100.0)

            nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            await ref.stop()
            assert trio.current_time() == start


async def test_a_failing_task_is_a_failure_of_the_actor() -> None:
    class Boom(Exception):
        pass

    class Spawner(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> str:
            async def fail() -> None:
                raise Boom("in task")

            ctx.start_soon(fail)
            return "started"

    async with ta.ActorSystem("fail") as system, system.events.subscribe(ActorFailed) as events:
        ref = await system.spawn(Spawner, supervisor=ta.OneForOne(backoff=ta.Backoff(0, 0)))
        assert await ref.ask("go") == "started"
        event = await events.receive()
        assert isinstance(event.error, Boom)
        assert event.directive == "restart"
        assert await ref.ask("again") == "started"


async def test_start_soon_on_a_stopping_actor_raises() -> None:
    outcome: list[BaseException | None] = []

    class Late(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> None:
            pass

        async def stopped(self, ctx: ta.Context) -> None:
            try:
                ctx.start_soon(trio.sleep, 1)
            except ActorStopped as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

    async with ta.ActorSystem("late") as system:
        ref = await system.spawn(Late)
        await ref.stop()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ActorStopped)
    assert "/user/$1" in str(outcome[0])
