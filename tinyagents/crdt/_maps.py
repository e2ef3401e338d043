"""Maps: ORMap (keys to replicated values) and LWWMap (keys to last-write-wins values)."""

from __future__ import annotations

import functools
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, TypeVar, cast, final

import attrs
import cattrs

from ._base import (
    CausalContext,
    Dot,
    FrozenDict,
    Key,
    Parametric,
    Replicated,
    ReplicatedData,
    check_dot,
    check_key,
    check_mergeable,
    check_node,
)
from ._counters import GCounter, PNCounter
from ._orset import ORSet, check_store
from ._register import LWWRegister

__all__ = ["LWWMap", "ORMap"]

K = TypeVar("K", bound=Key)
V = TypeVar("V", bound=ReplicatedData)
T = TypeVar("T")

Write = tuple[Dot, Any]
"""One write of a key: its dot and the key's whole value as that write made it."""

_NO_WRITES: tuple[Write, ...] = ()
_MISSING: Any = object()


def _value_types() -> dict[str, type[Any]]:
    return {cls.__name__: cls for cls in (GCounter, PNCounter, LWWRegister, ORSet, ORMap, LWWMap)}


@functools.cache
def _converter() -> cattrs.Converter:
    """Structures the values of a decoded map (which the codec leaves as dicts, since
    their type is in the map's ``kind``)."""
    from cattrs.preconf.msgpack import make_converter

    return make_converter()


def _freeze_writes(entries: Mapping[Any, Iterable[Write]]) -> Mapping[Key, tuple[Write, ...]]:
    if not isinstance(entries, Mapping):
        raise TypeError(f"ORMap entries must map keys to writes, not {entries!r:.80}")
    checked: dict[Key, tuple[Write, ...]] = {}
    for key, writes in entries.items():
        check_key(key)
        if isinstance(writes, str | bytes | Mapping) or not isinstance(writes, Iterable):
            raise TypeError(f"an ORMap key's writes must be (dot, value) pairs, not {writes!r:.80}")
        by_dot: dict[Dot, Any] = {}
        for write in writes:
            if not isinstance(write, tuple | list) or len(write) != 2:
                raise TypeError(f"an ORMap write must be a (dot, value) pair, not {write!r:.80}")
            by_dot[check_dot(write[0])] = write[1]
        if by_dot:
            checked[key] = tuple(sorted(by_dot.items()))
    return FrozenDict(checked)


def _check_context(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, CausalContext):
        raise TypeError(f"an ORMap's context must be a CausalContext, not {value!r:.80}")


def _check_kind(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, str) or (value and value not in _value_types()):
        names = ", ".join(_value_types())
        raise ValueError(f"an ORMap's kind must be '' or one of {names}, not {value!r:.80}")


def _kind_of(value: object, what: str) -> str:
    name = type(value).__name__
    if _value_types().get(name) is not type(value):
        names = ", ".join(_value_types())
        raise TypeError(f"{what} must be a {names}, not {type(value).__qualname__}")
    return name


