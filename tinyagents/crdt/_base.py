"""What every replicated data type is, and the pieces the types share: dots, the causal
context, the immutable mapping their states are made of, and the argument checks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, runtime_checkable

import attrs

from .._validate import check_int
from ..actor._ref import ActorRef

__all__ = [
    "CausalContext",
    "Dot",
    "Element",
    "FrozenDict",
    "Key",
    "Parametric",
    "Replicated",
    "ReplicatedData",
    "check_dot",
    "check_element",
    "check_key",
    "check_mergeable",
    "check_node",
    "check_value",
]

K = TypeVar("K")
V = TypeVar("V")

Dot = tuple[str, int]
"""A write's identity: the node that made it and that node's counter (1, 2, 3...)."""

Element = str | int | bytes | bool | float | None
"""What an :class:`~tinyagents.crdt.ORSet` may hold: values that cross nodes unchanged."""

Key = str | int | bytes
"""What keys an :class:`~tinyagents.crdt.ORMap` or :class:`~tinyagents.crdt.LWWMap`."""

_ELEMENT_TYPES = (str, int, bytes, bool, float, type(None))
_KEY_TYPES = (str, int, bytes)


if TYPE_CHECKING:
    from typing import Generic as Parametric
else:

    class Parametric:
        """A base that makes ``ORSet[str]`` subscriptable at run time without making the
        class a ``typing.Generic``: the codec structures a value by its bare class, which
        cattrs refuses for a generic class whose parameters it is not given. Type checkers
        see ``typing.Generic``."""

        __slots__ = ()

        def __class_getitem__(cls, item: object) -> type:
            return cls


@runtime_checkable
class ReplicatedData(Protocol):
    """A state-based CRDT value: what a replicator relies on.

    * The class called with no arguments, or its :meth:`empty`, is the empty state: the
      identity of merge (``x.merge(type(x)()) == x``).
    * :meth:`merge` is the join: commutative, associative and idempotent, so replicas
      that have merged the same states hold equal values whatever the order, and
      merging a state again changes nothing.
    * Mutators return ``(new_state, delta)``. A delta is a value of the same type,
      merged like a state: ``state.merge(delta)`` applies it anywhere (in any order,
      any number of times) and ``delta1.merge(delta2)`` combines two deltas.

    Every value is immutable and crosses nodes through the transport's codec.
    """

    @classmethod
    def empty(cls) -> Self:
        """The empty state (the same as calling the class with no arguments)."""
        ...

    def merge(self, other: Self, /) -> Self:
        """The join of this state and ``other``.

        Raises:
            TypeError: ``other`` is not of the same type.
        """
        ...


class Replicated:
    """The base of the replicated data types: ``empty()``."""

    __slots__ = ()

    @classmethod
    def empty(cls) -> Self:
        """The empty state (the same as calling the class with no arguments)."""
        return cls()


class FrozenDict(Mapping[K, V]):
    """An immutable, hashable dict: the mappings inside the states. It compares equal to
    any mapping with the same items; its repr is a dict's."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._data)


# -- argument checks -------------------------------------------------------------------


def check_node(node: object, name: str = "node") -> str:
    """A replica's node id: a non-empty ``str``."""
    if not isinstance(node, str):
        raise TypeError(f"{name} must be a non-empty str (a node id), not {node!r:.80}")
    if not node:
        raise ValueError(f"{name} must be a non-empty str (a node id), not ''")
    return node


def check_dot(dot: object) -> Dot:
    """A dot: a ``(node, counter)`` pair, the node a non-empty str, the counter an int
    ``>= 1``."""
    if not isinstance(dot, tuple | list) or len(dot) != 2:
        raise TypeError(f"a dot must be a (node, counter) pair, not {dot!r:.80}")
    node, counter = dot
    check_node(node, "a dot's node")
    check_int(counter, "a dot's counter", minimum=1)
    return (node, counter)


def check_element(element: object, name: str = "an ORSet element") -> Element:
    """An :data:`Element`: a str, int, bytes, bool, float (not NaN) or None, of exactly
    that type (a subclass would arrive on another node as its base type)."""
    kind = type(element)
    if kind not in _ELEMENT_TYPES:
        if isinstance(element, tuple):
            raise TypeError(
                f"{name} cannot be a tuple (it would arrive on another node as a list): "
                f"{element!r:.80}"
            )
        raise TypeError(
            f"{name} must be a str, int, bytes, bool, float or None, not {kind.__qualname__}"
        )
    if kind is float and math.isnan(element):  # type: ignore[arg-type]
        raise ValueError(f"{name} cannot be NaN (it is not equal to itself)")
    return element  # type: ignore[return-value]


def check_key(key: object, name: str = "a map key") -> Key:
    """A :data:`Key`: a str, int or bytes, of exactly that type (not a bool)."""
    if type(key) not in _KEY_TYPES:
        raise TypeError(f"{name} must be a str, int or bytes, not {key!r:.80}")
    return key  # type: ignore[return-value]


