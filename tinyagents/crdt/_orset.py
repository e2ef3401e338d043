"""ORSet: an observed-remove set whose adds win over concurrent removes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast, final

import attrs

from ._base import (
    CausalContext,
    Dot,
    Element,
    FrozenDict,
    Parametric,
    Replicated,
    check_dot,
    check_element,
    check_mergeable,
    check_node,
)

__all__ = ["ORSet"]

E = TypeVar("E", bound=Element)

_NO_DOTS: frozenset[Dot] = frozenset()


def _freeze_entries(entries: Mapping[Any, Iterable[Dot]]) -> Mapping[Element, frozenset[Dot]]:
    if not isinstance(entries, Mapping):
        raise TypeError(f"ORSet entries must map elements to dots, not {entries!r:.80}")
    checked: dict[Element, frozenset[Dot]] = {}
    for element, dots in entries.items():
        check_element(element)
        if isinstance(dots, str | bytes | Mapping) or not isinstance(dots, Iterable):
            raise TypeError(f"an ORSet element's dots must be a collection, not {dots!r:.80}")
        frozen = frozenset(check_dot(dot) for dot in dots)
        if frozen:
            checked[element] = frozen
    return FrozenDict(checked)


def _check_context(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, CausalContext):
        raise TypeError(f"an ORSet's context must be a CausalContext, not {value!r:.80}")


def check_store(entries: Mapping[Any, Iterable[Dot]], context: CausalContext, kind: str) -> None:
    """Raise ``ValueError`` unless every dot of ``entries`` is in ``context`` and under
    one key only (what every state made by the mutators and merges satisfies)."""
    seen: set[Dot] = set()
    for key, dots in entries.items():
        for dot in dots:
            if not context.covers(dot):
                raise ValueError(f"{kind} dot {dot!r} of {key!r:.80} is not in its causal context")
            if dot in seen:
                raise ValueError(f"{kind} dot {dot!r} is under two keys")
            seen.add(dot)


def merge_dots(
    mine: frozenset[Dot],
    my_context: CausalContext,
    theirs: frozenset[Dot],
    their_context: CausalContext,
) -> frozenset[Dot]:
    """The dot kernel's rule: keep a dot in both stores, or in one store and not seen by
    the other's context (which then removed it)."""
    if mine == theirs:
        return mine
    kept = mine & theirs
    kept |= {dot for dot in mine - theirs if not their_context.covers(dot)}
    kept |= {dot for dot in theirs - mine if not my_context.covers(dot)}
    return frozenset(kept)