@final
@attrs.frozen
class ORMap(Parametric[K, V], Replicated):
    """A map of keys to replicated values (GCounter, PNCounter, LWWRegister, ORSet, ORMap
    or LWWMap, one type per map), its keys added and removed like an ORSet's elements:
    an update concurrent with a remove of the same key wins.

    Each :meth:`update` is a *write*: a new dot of the updating node, carrying the
    key's whole new value, which supersedes the writes the update has seen (so a key
    has one write per concurrent writer, and the next update folds them into one). A
    key's value is the merge of its surviving writes. :meth:`remove` removes the writes
    it has seen. ``entries`` maps keys to their writes, ``context`` holds every dot
    seen, and ``kind`` names the values' type (``""`` while the map has never held
    one).

    Semantics of remove and update:

    * an update concurrent with a remove keeps the key, with the value that update
      wrote: the value as the updating replica had it, including whatever the removing
      replica had seen too (a removed counter's counts come back in that case);
    * after a remove that every replica has seen, the key starts afresh: an update
      starts from ``initial`` and no old value comes back;
    * a removed key leaves nothing but its dots in the context (no tombstones);
    * a delta of an update carries the key's whole value, not the value's delta.

    Keys are str, int or bytes.

    ::

        visits, delta = ORMap().update(
            "a", "home", lambda c: c.increment("a"), initial=GCounter()
        )
        visits["home"].value                     # 1
    """

    entries: Mapping[Key, tuple[Write, ...]] = attrs.field(
        factory=FrozenDict, converter=_freeze_writes
    )
    context: CausalContext = attrs.field(factory=CausalContext, validator=_check_context)
    kind: str = attrs.field(default="", validator=_check_kind)

    def __attrs_post_init__(self) -> None:
        if self.entries and not self.kind:
            raise ValueError("an ORMap that holds values names their kind")
        check_store(
            {key: [dot for dot, _ in writes] for key, writes in self.entries.items()},
            self.context,
            "ORMap",
        )
        if not self.entries:
            return
        cls = _value_types()[self.kind]
        decoded = False
        entries: dict[Key, tuple[Write, ...]] = {}
        for key, writes in self.entries.items():
            checked = []
            for dot, value in writes:
                if isinstance(value, dict):
                    value = _converter().structure(value, cls)
                    decoded = True
                elif type(value) is not cls:
                    raise TypeError(
                        f"an ORMap of {self.kind} values cannot hold a {type(value).__qualname__}"
                    )
                checked.append((dot, value))
            entries[key] = tuple(checked)
        if decoded:
            object.__setattr__(self, "entries", FrozenDict(entries))

    # -- reads -----------------------------------------------------------------------

    @functools.cached_property
    def _values(self) -> dict[K, V]:
        values: dict[K, V] = {}
        for key, writes in self.entries.items():
            value = writes[0][1]
            for _, other in writes[1:]:
                value = value.merge(other)
            values[cast(K, key)] = value
        return values

    @property
    def value(self) -> dict[K, V]:
        """The map as a new dict of each key's value."""
        return dict(self._values)

    def get(self, key: K, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if the key is absent."""
        return self._values.get(key, default)

    def __getitem__(self, key: K) -> V:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self) -> KeysView[K]:
        """The keys present."""
        return self._values.keys()

    def values(self) -> ValuesView[V]:
        """The values of the keys present."""
        return self._values.values()

    def items(self) -> ItemsView[K, V]:
        """``(key, value)`` of the keys present."""
        return self._values.items()

    # -- mutators --------------------------------------------------------------------

    def update(
        self, node: str, key: K, fn: Callable[[V], V | tuple[V, V]], *, initial: V
    ) -> tuple[ORMap[K, V], ORMap[K, V]]:
        """Write ``key``'s value on behalf of ``node``: ``(new map, delta)``.

        ``fn`` is given the key's value (``initial`` if the key is absent) and returns
        the new value, or ``(new value, delta)`` as the values' mutators do::

            m, delta = m.update("a", "visits", lambda c: c.increment("a"), initial=GCounter())

        The delta holds the key's new value whole under a new dot of ``node``, with a
        context superseding the key's former writes.

        Raises:
            TypeError: ``node`` is not a str, ``key`` is not a str, int or bytes,
                ``initial`` is not a replicated value of this map's kind, or ``fn``
                returned something else than a value of that type.
            ValueError: ``node`` is empty.
        """
        check_node(node)
        check_key(key)
        kind = _kind_of(initial, "initial")
        if self.kind and kind != self.kind:
            raise TypeError(f"initial must be a {self.kind}, the kind of this map, not a {kind}")
        current = self._values.get(key, initial)
        result = fn(current)
        if isinstance(result, tuple):
            if len(result) != 2:
                raise TypeError(
                    f"fn must return the new value or (new value, delta), not {result!r:.80}"
                )
            result = result[0]
        if type(result) is not type(initial):
            raise TypeError(
                f"fn must return a {kind} (or a ({kind}, delta) pair), not {result!r:.80}"
            )
        dot = self.context.next_dot(node)
        former = [write_dot for write_dot, _ in self.entries.get(key, _NO_WRITES)]
        delta: ORMap[K, V] = ORMap({key: ((dot, result),)}, CausalContext.of([*former, dot]), kind)
        return self.merge(delta), delta

    def remove(self, node: str, key: K) -> tuple[ORMap[K, V], ORMap[K, V]]:
        """Remove ``key``: ``(new map, delta)``, the delta a context of the key's writes
        seen here (so updates concurrent with it survive). When the key is absent the
        map is unchanged and the delta empty. ``node`` is checked but needs no dot.

        Raises:
            TypeError: ``node`` is not a str, or ``key`` is not a str, int or bytes.
            ValueError: ``node`` is empty.
        """
        check_node(node)
        check_key(key)
        writes = self.entries.get(key)
        if not writes:
            return self, ORMap()
        delta: ORMap[K, V] = ORMap(
            context=CausalContext.of(dot for dot, _ in writes), kind=self.kind
        )
        return self.merge(delta), delta

    # -- merge -----------------------------------------------------------------------

    def merge(self, other: ORMap[K, V]) -> ORMap[K, V]:
        """The join: a write stays if both sides have it, or if one side has it and the
        other has not seen its dot; the contexts are united. A write on both sides has
        its values merged (they are equal unless two replicas share a node id).

        Raises:
            TypeError: ``other`` is not an ORMap, or holds values of another type.
        """
        check_mergeable(self, other)
        if other == self:
            return self
        if self.kind and other.kind and self.kind != other.kind:
            raise TypeError(
                f"cannot merge an ORMap of {self.kind} values with one of {other.kind} values"
            )
        mine, theirs = self.entries, other.entries
        my_context, their_context = self.context, other.context
        entries: dict[Key, tuple[Write, ...]] = {}
        for key, writes in mine.items():
            kept = _merge_writes(writes, my_context, theirs.get(key, _NO_WRITES), their_context)
            if kept:
                entries[key] = kept
        for key, writes in theirs.items():
            if key not in mine:
                kept = tuple(write for write in writes if not my_context.covers(write[0]))
                if kept:
                    entries[key] = kept
        return ORMap(entries, my_context.merge(their_context), self.kind or other.kind)


def _merge_writes(
    mine: tuple[Write, ...],
    my_context: CausalContext,
    theirs: tuple[Write, ...],
    their_context: CausalContext,
) -> tuple[Write, ...]:
    if mine == theirs:
        return mine
    their_values = dict(theirs)
    kept: dict[Dot, Any] = {}
    for dot, value in mine:
        other = their_values.pop(dot, _MISSING)
        if other is not _MISSING:
            kept[dot] = value if value == other else value.merge(other)
        elif not their_context.covers(dot):
            kept[dot] = value
    for dot, value in their_values.items():
        if not my_context.covers(dot):
            kept[dot] = value
    return tuple(kept.items())


def _check_registers(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, ORMap):
        raise TypeError(f"an LWWMap's registers must be an ORMap, not {value!r:.80}")
    if value.kind not in ("", "LWWRegister"):
        raise TypeError(f"an LWWMap's registers hold LWWRegisters, not {value.kind} values")


@final
@attrs.frozen
class LWWMap(Parametric[K, T], Replicated):
    """A map of keys to values whose last write wins: an :class:`ORMap` of
    :class:`LWWRegister` values (``registers``).

    Concurrent puts of a key keep the one with the greater timestamp (on a tie, that of
    the lower node id); a put concurrent with a remove of the key wins; after a remove
    that every replica has seen, the key is gone and nothing of it comes back. Values
    are what an LWWRegister holds (None, bools, ints, floats, str, bytes, ActorRefs, and
    lists and dicts of them); keys are str, int or bytes.

    ::

        config, delta = LWWMap().put("a", "model", "small")
        config["model"]                          # "small"
    """

    registers: ORMap[K, LWWRegister[T]] = attrs.field(factory=ORMap, validator=_check_registers)

    # -- reads -----------------------------------------------------------------------

    @property
    def value(self) -> dict[K, T]:
        """The map as a new dict of each key's value."""
        return {key: register.value for key, register in self.registers.items()}

    def get(self, key: K, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if the key is absent."""
        register = self.registers.get(key)
        return default if register is None else register.value

    def __getitem__(self, key: K) -> T:
        return cast(T, self.registers[key].value)

    def __contains__(self, key: object) -> bool:
        return key in self.registers

    def __iter__(self) -> Iterator[K]:
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    def keys(self) -> KeysView[K]:
        """The keys present."""
        return self.registers.keys()

    def values(self) -> list[T]:
        """The values of the keys present, in the order of :meth:`keys`."""
        return [register.value for register in self.registers.values()]

    def items(self) -> list[tuple[K, T]]:
        """``(key, value)`` of the keys present."""
        return [(key, register.value) for key, register in self.registers.items()]

    # -- mutators --------------------------------------------------------------------

    def put(
        self, node: str, key: K, value: T, *, clock: Callable[[], int] | None = None
    ) -> tuple[LWWMap[K, T], LWWMap[K, T]]:
        """Write ``value`` at ``key`` on behalf of ``node``: ``(new map, delta)``. The
        register's timestamp is ``max(clock(), its timestamp + 1)`` as in
        :meth:`LWWRegister.set` (``clock`` defaults to the wall clock in milliseconds).

        Raises:
            TypeError: ``node`` is not a str, ``key`` is not a str, int or bytes,
                ``value`` cannot cross nodes unchanged, or ``clock`` is not a callable
                returning an int.
            ValueError: ``node`` is empty, or ``value`` is NaN.
        """

        def write(register: LWWRegister[T]) -> LWWRegister[T]:
            return register.set(node, value, clock=clock)[0]

        check_node(node)
        registers, delta = self.registers.update(node, key, write, initial=LWWRegister())
        return LWWMap(registers), LWWMap(delta)

    def remove(self, node: str, key: K) -> tuple[LWWMap[K, T], LWWMap[K, T]]:
        """Remove ``key``: ``(new map, delta)`` (see :meth:`ORMap.remove`); an absent
        key gives the map unchanged and an empty delta.

        Raises:
            TypeError: ``node`` is not a str, or ``key`` is not a str, int or bytes.
            ValueError: ``node`` is empty.
        """
        registers, delta = self.registers.remove(node, key)
        if registers is self.registers:
            return self, LWWMap(delta)
        return LWWMap(registers), LWWMap(delta)

    def merge(self, other: LWWMap[K, T]) -> LWWMap[K, T]:
        """The registers merged.

        Raises:
            TypeError: ``other`` is not an LWWMap.
        """
        check_mergeable(self, other)
        if other == self:
            return self
        return LWWMap(self.registers.merge(other.registers))
