"""Parking a task until another task wakes it: the runtime's hottest wait (internal).

Each ask parks two tasks and wakes them again: the asker until its reply, and the actor,
idle, until its next message. trio's public pair for this,
:func:`trio.lowlevel.wait_task_rescheduled` and :func:`trio.lowlevel.reschedule`,
allocates on every call: a trap message for each wait, an :class:`outcome.Value` for
each wake, which the wait then unwraps. Those allocations and their calls are about a
tenth of a local ask. Here:

- :func:`trap` builds a waiter's trap message once, for its abort function (a mailbox
  builds one for its whole life, an ask one for its reply);
- :func:`park` yields that message to trio's scheduler, exactly as
  ``wait_task_rescheduled`` does;
- :func:`wake` resumes a parked task with one shared outcome that is never unwrapped.

The semantics are ``wait_task_rescheduled``'s: a parked task is cancelled (or gets
``KeyboardInterrupt``) only when its abort function says ``Abort.SUCCEEDED``, and an
outcome given by anyone else through ``reschedule`` (``outcome.Error(...)`` included) is
unwrapped as usual, so a parked task may also be resumed with plain ``reschedule``.
Only ``wake`` must be paired with ``park``, never with ``wait_task_rescheduled``.

The trap message's class is the one name trio does not export that this needs. Where it
is not found (a trio that moved it), :data:`FAST` is false and these functions are
trio's public ones, with the same behaviour at trio's cost.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import outcome
import trio

__all__ = ["FAST", "Abort", "park", "trap", "wake"]

Abort = Callable[[Any], trio.lowlevel.Abort]
"""An abort function, as :func:`trio.lowlevel.wait_task_rescheduled` takes it."""

_reschedule = trio.lowlevel.reschedule


def _trap_class() -> type[object] | None:
    try:
        from trio._core._traps import WaitTaskRescheduled
    except ImportError:  # pragma: no cover - a trio that moved it
        return None
    # the scheduler recognises its trap message by exact type and reads one attribute
    fields = getattr(WaitTaskRescheduled, "__attrs_attrs__", ())
    if [field.name for field in fields] != ["abort_func"]:  # pragma: no cover
        return None
    return WaitTaskRescheduled


_Trap = _trap_class()
FAST = _Trap is not None
"""Whether parking skips trio's per-call allocations (true on every supported trio)."""

_WOKEN: outcome.Value[None] = outcome.Value(None)
"""The outcome every :func:`wake` sends: never unwrapped, so it can be shared."""


def _trap_fast(abort: Abort) -> object:
    message: object = object.__new__(_Trap)  # type: ignore[arg-type]
    object.__setattr__(message, "abort_func", abort)  # the class is frozen
    return message


@types.coroutine
def _park_fast(message: object) -> Generator[object, outcome.Outcome[object], None]:
    result = yield message
    if result is not _WOKEN:
        result.unwrap()  # raises what the task was rescheduled with, Cancelled included


def _wake_fast(task: trio.lowlevel.Task) -> None:
    _reschedule(task, _WOKEN)


def _trap_portable(abort: Abort) -> object:
    return abort


async def _park_portable(message: object) -> None:
    abort: Abort = message  # type: ignore[assignment]
    await trio.lowlevel.wait_task_rescheduled(abort)


def _wake_portable(task: trio.lowlevel.Task) -> None:
    _reschedule(task)


trap: Callable[[Abort], object]
"""``trap(abort)``: the message with which a waiter parks; build it once, park often."""
park: Callable[[object], Awaitable[None]]
"""``await park(message)``: block until woken (or cancelled, as its abort allows)."""
wake: Callable[[trio.lowlevel.Task], None]
"""``wake(task)``: resume a task blocked in :func:`park`."""

if FAST:
    trap, park, wake = _trap_fast, _park_fast, _wake_fast
else:  # pragma: no cover - a trio that moved its trap message
    trap, park, wake = _trap_portable, _park_portable, _wake_portable