@final
@attrs.frozen
class ORSet(Parametric[E], Replicated):
    """An observed-remove set: a remove takes away the adds it has seen, so an add
    concurrent with a remove of the same element wins.

    Each add makes a *dot*, ``(node, counter)``; ``entries`` maps each element to the
    dots that keep it in the set, and ``context`` (a :class:`CausalContext`) holds every
    dot this state has seen. A dot seen but no longer in ``entries`` was removed, so a
    removed element leaves nothing behind but its dots in the context, which compacts
    to one counter per node once the deltas have arrived (no tombstones).

    Elements are str, int, bytes, bool, float (not NaN) or None, of exactly those types;
    tuples are refused (they would arrive on another node as lists). Elements equal in
    Python (``1``, ``1.0``, ``True``) are one element.

    ::

        tags, delta = ORSet().add("a", "urgent")
        "urgent" in tags                         # True
        tags, delta = tags.remove("a", "urgent")
    """

    entries: Mapping[Element, frozenset[Dot]] = attrs.field(
        factory=FrozenDict, converter=_freeze_entries
    )
    context: CausalContext = attrs.field(factory=CausalContext, validator=_check_context)

    def __attrs_post_init__(self) -> None:
        check_store(self.entries, self.context, "ORSet")

    # -- reads -----------------------------------------------------------------------

    @property
    def elements(self) -> frozenset[E]:
        """The elements in the set."""
        return cast(frozenset[E], frozenset(self.entries))

    def __contains__(self, element: object) -> bool:
        return element in self.entries

    def __iter__(self) -> Iterator[E]:
        return cast(Iterator[E], iter(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    # -- mutators --------------------------------------------------------------------

    def add(self, node: str, element: E) -> tuple[ORSet[E], ORSet[E]]:
        """Add ``element`` on behalf of ``node``: ``(new set, delta)``. The delta holds
        the element under a new dot of ``node``, and a context of that dot and the
        element's former dots, which it supersedes (adding a present element again
        refreshes it, so it survives removes concurrent with this add).

        Raises:
            TypeError: ``node`` is not a str, or ``element`` is not an allowed element.
            ValueError: ``node`` is empty, or ``element`` is NaN.
        """
        check_node(node)
        check_element(element)
        dot = self.context.next_dot(node)
        former = self.entries.get(element, _NO_DOTS)
        delta: ORSet[E] = ORSet({element: frozenset({dot})}, CausalContext.of(former | {dot}))
        # what self.merge(delta) gives, without visiting every element: the delta's
        # context covers only this element's dots, which the new dot replaces
        entries = dict(self.entries)
        entries[element] = frozenset({dot})
        return _merged(entries, self.context.merge(delta.context)), delta

    def remove(self, node: str, element: E) -> tuple[ORSet[E], ORSet[E]]:
        """Remove ``element``: ``(new set, delta)``. The delta has no entries and a
        context of the element's dots, so it removes the adds seen here and no others;
        when the element is absent the set is unchanged and the delta empty. ``node``
        is checked but needs no dot.

        Raises:
            TypeError: ``node`` is not a str, or ``element`` is not an allowed element.
            ValueError: ``node`` is empty, or ``element`` is NaN.
        """
        check_node(node)
        check_element(element)
        dots = self.entries.get(element)
        if not dots:
            return self, ORSet()
        entries = dict(self.entries)
        del entries[element]  # the delta's context covers this element's dots only
        return self._forget(dots, entries)

    def clear(self, node: str) -> tuple[ORSet[E], ORSet[E]]:
        """Remove every element seen here: ``(new set, delta)``, the delta a context of
        all their dots (empty when the set is).

        Raises:
            TypeError: ``node`` is not a str.
            ValueError: ``node`` is empty.
        """
        check_node(node)
        dots = _NO_DOTS.union(*self.entries.values())
        if not dots:
            return self, ORSet()
        return self._forget(dots, {})

    def _forget(
        self, dots: frozenset[Dot], entries: dict[Element, frozenset[Dot]]
    ) -> tuple[ORSet[E], ORSet[E]]:
        """The delta removing ``dots``, and the new set: ``entries`` (this set's entries
        without those dots) with the delta's context (``self.merge(delta)``, made
        directly)."""
        delta: ORSet[E] = ORSet(context=CausalContext.of(dots))
        return _merged(entries, self.context.merge(delta.context)), delta

    # -- merge -----------------------------------------------------------------------

    def merge(self, other: ORSet[E]) -> ORSet[E]:
        """The join: an element's dot stays if both sides have it, or if one side has it
        and the other has not seen it; the contexts are united (and compacted).

        Raises:
            TypeError: ``other`` is not an ORSet.
        """
        check_mergeable(self, other)
        if other == self:
            return self
        mine, theirs = self.entries, other.entries
        my_context, their_context = self.context, other.context
        entries: dict[Element, frozenset[Dot]] = {}
        for element, dots in mine.items():
            kept = merge_dots(dots, my_context, theirs.get(element, _NO_DOTS), their_context)
            if kept:
                entries[element] = kept
        for element, dots in theirs.items():
            if element not in mine:
                kept = frozenset(dot for dot in dots if not my_context.covers(dot))
                if kept:
                    entries[element] = kept
        return _merged(entries, my_context.merge(their_context))


def _merged(entries: dict[Element, frozenset[Dot]], context: CausalContext) -> ORSet[Any]:
    """The ORSet a merge made of two valid states: valid by construction, so built
    without the constructor's checks (which would cost as much as the merge itself)."""
    merged: ORSet[Any] = object.__new__(ORSet)
    object.__setattr__(merged, "entries", FrozenDict(entries))
    object.__setattr__(merged, "context", context)
    return merged
