"""Nurseries whose errors come out as themselves (internal).

trio's nurseries always raise an exception group, even for one error. A service that
runs background tasks in a nursery would then leak ``ExceptionGroup('Exceptions from
Trio nursery', [ValueError(...)])`` from its ``async with`` when the block raises a
``ValueError``, and Ctrl-C would print a group traceback instead of a plain
``KeyboardInterrupt``. Every public service of tinyagents opens its nursery with
:func:`open_service_nursery` (or passes its nursery's error through :func:`unwrap`),
so what the caller catches is what was raised, as trio-websocket does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import trio

__all__ = ["leaves", "open_service_nursery", "raise_unwrapped", "unwrap"]


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, without ``trio.Cancelled``."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [] if isinstance(error, trio.Cancelled) else [error]


def _first_cancelled(error: BaseException) -> trio.Cancelled | None:
    if isinstance(error, trio.Cancelled):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_cancelled(inner)
            if found is not None:
                return found
    return None


def unwrap(error: BaseException) -> BaseException:
    """The one exception that ``error`` stands for.

    * Not a group: ``error`` itself.
    * A group holding a ``KeyboardInterrupt`` (or ``SystemExit``): that exception, so
      that Ctrl-C stays a ``KeyboardInterrupt`` whatever else was going on.
    * A group with one exception besides cancellations: that exception.
    * A group of cancellations only: its first ``trio.Cancelled`` (so the cancel scope
      that caused it catches it).
    * A group of several errors: the group itself (nothing may be lost).
    """
    if not isinstance(error, BaseExceptionGroup):
        return error
    found = leaves(error)
    for leaf in found:
        if isinstance(leaf, KeyboardInterrupt | SystemExit):
            return leaf
    if len(found) == 1:
        return found[0]
    if not found:
        cancelled = _first_cancelled(error)
        return cancelled if cancelled is not None else error
    return error


def raise_unwrapped(error: BaseException) -> NoReturn:
    """Raise :func:`unwrap` of ``error``, keeping the unwrapped exception's own
    ``__context__`` and ``__cause__`` (the group it came in is not chained to it)."""
    single = unwrap(error)
    if single is error:
        raise error
    context, suppress = single.__context__, single.__suppress_context__
    try:
        raise single
    finally:
        single.__context__ = context
        single.__suppress_context__ = suppress
        del single, context


@asynccontextmanager
async def open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """``trio.open_nursery()``, but a lone error leaves it as itself (see :func:`unwrap`).

    For the nursery that carries a service's background tasks: the error raised by the
    ``async with`` block of the service, or by one of its tasks, reaches the caller
    unwrapped; several errors at once still come out as an exception group.
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        raise_unwrapped(group)
