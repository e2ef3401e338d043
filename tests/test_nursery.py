"""The shared helper behind every service's ``async with``: a lone error comes out as
itself, Ctrl-C stays a KeyboardInterrupt, several errors stay a group."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tinyagents._nursery import leaves, open_service_nursery, unwrap


async def test_a_body_error_comes_out_as_itself() -> None:
    error = ValueError("bad")
    with pytest.raises(ValueError, match="bad") as info:
        async with open_service_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise error
    assert info.value is error
    # not chained to the group it travelled in
    assert not isinstance(info.value.__context__, BaseExceptionGroup)


async def test_a_task_error_comes_out_as_itself_and_keeps_its_cause() -> None:
    async def crash() -> None:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("task") from inner

    with pytest.raises(RuntimeError, match="task") as info:
        async with open_service_nursery() as nursery:
            nursery.start_soon(crash)
            await trio.sleep_forever()
    assert isinstance(info.value.__cause__, KeyError)


async def test_keyboard_interrupt_stays_a_keyboard_interrupt() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise ValueError("while unwinding")

    with pytest.raises(KeyboardInterrupt):
        async with open_service_nursery() as nursery:
            nursery.start_soon(fails_when_cancelled)
            await trio.testing.wait_all_tasks_blocked()
            raise KeyboardInterrupt


async def test_several_errors_stay_a_group() -> None:
    async def fail(error: Exception) -> None:
        raise error

    with pytest.raises(BaseExceptionGroup) as info:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail, ValueError("one"))
            nursery.start_soon(fail, KeyError("two"))
    assert sorted(type(e).__name__ for e in leaves(info.value)) == ["KeyError", "ValueError"]


async def test_outer_cancellation_passes_through() -> None:
    with trio.move_on_after(0.01) as scope:
        async with open_service_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()
    assert scope.cancelled_caught


def test_unwrap_rules() -> None:
    value = ValueError("v")
    assert unwrap(value) is value
    assert unwrap(ExceptionGroup("g", [value])) is value
    assert unwrap(BaseExceptionGroup("g", [ExceptionGroup("h", [value])])) is value
    both = ExceptionGroup("g", [value, KeyError("k")])
    assert unwrap(both) is both
    interrupt = KeyboardInterrupt()
    assert unwrap(BaseExceptionGroup("g", [value, interrupt])) is interrupt
