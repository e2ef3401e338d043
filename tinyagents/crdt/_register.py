"""LWWRegister: one value, the last write winning."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, final

import attrs

from .._validate import check_int
from ._base import Parametric, Replicated, check_mergeable, check_node, check_value

__all__ = ["LWWRegister", "wall_clock_ms"]

T = TypeVar("T")


def wall_clock_ms() -> int:
    """The wall clock in milliseconds since the epoch: the registers' default clock."""
    return time.time_ns() // 1_000_000


def _check_value(_instance: object, _attribute: object, value: object) -> None:
    check_value(value)


@final
@attrs.frozen
class LWWRegister(Parametric[T], Replicated):
    """A register whose last write wins: ``value``, written at ``timestamp`` by
    ``node``.

    Merging keeps the write with the greater timestamp; on equal timestamps the one of
    the *lower* node id wins, so every replica picks the same write. The empty register
    (``LWWRegister()``: value ``None``, timestamp 0, node ``""``) loses to every write.

    Values cross nodes unchanged, so they are limited to what the codec carries as it
    is: None, bools, ints, floats (not NaN), str, bytes, ActorRefs, and lists and dicts
    of them. Tuples (which would arrive as lists) and other objects, registered message
    types included, are refused. The register keeps the value as given: do not mutate
    a list or dict after writing it.

    ::

        register, delta = LWWRegister().set("a", "draft")
        register.value        # "draft"
    """

    value: Any = attrs.field(default=None, validator=_check_value)
    timestamp: int = 0
    node: str = ""

    def __attrs_post_init__(self) -> None:
        check_int(self.timestamp, "an LWWRegister's timestamp", minimum=0)
        if not isinstance(self.node, str):
            raise TypeError(f"an LWWRegister's node must be a str, not {self.node!r:.80}")
        if not self.node:
            if self.timestamp != 0 or self.value is not None:
                raise ValueError(
                    "an LWWRegister without a node is the empty register (value None, "
                    "timestamp 0); a written one names its node"
                )
        elif self.timestamp < 1:
            raise ValueError(f"a written LWWRegister has a timestamp >= 1, not {self.timestamp!r}")

    def set(
        self, node: str, value: T, *, clock: Callable[[], int] | None = None
    ) -> tuple[LWWRegister[T], LWWRegister[T]]:
        """Write ``value`` on behalf of ``node``: ``(new register, delta)``, both the new
        register. Its timestamp is ``max(clock(), self.timestamp + 1)``, so a write
        always supersedes the state it was made on, even with a clock behind; ``clock``
        defaults to :func:`wall_clock_ms`.

        Raises:
            TypeError: ``node`` is not a str, ``value`` cannot cross nodes unchanged (see
                the class), ``clock`` is not callable or did not return an int.
            ValueError: ``node`` is empty, or ``value`` is NaN.
        """
        check_node(node)
        check_value(value)
        if clock is None:
            now = wall_clock_ms()
        elif not callable(clock):
            raise TypeError(f"clock must be a callable returning an int, not {clock!r:.80}")
        else:
            now = check_int(clock(), "clock()")
        register: LWWRegister[T] = LWWRegister(value, max(now, self.timestamp + 1), node)
        return register, register

    def merge(self, other: LWWRegister[T]) -> LWWRegister[T]:
        """The write with the greater timestamp; on a tie, that of the lower node id.

        Raises:
            TypeError: ``other`` is not an LWWRegister.
        """
        check_mergeable(self, other)
        if self.timestamp != other.timestamp:
            return self if self.timestamp > other.timestamp else other
        if self.node != other.node:
            return self if self.node < other.node else other
        if self.value == other.value:
            return self
        # one node wrote two values at one timestamp (two replicas sharing a node id):
        # still pick the same one everywhere
        return self if repr(self.value) <= repr(other.value) else other
