"""The laws of the CRDT types, on random histories: 2 to 4 replicas change their state,
merge each other's states and receive each other's deltas, in random orders.

For every type: merge is commutative, associative and idempotent, with the empty state
as identity; the deltas of a run, applied in any order, with duplicates, or combined
first, give the state that merging every replica's state gives. And: an ORSet (and the
keys of the maps) keeps exactly the adds that no remove has seen, so adds win over
concurrent removes; a PNCounter ends at the increments less the decrements; the causal
context of the merged deltas has no dot cloud left.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyagents.crdt import GCounter, LWWMap, LWWRegister, ORMap, ORSet, PNCounter
from tinyagents.transport import Codec

LAWS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NODES = ["a", "b", "c", "d"]
ELEMENTS = ["x", "y", 3, b"z", None, 2.5]
KEYS = ["k", 1, b"b"]
VALUES = ["v", 1, None, [1, 2], {"k": b"x"}]

Op = tuple[Any, ...]


class NoRefs:
    """Wire hooks without a transport (the states hold no refs or channels)."""

    peer = "peer"

    def ref_to_wire(self, ref: Any) -> list[object]:
        raise AssertionError("no refs here")

    def ref_from_wire(self, data: list[object]) -> Any:
        raise AssertionError("no refs here")

    def channel_to_wire(self, channel: Any) -> int:
        raise AssertionError("no channels here")

    def channel_from_wire(self, stream_id: int) -> Any:
        raise AssertionError("no channels here")


def counted(node: str, n: int) -> Callable[[PNCounter], tuple[PNCounter, PNCounter]]:
    return lambda c: c.increment(node, n) if n >= 0 else c.decrement(node, -n)


def tagged(node: str, element: Any, add: bool) -> Callable[[ORSet[Any]], Any]:
    return lambda s: s.add(node, element) if add else s.remove(node, element)


def apply(op: Op, state: Any, node: str) -> tuple[Any, Any]:
    """Run ``op`` on ``state`` on behalf of ``node``: ``(new state, delta)``."""
    match op:
        case ("increment", n):
            return state.increment(node, n)
        case ("decrement", n):
            return state.decrement(node, n)
        case ("set", value, now):
            return state.set(node, value, clock=lambda: now)
        case ("add", element):
            return state.add(node, element)
        case ("remove", element):
            return state.remove(node, element)
        case ("clear",):
            return state.clear(node)
        case ("count", key, n):
            return state.update(node, key, counted(node, n), initial=PNCounter())
        case ("tag", key, element, add):
            return state.update(node, key, tagged(node, element, add), initial=ORSet())
        case ("put", key, value, now):
            return state.put(node, key, value, clock=lambda: now)
        case ("drop", key):
            return state.remove(node, key)
    raise AssertionError(op)


@attrs.frozen
class Kind:
    name: str
    empty: Callable[[], Any]
    ops: st.SearchStrategy[Op]

    def __str__(self) -> str:
        return self.name


amounts = st.integers(0, 5)
elements = st.sampled_from(ELEMENTS)
keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
times = st.integers(0, 6)  # a small range: equal timestamps of different nodes are common

KINDS = [
    Kind("GCounter", GCounter, st.tuples(st.just("increment"), amounts)),
    Kind(
        "PNCounter",
        PNCounter,
        st.tuples(st.sampled_from(["increment", "decrement"]), amounts),
    ),
    Kind("LWWRegister", LWWRegister, st.tuples(st.just("set"), values, times)),
    Kind(
        "ORSet",
        ORSet,
        st.one_of(
            st.tuples(st.just("add"), elements),
            st.tuples(st.just("remove"), elements),
            st.just(("clear",)),
        ),
    ),
    Kind(
        "ORMap-of-PNCounter",
        ORMap,
        st.one_of(
            st.tuples(st.just("count"), keys, st.integers(-3, 3)),
            st.tuples(st.just("drop"), keys),
        ),
    ),
    Kind(
        "ORMap-of-ORSet",
        ORMap,
        st.one_of(
            st.tuples(st.just("tag"), keys, elements, st.booleans()),
            st.tuples(st.just("drop"), keys),
        ),
    ),
    Kind(
        "LWWMap",
        LWWMap,
        st.one_of(
            st.tuples(st.just("put"), keys, values, times),
            st.tuples(st.just("drop"), keys),
        ),
    ),
]
BY_NAME = {kind.name: kind for kind in KINDS}


@attrs.frozen
class Change:
    """One mutation of a run: the op, its node, the state it was made on, its delta."""

    op: Op
    node: str
    before: Any
    delta: Any


@attrs.frozen
class Run:
    states: list[Any]
    deltas: list[Any]
    changes: list[Change]


def steps(kind: Kind) -> st.SearchStrategy[tuple[Any, ...]]:
    replica = st.integers(0, len(NODES) - 1)
    return st.one_of(
        st.tuples(st.just("do"), replica, kind.ops),
        st.tuples(st.just("sync"), replica, replica),  # a replica merges another's state
        st.tuples(st.just("deliver"), replica, st.integers(0, 99)),  # ... or one delta
    )


def execute(kind: Kind, replicas: int, plan: Sequence[tuple[Any, ...]]) -> Run:
    states = [kind.empty() for _ in range(replicas)]
    deltas: list[Any] = []
    changes: list[Change] = []
    for step, i, arg in plan:
        i %= replicas
        if step == "do":
            before = states[i]
            states[i], delta = apply(arg, before, NODES[i])
            deltas.append(delta)
            changes.append(Change(arg, NODES[i], before, delta))
        elif step == "sync":
            states[i] = states[i].merge(states[arg % replicas])
        elif deltas:
            states[i] = states[i].merge(deltas[arg % len(deltas)])
    return Run(states, deltas, changes)


def runs(kind: Kind) -> st.SearchStrategy[Run]:
    return st.builds(execute, st.just(kind), st.integers(2, 4), st.lists(steps(kind), max_size=30))


def merge_all(values: Sequence[Any], empty: Any) -> Any:
    return functools.reduce(lambda left, right: left.merge(right), values, empty)


def context_of(state: Any) -> Any:
    return state.registers.context if isinstance(state, LWWMap) else state.context


# -- the laws, for every type ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=str)
@LAWS
@given(data=st.data())
def test_merge_is_commutative_associative_and_idempotent(kind: Kind, data: st.DataObject) -> None:
    run = data.draw(runs(kind))
    empty = kind.empty()
    sample = data.draw(st.lists(st.sampled_from(run.deltas), max_size=3)) if run.deltas else []
    pool = [*run.states, *sample, empty]
    for a in pool:
        assert a.merge(a) == a
        assert a.merge(empty) == a == empty.merge(a)
    for a, b in itertools.combinations(pool, 2):
        assert a.merge(b) == b.merge(a)
    for a, b, c in itertools.product(pool, repeat=3):
        assert a.merge(b).merge(c) == a.merge(b.merge(c))


@pytest.mark.parametrize("kind", KINDS, ids=str)
@LAWS
@given(data=st.data())
def test_deltas_in_any_order_with_duplicates_give_the_merged_states(
    kind: Kind, data: st.DataObject
) -> None:
    run = data.draw(runs(kind))
    empty = kind.empty()
    merged = merge_all(run.states, empty)
    for state in run.states:
        assert state.merge(merged) == merged
    n = len(run.deltas)
    if n == 0:
        assert merged == empty
        return
    extra = data.draw(st.lists(st.integers(0, n - 1), max_size=n))
    order = data.draw(st.permutations([*range(n), *extra]))
    delivered = [run.deltas[i] for i in order]
    assert merge_all(delivered, empty) == merged
    # deltas combined into batches first, then applied
    cuts = sorted(data.draw(st.lists(st.integers(0, len(delivered)), max_size=4)))
    batches = [
        merge_all(delivered[start:end], empty)
        for start, end in itertools.pairwise([0, *cuts, len(delivered)])
    ]
    assert merge_all(data.draw(st.permutations(batches)), empty) == merged


@pytest.mark.parametrize("kind", KINDS, ids=str)
@LAWS
@given(run=st.data())
def test_a_mutators_new_state_is_the_old_state_merged_with_its_delta(
    kind: Kind, run: st.DataObject
) -> None:
    # the mutators build their new state directly (not by a merge): it must be the same
    # value, and as valid as the constructor would make it
    for change in run.draw(runs(kind)).changes:
        after, delta = apply(change.op, change.before, change.node)
        assert after == change.before.merge(delta)
        assert type(after)(**attrs.asdict(after, recurse=False)) == after


@pytest.mark.parametrize("kind", KINDS, ids=str)
@LAWS
@given(data=st.data())
def test_values_survive_the_codec_after_a_run(kind: Kind, data: st.DataObject) -> None:
    codec = Codec()
    run = data.draw(runs(kind))
    for state in run.states:
        type_id, payload = codec.to_wire(state, NoRefs())
        assert codec.from_wire(type_id, payload, NoRefs()) == state


# -- the causal types ------------------------------------------------------------------

CAUSAL = [kind for kind in KINDS if kind.name.startswith(("OR", "LWWMap"))]


@pytest.mark.parametrize("kind", CAUSAL, ids=str)
@LAWS
@given(data=st.data())
def test_the_merged_deltas_leave_no_dot_cloud(kind: Kind, data: st.DataObject) -> None:
    run = data.draw(runs(kind))
    empty = kind.empty()
    if run.deltas:
        extra = data.draw(st.lists(st.sampled_from(run.deltas), max_size=len(run.deltas)))
        shuffled = data.draw(st.permutations([*run.deltas, *extra]))
        assert context_of(merge_all(shuffled, empty)).cloud == frozenset()
    assert context_of(merge_all(run.states, empty)).cloud == frozenset()


def writes_of(state: Any) -> set[tuple[Any, tuple[str, int]]]:
    """``(element or key, dot)`` of every add or update a state keeps."""
    if isinstance(state, ORSet):
        return {(element, dot) for element, dots in state.entries.items() for dot in dots}
    if isinstance(state, LWWMap):
        state = state.registers
    return {(key, dot) for key, writes in state.entries.items() for dot, _ in writes}


def touched(change: Change) -> Any:
    """The element or key a change acts on (``...`` for all of them: a clear)."""
    match change.op:
        case ("clear",):
            return ...
        case (_, target, *_):
            return target
    raise AssertionError(change.op)


@pytest.mark.parametrize("kind", CAUSAL, ids=str)
@LAWS
@given(data=st.data())
def test_exactly_the_adds_no_remove_has_seen_survive(kind: Kind, data: st.DataObject) -> None:
    """An add (or update) survives unless an op on its element (a remove, a clear, or
    another add that supersedes it) ran on a state that had seen it: so an add
    concurrent with a remove wins."""
    run = data.draw(runs(kind))
    made = set()
    for change in run.changes:
        made |= writes_of(change.delta)
    expected = {
        (target, dot)
        for target, dot in made
        if not any(
            touched(change) in (target, ...) and context_of(change.before).covers(dot)
            for change in run.changes
        )
    }
    merged = merge_all(run.states, kind.empty())
    assert writes_of(merged) == expected
    assert set(merged) == {target for target, _ in expected}


@LAWS
@given(data=st.data())
def test_orset_add_wins_over_a_concurrent_remove(data: st.DataObject) -> None:
    run = data.draw(runs(BY_NAME["ORSet"]))
    i, j = data.draw(st.lists(st.integers(0, len(run.states) - 1), min_size=2, max_size=2))
    element = data.draw(elements)
    adder, remover = run.states[i], run.states[j]
    if i == j:  # the same replica cannot be concurrent with itself: take a fresh node
        remover = remover.merge(adder)
        added, add_delta = adder.add("e", element)
    else:
        added, add_delta = adder.add(NODES[i], element)
    removed, remove_delta = remover.remove(NODES[j], element)
    cleared, clear_delta = remover.clear(NODES[j])
    for other in (removed, cleared):
        assert element in added.merge(other)
        assert element in other.merge(added)
    for delta in (remove_delta, clear_delta):
        for third in run.states:
            assert element in third.merge(add_delta).merge(delta)
            assert element in third.merge(delta).merge(add_delta)


@LAWS
@given(run=runs(BY_NAME["PNCounter"]))
def test_a_pncounter_ends_at_the_increments_less_the_decrements(run: Run) -> None:
    total = sum(
        change.op[1] if change.op[0] == "increment" else -change.op[1] for change in run.changes
    )
    assert merge_all(run.states, PNCounter()).value == total
    assert merge_all(run.deltas, PNCounter()).value == total


@LAWS
@given(run=runs(BY_NAME["GCounter"]))
def test_a_gcounter_ends_at_the_sum_of_its_increments(run: Run) -> None:
    total = sum(change.op[1] for change in run.changes)
    assert merge_all(run.states, GCounter()).value == total


@LAWS
@given(run=runs(BY_NAME["LWWRegister"]))
def test_a_register_ends_at_the_greatest_write(run: Run) -> None:
    writes = [change.delta for change in run.changes]
    merged = merge_all(run.states, LWWRegister())
    if not writes:
        assert merged == LWWRegister()
        return
    best = min(writes, key=lambda w: (-w.timestamp, w.node))
    assert (merged.timestamp, merged.node, merged.value) == (best.timestamp, best.node, best.value)