def check_value(value: object, name: str = "an LWWRegister value") -> None:
    """A value that crosses nodes unchanged: None, a bool, int, float (not NaN), str or
    bytes, an ActorRef, or a list or dict of them (dict keys being str, int, bytes,
    bool, float or None)."""
    kind = type(value)
    if kind in _ELEMENT_TYPES:
        if kind is float and math.isnan(value):  # type: ignore[arg-type]
            raise ValueError(f"{name} cannot be NaN (it is not equal to itself)")
        return
    if kind is list:
        for item in value:  # type: ignore[attr-defined]
            check_value(item, name)
        return
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            check_element(key, f"a dict key in {name}")
            check_value(item, name)
        return
    if isinstance(value, ActorRef):
        return
    if isinstance(value, tuple):
        raise TypeError(
            f"{name} cannot hold a tuple (it would arrive on another node as a list): {value!r:.80}"
        )
    raise TypeError(
        f"{name} must be None, a bool, int, float, str, bytes, ActorRef, or a list or "
        f"dict of them, not {kind.__qualname__}"
    )


def check_mergeable(value: object, other: object) -> None:
    """Raise ``TypeError`` unless ``other`` is of the same type as ``value``."""
    if type(other) is not type(value):
        raise TypeError(
            f"cannot merge a {type(value).__name__} with a {type(other).__name__}: "
            "merge values of the same type"
        )


# -- the causal context ----------------------------------------------------------------


def _freeze_vector(vector: Mapping[str, int]) -> Mapping[str, int]:
    if not isinstance(vector, Mapping):
        raise TypeError(f"a causal context's vector must be a mapping, not {vector!r:.80}")
    checked: dict[str, int] = {}
    for node, counter in vector.items():
        check_node(node, "a causal context's node")
        check_int(counter, "a causal context's counter", minimum=0)
        if counter:
            checked[node] = counter
    return FrozenDict(checked)


def _freeze_dots(dots: Iterable[Dot]) -> frozenset[Dot]:
    if isinstance(dots, str | bytes | Mapping) or not isinstance(dots, Iterable):
        raise TypeError(f"dots must be a collection of (node, counter) pairs, not {dots!r:.80}")
    return frozenset(check_dot(dot) for dot in dots)


@attrs.frozen
class CausalContext:
    """The dots a state has seen: a version vector (``node -> n``, meaning dots 1 to
    ``n`` of that node) and a *dot cloud*, the dots seen beyond the vector's range.

    Deltas arrive in any order, so a state may see dot 5 of a node before dot 4: that
    dot waits in the cloud. Every construction normalises: a cloud dot that continues
    its node's range folds into the vector, one already covered is dropped, and so is a
    zero in the vector. Once a state has seen every dot up to some counter of each
    node, the cloud is empty and the context is one int per node.
    """

    vector: Mapping[str, int] = attrs.field(factory=FrozenDict, converter=_freeze_vector)
    cloud: frozenset[Dot] = attrs.field(default=frozenset(), converter=_freeze_dots)

    def __attrs_post_init__(self) -> None:
        if not self.cloud:
            return
        vector = dict(self.vector)
        beyond: dict[str, list[int]] = {}
        for node, counter in self.cloud:
            if counter > vector.get(node, 0):
                beyond.setdefault(node, []).append(counter)
        cloud: set[Dot] = set()
        for node, counters in beyond.items():
            top = vector.get(node, 0)
            for counter in sorted(counters):
                if counter == top + 1:
                    top = counter
                else:
                    cloud.add((node, counter))
            if top:
                vector[node] = top
        object.__setattr__(self, "vector", FrozenDict(vector))
        object.__setattr__(self, "cloud", frozenset(cloud))

    @classmethod
    def of(cls, dots: Iterable[Dot]) -> CausalContext:
        """The context that has seen exactly ``dots``."""
        return cls(cloud=frozenset(dots))

    def covers(self, dot: Dot) -> bool:
        """Whether this context has seen ``dot``."""
        return dot[1] <= self.vector.get(dot[0], 0) or dot in self.cloud

    def max_counter(self, node: str) -> int:
        """The greatest counter of ``node`` seen (0 if none)."""
        top = self.vector.get(node, 0)
        for dot_node, counter in self.cloud:
            if dot_node == node and counter > top:
                top = counter
        return top

    def next_dot(self, node: str) -> Dot:
        """A dot of ``node`` that this context has not seen: one past its greatest."""
        return (node, self.max_counter(node) + 1)

    def merge(self, other: CausalContext) -> CausalContext:
        """The union of the two contexts, normalised."""
        if not isinstance(other, CausalContext):
            raise TypeError(f"cannot merge a CausalContext with a {type(other).__name__}")
        if other == self:
            return self
        vector = dict(self.vector)
        for node, counter in other.vector.items():
            if counter > vector.get(node, 0):
                vector[node] = counter
        return CausalContext(vector, self.cloud | other.cloud)
