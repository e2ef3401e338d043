"""Counters: GCounter (grow-only) and PNCounter (up and down)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

import attrs

from .._validate import check_int
from ._base import FrozenDict, Replicated, check_mergeable, check_node

__all__ = ["GCounter", "PNCounter"]


def _freeze_counts(counts: Mapping[str, int]) -> Mapping[str, int]:
    if not isinstance(counts, Mapping):
        raise TypeError(f"GCounter counts must be a mapping of node to int, not {counts!r:.80}")
    checked: dict[str, int] = {}
    for node, count in counts.items():
        check_node(node, "a GCounter's node")
        check_int(count, "a GCounter's count", minimum=0)
        if count:
            checked[node] = count
    return FrozenDict(checked)


@final
@attrs.frozen
class GCounter(Replicated):
    """A counter that only grows: one count per node, its value their sum.

    ``counts`` maps each node to how much it has added (zeros are dropped, so equal
    counters compare equal). Merging takes the greater count of each node.

    ::

        counter, delta = GCounter().increment("a", 2)   # counter.value == 2
        other = GCounter().merge(delta)                 # other == counter
    """

    counts: Mapping[str, int] = attrs.field(factory=FrozenDict, converter=_freeze_counts)

    @property
    def value(self) -> int:
        """The sum of every node's count."""
        return sum(self.counts.values())

    def increment(self, node: str, n: int = 1) -> tuple[GCounter, GCounter]:
        """Add ``n`` on behalf of ``node``: ``(new counter, delta)``, the delta holding
        ``node``'s new count alone (an empty counter when ``n`` is 0).

        Raises:
            TypeError: ``node`` is not a str, or ``n`` is not an int.
            ValueError: ``node`` is empty, or ``n`` is negative (a GCounter never
                decreases: use a PNCounter).
        """
        check_node(node)
        check_int(n, "n", minimum=0)
        if n == 0:
            return self, GCounter()
        count = self.counts.get(node, 0) + n
        return GCounter({**self.counts, node: count}), GCounter({node: count})

    def merge(self, other: GCounter) -> GCounter:
        """The greater count of each node.

        Raises:
            TypeError: ``other`` is not a GCounter.
        """
        check_mergeable(self, other)
        if other == self:
            return self
        counts = dict(self.counts)
        for node, count in other.counts.items():
            if count > counts.get(node, 0):
                counts[node] = count
        return GCounter(counts)


def _check_gcounter(_instance: object, attribute: attrs.Attribute[GCounter], value: object) -> None:
    if not isinstance(value, GCounter):
        raise TypeError(f"PNCounter {attribute.name} must be a GCounter, not {value!r:.80}")


@final
@attrs.frozen
class PNCounter(Replicated):
    """A counter that goes up and down: two GCounters, its value the increments less the
    decrements (it may be negative).

    ::

        counter, _ = PNCounter().increment("a", 5)
        counter, delta = counter.decrement("b", 7)      # counter.value == -2
    """

    increments: GCounter = attrs.field(factory=GCounter, validator=_check_gcounter)
    decrements: GCounter = attrs.field(factory=GCounter, validator=_check_gcounter)

    @property
    def value(self) -> int:
        """The increments less the decrements."""
        return self.increments.value - self.decrements.value

    def increment(self, node: str, n: int = 1) -> tuple[PNCounter, PNCounter]:
        """Add ``n`` on behalf of ``node``: ``(new counter, delta)``.

        Raises:
            TypeError: ``node`` is not a str, or ``n`` is not an int.
            ValueError: ``node`` is empty, or ``n`` is negative (use :meth:`decrement`).
        """
        increments, delta = self.increments.increment(node, n)
        return PNCounter(increments, self.decrements), PNCounter(increments=delta)

    def decrement(self, node: str, n: int = 1) -> tuple[PNCounter, PNCounter]:
        """Subtract ``n`` on behalf of ``node``: ``(new counter, delta)``.

        Raises:
            TypeError: ``node`` is not a str, or ``n`` is not an int.
            ValueError: ``node`` is empty, or ``n`` is negative (use :meth:`increment`).
        """
        decrements, delta = self.decrements.increment(node, n)
        return PNCounter(self.increments, decrements), PNCounter(decrements=delta)

    def merge(self, other: PNCounter) -> PNCounter:
        """The increments merged and the decrements merged.

        Raises:
            TypeError: ``other`` is not a PNCounter.
        """
        check_mergeable(self, other)
        if other == self:
            return self
        return PNCounter(
            self.increments.merge(other.increments), self.decrements.merge(other.decrements)
        )
