"""Supervision strategies: what a parent does when a child's handler raises.

The parent picks a strategy for each child when it spawns it::

    await ctx.spawn(Worker, supervisor=OneForOne(max_restarts=3, within=10.0))

* :class:`OneForOne` (the default) restarts only the failed child, with a fresh
  instance, after a jittered exponential :class:`Backoff` delay. The mailbox and
  its queued messages are kept; the message that failed becomes a dead letter.
  More than ``max_restarts`` restarts within ``within`` seconds escalates.
* :class:`AllForOne` does the same, and also restarts every sibling of the failed
  child (each between two of its messages), as Erlang's ``one_for_all`` does: the
  siblings restart because the failed child's strategy says so, whatever their own
  strategies (those only govern their own failures), after the same backoff delay as
  the failed child, and the restart counts against the failed child's intensity.
* :class:`Escalate` stops the child and fails the parent with the child's error, so
  the parent's own supervisor decides. At the top of the tree the system stops
  and the error is raised from its ``async with`` block.
* :class:`Stop` stops the child; its watchers see ``Terminated``.

Only :class:`Exception` is supervised: ``trio.Cancelled``, ``KeyboardInterrupt`` and
other ``BaseException``\\ s are never restarted.

A restart cancels the old instance's tasks (``ctx.start_soon``) and stops the failed
actor's children first, so nothing of the old instance outlives it; the fresh
instance's ``restarted`` hook runs before it takes its next message.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from typing import Any

import attrs

from . import _validate

__all__ = [
    "AllForOne",
    "Backoff",
    "Directive",
    "Escalate",
    "OneForOne",
    "RestartHistory",
    "Stop",
    "SupervisorStrategy",
]


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _validate.check_seconds(value, f"Backoff {attribute.name}", inf=False)


def _number(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _validate.check_number(value, f"Backoff {attribute.name}")


@attrs.frozen
class Backoff:
    """Jittered exponential delay before a restart.

    The n-th restart in a row waits ``min(maximum, initial * multiplier ** (n - 1))``,
    moved by a random factor within ``±jitter`` of itself, and never more than
    ``maximum``. After ``reset_after`` seconds without a failure (by default
    ``(initial + maximum) / 2``, Akka's choice) the sequence starts over.
    """

    initial: float = attrs.field(default=0.05, validator=_seconds)
    maximum: float = attrs.field(default=1.0, validator=_seconds)
    multiplier: float = attrs.field(default=2.0, validator=_number)
    jitter: float = attrs.field(default=0.2, validator=_number)
    reset_after: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_seconds)
    )

    def __attrs_post_init__(self) -> None:
        if self.maximum < self.initial:
            raise ValueError(f"Backoff maximum {self.maximum} is below initial {self.initial}")
        if self.multiplier < 1:
            raise ValueError(f"Backoff multiplier must be >= 1, not {self.multiplier}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"Backoff jitter must be in [0, 1), not {self.jitter}")
        if self.reset_after is not None and self.reset_after < 0:
            raise ValueError(f"Backoff reset_after must be >= 0, not {self.reset_after}")

    @property
    def quiet_period(self) -> float:
        """Seconds without failure after which the delay sequence starts over."""
        if self.reset_after is not None:
            return self.reset_after
        return (self.initial + self.maximum) / 2

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before restart number ``attempt`` (1-based) of a streak."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, not {attempt}")
        exponent = min(attempt - 1, 1024)
        try:
            base = min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:
            base = self.maximum
        if self.jitter and base > 0:
            rng = rng if rng is not None else random.Random()
            base *= 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return min(self.maximum, max(0.0, base))


class Directive(enum.Enum):
    """What supervision does about one failure."""

    RESTART = "restart"
    RESTART_ALL = "restart_all"
    STOP = "stop"
    ESCALATE = "escalate"


class RestartHistory:
    """Per-child record of restarts, kept by the runtime across restarts."""

    __slots__ = ("last_failure", "restarts", "streak")

    def __init__(self) -> None:
        self.restarts: deque[float] = deque()
        self.streak = 0
        self.last_failure: float | None = None


def _max_restarts(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _validate.check_int(value, "max_restarts (None or an int >= 0)", minimum=0)


def _within(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _validate.check_seconds(value, "within (None or seconds)", inf=False)


@attrs.frozen
class _Restarting:
    max_restarts: int | None = attrs.field(default=5, validator=_max_restarts)
    within: float | None = attrs.field(default=60.0, validator=_within)
    backoff: Backoff = attrs.field(factory=Backoff, validator=attrs.validators.instance_of(Backoff))

    _directive = Directive.RESTART

    def decide(
        self, history: RestartHistory, now: float, rng: random.Random | None = None
    ) -> tuple[Directive, float]:
        """Record a failure at ``now`` and say what to do, with the delay before it."""
        restarts = history.restarts
        if self.within is not None:
            while restarts and restarts[0] < now - self.within:
                restarts.popleft()
        if history.last_failure is not None and (
            now - history.last_failure > self.backoff.quiet_period
        ):
            history.streak = 0
        history.last_failure = now
        if self.max_restarts is not None and len(restarts) >= self.max_restarts:
            return Directive.ESCALATE, 0.0
        history.streak += 1
        restarts.append(now)
        return self._directive, self.backoff.delay(history.streak, rng)


@attrs.frozen
class OneForOne(_Restarting):
    """Restart only the failed child, after a backoff delay.

    ``max_restarts=None`` allows any number; ``within=None`` counts restarts over the
    child's whole life. One failure beyond the limit escalates to the parent.
    """


@attrs.frozen
class AllForOne(_Restarting):
    """Restart the failed child after a backoff delay, and all its siblings with it
    (after the same delay, whatever their own strategies)."""

    _directive = Directive.RESTART_ALL


@attrs.frozen
class Escalate:
    """Stop the failed child and fail its parent with the child's error."""

    def decide(
        self, history: RestartHistory, now: float, rng: random.Random | None = None
    ) -> tuple[Directive, float]:
        """Always escalate."""
        return Directive.ESCALATE, 0.0


@attrs.frozen
class Stop:
    """Stop the failed child; its watchers get ``Terminated`` with the error."""

    def decide(
        self, history: RestartHistory, now: float, rng: random.Random | None = None
    ) -> tuple[Directive, float]:
        """Always stop."""
        return Directive.STOP, 0.0


SupervisorStrategy = OneForOne | AllForOne | Escalate | Stop
"""Any of the strategies, as accepted by ``spawn(..., supervisor=...)``."""
