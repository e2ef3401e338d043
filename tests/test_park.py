"""Parking and waking tasks (tinyagents._park): both implementations behave as trio's
wait_task_rescheduled and reschedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from tinyagents import _park

Implementation = tuple[
    Callable[[_park.Abort], object],
    Callable[[object], Awaitable[None]],
    Callable[[trio.lowlevel.Task], None],
]

IMPLEMENTATIONS: dict[str, Implementation] = {
    "fast": (_park._trap_fast, _park._park_fast, _park._wake_fast),
    "portable": (_park._trap_portable, _park._park_portable, _park._wake_portable),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest) -> Implementation:
    return IMPLEMENTATIONS[request.param]


def test_the_fast_implementation_is_the_one_in_use() -> None:
    # it relies on a name trio does not export: this fails if trio moved it
    assert _park.FAST
    assert _park.wake is _park._wake_fast


class Waiter:
    """A task parked on one trap, many times over, as an idle actor is."""

    def __init__(self, implementation: Implementation) -> None:
        self.trap, self.park, self.wake = implementation
        self.task: trio.lowlevel.Task | None = None
        self.aborted = 0
        self.message = self.trap(self.abort)

    def abort(self, _: Any) -> trio.lowlevel.Abort:
        self.task = None
        self.aborted += 1
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait(self) -> None:
        self.task = trio.lowlevel.current_task()
        await self.park(self.message)

    def wake_up(self) -> None:
        task, self.task = self.task, None
        assert task is not None
        self.wake(task)


async def test_a_parked_task_runs_again_each_time_it_is_woken(
    implementation: Implementation,
) -> None:
    waiter = Waiter(implementation)
    rounds: list[int] = []

    async def loop() -> None:
        for i in range(3):
            await waiter.wait()
            rounds.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop)
        for expected in range(1, 4):
            await trio.testing.wait_all_tasks_blocked()
            assert len(rounds) == expected - 1  # still parked
            waiter.wake_up()
            await trio.testing.wait_all_tasks_blocked()
            assert len(rounds) == expected
    assert waiter.aborted == 0


async def test_a_parked_task_is_cancelled_through_its_abort_function(
    implementation: Implementation,
) -> None:
    waiter = Waiter(implementation)
    with trio.move_on_after(1) as scope:
        await waiter.wait()
    assert scope.cancelled_caught
    assert waiter.aborted == 1
    assert waiter.task is None


async def test_an_abort_that_fails_keeps_the_task_parked_until_it_is_woken(
    implementation: Implementation,
) -> None:
    trap, park, wake = implementation
    parked: list[trio.lowlevel.Task] = []
    scopes: list[trio.CancelScope] = []
    finished = trio.Event()

    def refuse(_: Any) -> trio.lowlevel.Abort:
        return trio.lowlevel.Abort.FAILED

    async def wait() -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            parked.append(trio.lowlevel.current_task())
            await park(trap(refuse))
            finished.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        scopes[0].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert not finished.is_set()  # the cancellation could not be delivered
        wake(parked[0])
    assert finished.is_set()


async def test_a_parked_task_raises_the_error_it_is_rescheduled_with(
    implementation: Implementation,
) -> None:
    waiter = Waiter(implementation)
    raised: list[BaseException] = []

    async def wait() -> None:
        try:
            await waiter.wait()
        except KeyError as error:
            raised.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert waiter.task is not None
        trio.lowlevel.reschedule(waiter.task, outcome.Error(KeyError("gone")))
    assert [str(error) for error in raised] == ["'gone'"]


async def test_a_parked_task_may_be_woken_by_plain_reschedule(
    implementation: Implementation,
) -> None:
    waiter = Waiter(implementation)
    woken = trio.Event()

    async def wait() -> None:
        await waiter.wait()
        woken.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert waiter.task is not None
        trio.lowlevel.reschedule(waiter.task)
    assert woken.is_set()
