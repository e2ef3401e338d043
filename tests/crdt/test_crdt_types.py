"""The CRDT value types one by one: what each mutator returns, the merge rules, what is
refused, and the round trip of every type through the transport's codec."""

from __future__ import annotations

import math
import time
from typing import Any

import attrs
import msgpack
import pytest

from tinyagents.crdt import (
    CausalContext,
    GCounter,
    LWWMap,
    LWWRegister,
    ORMap,
    ORSet,
    PNCounter,
    ReplicatedData,
)
from tinyagents.errors import CodecError
from tinyagents.transport import Codec

ALL_TYPES = [GCounter, PNCounter, LWWRegister, ORSet, ORMap, LWWMap]


class Hooks:
    """Wire hooks without a transport: no refs or channels cross."""

    peer = "peer"

    def ref_to_wire(self, ref: Any) -> list[object]:
        raise AssertionError("no refs here")

    def ref_from_wire(self, data: list[object]) -> Any:
        raise CodecError("no refs here")

    def channel_to_wire(self, channel: Any) -> int:
        raise AssertionError("no channels here")

    def channel_from_wire(self, stream_id: int) -> Any:
        raise CodecError("no channels here")


def round_trip(value: object) -> Any:
    codec = Codec()
    type_id, payload = codec.to_wire(value, Hooks())
    assert type_id == f"tinyagents.{type(value).__name__}"
    return codec.from_wire(type_id, payload, Hooks())


def clock(now: int) -> Any:
    return lambda: now


# -- shared behaviour ------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_every_type_is_replicated_data_with_an_empty_state(cls: type[Any]) -> None:
    empty = cls()
    assert isinstance(empty, ReplicatedData)
    assert cls.empty() == empty
    assert empty.merge(empty) == empty
    assert round_trip(empty) == empty


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_merging_another_type_raises_type_error(cls: type[Any]) -> None:
    other = GCounter if cls is not GCounter else PNCounter
    with pytest.raises(TypeError, match=f"cannot merge a {cls.__name__} with a {other.__name__}"):
        cls().merge(other())
    with pytest.raises(TypeError, match="cannot merge"):
        cls().merge({})


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_values_are_frozen(cls: type[Any]) -> None:
    value = cls()
    field = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, field, None)


def test_mutators_refuse_a_bad_node_id() -> None:
    calls = [
        lambda node: GCounter().increment(node),
        lambda node: PNCounter().decrement(node),
        lambda node: LWWRegister().set(node, 1),
        lambda node: ORSet().add(node, "x"),
        lambda node: ORSet().remove(node, "x"),
        lambda node: ORSet().clear(node),
        lambda node: ORMap().update(node, "k", lambda c: c, initial=GCounter()),
        lambda node: ORMap().remove(node, "k"),
        lambda node: LWWMap().put(node, "k", 1),
        lambda node: LWWMap().remove(node, "k"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="non-empty str"):
            call("")
        with pytest.raises(TypeError, match="non-empty str"):
            call(7)
        with pytest.raises(TypeError, match="non-empty str"):
            call(None)


def test_the_generic_types_are_subscriptable() -> None:
    tags: ORSet[str] = ORSet[str]()
    assert tags == ORSet()
    assert LWWMap[str, int]() == LWWMap()


# -- counters --------------------------------------------------------------------------


def test_gcounter_increments_and_its_delta_carries_the_new_count() -> None:
    counter, delta = GCounter().increment("a")
    counter, delta = counter.increment("a", 4)
    assert counter.value == 5
    assert delta == GCounter({"a": 5})
    assert GCounter().merge(delta) == counter
    assert counter.counts == {"a": 5}


def test_gcounter_merges_the_greater_count_of_each_node() -> None:
    left = GCounter({"a": 3, "b": 1})
    right = GCounter({"a": 1, "b": 4, "c": 2})
    assert left.merge(right) == GCounter({"a": 3, "b": 4, "c": 2})
    assert left.merge(right).value == 9


def test_gcounter_increment_by_zero_changes_nothing() -> None:
    counter = GCounter({"a": 2})
    same, delta = counter.increment("a", 0)
    assert same is counter
    assert delta == GCounter()


def test_gcounter_refuses_negative_and_non_int_amounts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        GCounter().increment("a", -1)
    for bad in (1.5, True, "2", None):
        with pytest.raises(TypeError, match="n must be an int"):
            GCounter().increment("a", bad)  # type: ignore[arg-type]


def test_gcounter_state_is_checked_and_canonical() -> None:
    assert GCounter({"a": 0}) == GCounter()
    with pytest.raises(ValueError, match=">= 0"):
        GCounter({"a": -1})
    with pytest.raises(ValueError, match="non-empty"):
        GCounter({"": 1})
    with pytest.raises(TypeError, match="mapping"):
        GCounter([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        GCounter({"a": 1}).counts["a"] = 2  # type: ignore[index]
    assert hash(GCounter({"a": 1})) == hash(GCounter({"a": 1}))


def test_pncounter_goes_below_zero() -> None:
    counter, _ = PNCounter().increment("a", 5)
    counter, delta = counter.decrement("b", 7)
    assert counter.value == -2
    assert delta == PNCounter(decrements=GCounter({"b": 7}))
    other, _ = PNCounter().increment("c", 1)
    assert counter.merge(other).value == -1


def test_pncounter_refuses_negative_amounts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        PNCounter().increment("a", -3)
    with pytest.raises(ValueError, match=">= 0"):
        PNCounter().decrement("a", -3)
    with pytest.raises(TypeError, match="must be a GCounter"):
        PNCounter(increments={"a": 1})  # type: ignore[arg-type]


# -- LWWRegister -----------------------------------------------------------------------


def test_register_set_returns_the_new_register_as_its_delta() -> None:
    register, delta = LWWRegister().set("a", "draft", clock=clock(100))
    assert register is delta
    assert (register.value, register.timestamp, register.node) == ("draft", 100, "a")


def test_register_timestamp_is_max_of_the_clock_and_last_plus_one() -> None:
    register, _ = LWWRegister().set("a", 1, clock=clock(100))
    behind, _ = register.set("b", 2, clock=clock(50))
    assert behind.timestamp == 101
    ahead, _ = behind.set("b", 3, clock=clock(500))
    assert ahead.timestamp == 500
    first, _ = LWWRegister().set("a", 1, clock=clock(-10))
    assert first.timestamp == 1


def test_register_default_clock_is_wall_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    register, _ = LWWRegister().set("a", 1)
    after = time.time_ns() // 1_000_000
    assert before <= register.timestamp <= after


def test_register_greater_timestamp_wins() -> None:
    old, _ = LWWRegister().set("a", "old", clock=clock(10))
    new, _ = LWWRegister().set("z", "new", clock=clock(11))
    assert old.merge(new) == new.merge(old) == new


def test_register_tie_goes_to_the_lower_node_id() -> None:
    low, _ = LWWRegister().set("a", "from a", clock=clock(10))
    high, _ = LWWRegister().set("b", "from b", clock=clock(10))
    assert low.merge(high) is low
    assert high.merge(low) is low


def test_register_empty_loses_to_every_write() -> None:
    written, _ = LWWRegister().set("a", None, clock=clock(0))
    assert LWWRegister().merge(written) == written.merge(LWWRegister()) == written


def test_register_refuses_values_that_would_not_cross_unchanged() -> None:
    with pytest.raises(TypeError, match="tuple"):
        LWWRegister().set("a", (1, 2))
    with pytest.raises(TypeError, match="tuple"):
        LWWRegister().set("a", {"k": [(1, 2)]})
    with pytest.raises(TypeError, match="must be None, a bool"):
        LWWRegister().set("a", {1, 2})
    with pytest.raises(TypeError, match="must be None, a bool"):
        LWWRegister().set("a", object())
    with pytest.raises(ValueError, match="NaN"):
        LWWRegister().set("a", math.nan)
    with pytest.raises(TypeError, match="dict key"):
        LWWRegister().set("a", {(1,): 2})
    register, _ = LWWRegister().set("a", {"k": [1, 2.5, b"x", None, True, {"n": "s"}]})
    assert register.value["k"][0] == 1


def test_register_refuses_a_bad_clock() -> None:
    with pytest.raises(TypeError, match="clock"):
        LWWRegister().set("a", 1, clock=lambda: 1.5)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="clock"):
        LWWRegister().set("a", 1, clock=5)  # type: ignore[arg-type]


def test_register_state_is_checked() -> None:
    with pytest.raises(ValueError, match="empty register"):
        LWWRegister("x", 0, "")
    with pytest.raises(ValueError, match="empty register"):
        LWWRegister(None, 3, "")
    with pytest.raises(ValueError, match=">= 1"):
        LWWRegister("x", 0, "a")
    with pytest.raises(ValueError, match=">= 0"):
        LWWRegister(None, -1, "")
    with pytest.raises(TypeError, match="node must be a str"):
        LWWRegister("x", 1, 5)  # type: ignore[arg-type]


# -- ORSet -----------------------------------------------------------------------------


def test_orset_adds_and_removes() -> None:
    tags, _ = ORSet().add("a", "urgent")
    tags, _ = tags.add("a", 3)
    assert "urgent" in tags
    assert len(tags) == 2
    assert set(tags) == {"urgent", 3} == tags.elements
    tags, delta = tags.remove("a", "urgent")
    assert tags.elements == {3}
    assert delta.entries == {}
    assert "urgent" not in tags


def test_orset_add_delta_is_the_new_dot_and_supersedes_the_old() -> None:
    tags, first = ORSet().add("a", "x")
    assert first.entries == {"x": {("a", 1)}}
    assert first.context == CausalContext({"a": 1})
    tags, again = tags.add("a", "x")
    assert again.entries == {"x": {("a", 2)}}
    assert again.context == CausalContext({"a": 2})
    assert tags.entries == {"x": {("a", 2)}}


def test_orset_concurrent_add_and_remove_keeps_the_element() -> None:
    base, _ = ORSet().add("a", "x")
    removed, remove_delta = base.remove("a", "x")
    readded, add_delta = base.add("b", "x")
    assert "x" not in removed
    assert "x" in removed.merge(readded)
    assert "x" in readded.merge(removed)
    assert "x" in base.merge(add_delta).merge(remove_delta)
    assert "x" in base.merge(remove_delta).merge(add_delta)


def test_orset_remove_of_an_absent_element_is_a_no_op_delta() -> None:
    tags, _ = ORSet().add("a", "x")
    same, delta = tags.remove("a", "y")
    assert same is tags
    assert delta == ORSet()


def test_orset_clear_removes_what_it_has_seen() -> None:
    tags, _ = ORSet().add("a", "x")
    tags, _ = tags.add("b", "y")
    _, late = ORSet().add("c", "z")
    cleared, delta = tags.clear("a")
    assert cleared.elements == frozenset()
    assert delta.context == CausalContext({"a": 1, "b": 1})
    assert cleared.merge(late).elements == {"z"}
    same, empty = ORSet().clear("a")
    assert same == ORSet()
    assert empty == ORSet()


def test_orset_removed_elements_leave_only_the_compacted_context() -> None:
    tags = ORSet()
    for element in ("p", "q", "r"):
        tags, _ = tags.add("a", element)
        tags, _ = tags.remove("a", element)
    assert tags.entries == {}
    assert tags.context == CausalContext({"a": 3})


def test_orset_deltas_out_of_order_wait_in_the_cloud() -> None:
    tags, first = ORSet().add("a", "x")
    tags, second = tags.add("a", "y")
    replica = ORSet().merge(second)
    assert replica.context.cloud == {("a", 2)}
    assert replica.context.vector == {}
    replica = replica.merge(first)
    assert replica.context.cloud == frozenset()
    assert replica.context.vector == {"a": 2}
    assert replica == tags


def test_orset_refuses_tuples_and_other_elements() -> None:
    with pytest.raises(TypeError, match="tuple"):
        ORSet().add("a", ("x", 1))  # type: ignore[arg-type]
    for bad in ([1], {1}, object(), frozenset()):
        with pytest.raises(TypeError, match="str, int, bytes, bool, float or None"):
            ORSet().add("a", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        ORSet().add("a", math.nan)
    with pytest.raises(TypeError, match="tuple"):
        ORSet().remove("a", ("x",))  # type: ignore[arg-type]


def test_orset_state_is_checked() -> None:
    with pytest.raises(ValueError, match="not in its causal context"):
        ORSet({"x": {("a", 1)}})
    with pytest.raises(ValueError, match="under two keys"):
        ORSet({"x": {("a", 1)}, "y": {("a", 1)}}, CausalContext({"a": 1}))
    with pytest.raises(ValueError, match=">= 1"):
        ORSet({"x": {("a", 0)}}, CausalContext({"a": 1}))
    with pytest.raises(TypeError, match="CausalContext"):
        ORSet(context={"a": 1})  # type: ignore[arg-type]
    assert ORSet({"x": set()}) == ORSet()


def test_causal_context_normalises() -> None:
    context = CausalContext({"a": 2, "b": 0}, {("a", 1), ("a", 3), ("a", 5), ("c", 1)})
    assert context.vector == {"a": 3, "c": 1}
    assert context.cloud == {("a", 5)}
    assert context.covers(("a", 3))
    assert context.covers(("a", 5))
    assert not context.covers(("a", 4))
    assert context.next_dot("a") == ("a", 6)
    assert context.next_dot("z") == ("z", 1)
    assert context.merge(CausalContext.of([("a", 4)])) == CausalContext({"a": 5, "c": 1})
    with pytest.raises(TypeError, match="pair"):
        CausalContext(cloud={("a", 1, 2)})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mapping"):
        CausalContext(vector=[("a", 1)])  # type: ignore[arg-type]


# -- ORMap -----------------------------------------------------------------------------


def visit(m: ORMap[str, GCounter], node: str, key: str) -> tuple[ORMap[str, GCounter], Any]:
    return m.update(node, key, lambda c: c.increment(node), initial=GCounter())


def test_ormap_updates_and_reads_like_a_mapping() -> None:
    visits, _ = visit(ORMap(), "a", "home")
    visits, delta = visit(visits, "a", "home")
    visits, _ = visit(visits, "b", "about")
    assert visits["home"].value == 2
    assert visits.get("about") == GCounter({"b": 1})
    assert visits.get("nowhere") is None
    assert visits.get("nowhere", 0) == 0
    assert "home" in visits
    assert "nowhere" not in visits
    assert set(visits.keys()) == {"home", "about"} == set(visits)
    assert dict(visits.items()) == visits.value
    assert len(visits) == 2
    assert visits.kind == "GCounter"
    with pytest.raises(KeyError):
        visits["nowhere"]
    assert delta.entries == {"home": ((("a", 2), GCounter({"a": 2})),)}
    assert delta.context == CausalContext({"a": 2})


def test_ormap_fn_may_return_the_new_value_alone() -> None:
    m, _ = ORMap().update("a", "k", lambda c: c.increment("a", 3)[0], initial=PNCounter())
    assert m["k"].value == 3


def test_ormap_concurrent_updates_merge_their_values() -> None:
    base, _ = visit(ORMap(), "a", "home")
    left, _ = visit(base, "a", "home")
    right, _ = visit(base, "b", "home")
    merged = left.merge(right)
    assert merged["home"] == GCounter({"a": 2, "b": 1})
    assert len(merged.entries["home"]) == 2
    folded, _ = visit(merged, "c", "home")
    assert len(folded.entries["home"]) == 1
    assert folded["home"].value == 4


def test_ormap_update_concurrent_with_remove_keeps_the_key_with_its_value() -> None:
    base, _ = visit(ORMap(), "a", "home")
    base, _ = visit(base, "a", "home")
    removed, remove_delta = base.remove("a", "home")
    updated, update_delta = visit(base, "b", "home")
    assert "home" not in removed
    merged = removed.merge(updated)
    assert merged == updated.merge(removed)
    # the updater had seen a's two visits: they come back with its write
    assert merged["home"] == GCounter({"a": 2, "b": 1})
    assert base.merge(remove_delta).merge(update_delta) == merged


def test_ormap_remove_then_update_starts_from_initial() -> None:
    visits, _ = visit(ORMap(), "a", "home")
    visits, _ = visit(visits, "a", "home")
    visits, _ = visits.remove("a", "home")
    visits, _ = visit(visits, "b", "home")
    assert visits["home"] == GCounter({"b": 1})


def test_ormap_remove_of_an_absent_key_is_a_no_op_delta() -> None:
    visits, _ = visit(ORMap(), "a", "home")
    same, delta = visits.remove("a", "elsewhere")
    assert same is visits
    assert delta == ORMap()


def test_ormap_keys_are_str_int_or_bytes() -> None:
    for key in ("s", 3, b"b"):
        m, _ = ORMap().update("a", key, lambda c: c.increment("a"), initial=GCounter())
        assert key in m
    for bad in ((1, 2), True, 1.5, None, ["x"]):
        with pytest.raises(TypeError, match="str, int or bytes"):
            ORMap().update("a", bad, lambda c: c, initial=GCounter())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str, int or bytes"):
            ORMap().remove("a", bad)  # type: ignore[arg-type]


def test_ormap_holds_one_type_of_replicated_value() -> None:
    counters, _ = visit(ORMap(), "a", "home")
    with pytest.raises(TypeError, match="initial must be a GCounter, the kind of this map"):
        counters.update("a", "x", lambda c: c, initial=PNCounter())
    with pytest.raises(TypeError, match="initial must be a"):
        ORMap().update("a", "x", lambda c: c, initial=5)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="fn must return a GCounter"):
        ORMap().update("a", "x", lambda c: PNCounter(), initial=GCounter())  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="fn must return"):
        ORMap().update("a", "x", lambda c: (c, c, c), initial=GCounter())  # type: ignore[arg-type, return-value]
    pn, _ = ORMap().update("a", "k", lambda c: c.increment("a"), initial=PNCounter())
    with pytest.raises(TypeError, match="of GCounter values with one of PNCounter"):
        counters.merge(pn)


def test_ormap_state_is_checked() -> None:
    with pytest.raises(ValueError, match="names their kind"):
        ORMap({"k": ((("a", 1), GCounter()),)}, CausalContext({"a": 1}))
    with pytest.raises(ValueError, match="kind must be"):
        ORMap(kind="Counter")
    with pytest.raises(TypeError, match="cannot hold a PNCounter"):
        ORMap({"k": ((("a", 1), PNCounter()),)}, CausalContext({"a": 1}), "GCounter")
    with pytest.raises(ValueError, match="not in its causal context"):
        ORMap({"k": ((("a", 1), GCounter()),)}, CausalContext(), "GCounter")


def test_ormap_of_orsets() -> None:
    groups, _ = ORMap().update("a", "admins", lambda s: s.add("a", "ann"), initial=ORSet())
    groups, _ = groups.update("b", "admins", lambda s: s.add("b", "bob"), initial=ORSet())
    assert groups["admins"].elements == {"ann", "bob"}


# -- LWWMap ----------------------------------------------------------------------------


def test_lwwmap_puts_reads_and_removes() -> None:
    config, _ = LWWMap().put("a", "model", "small", clock=clock(10))
    config, delta = config.put("a", "temperature", 0.5, clock=clock(11))
    assert config["model"] == "small"
    assert config.get("temperature") == 0.5
    assert config.get("missing", "default") == "default"
    assert config.value == {"model": "small", "temperature": 0.5}
    assert sorted(config.items()) == [("model", "small"), ("temperature", 0.5)]
    assert set(config.keys()) == {"model", "temperature"} == set(config)
    assert sorted(config.values(), key=str) == [0.5, "small"]
    assert len(config) == 2
    assert LWWMap().merge(delta).value == {"temperature": 0.5}
    config, _ = config.remove("a", "model")
    assert "model" not in config
    with pytest.raises(KeyError):
        config["model"]
    same, empty = config.remove("a", "model")
    assert same is config
    assert empty == LWWMap()


def test_lwwmap_concurrent_puts_keep_the_last_write() -> None:
    left, _ = LWWMap().put("b", "k", "from b", clock=clock(10))
    right, _ = LWWMap().put("a", "k", "from a", clock=clock(10))
    later, _ = LWWMap().put("c", "k", "from c", clock=clock(11))
    assert left.merge(right)["k"] == right.merge(left)["k"] == "from a"
    assert left.merge(right).merge(later)["k"] == "from c"


def test_lwwmap_put_concurrent_with_remove_wins() -> None:
    base, _ = LWWMap().put("a", "k", 1, clock=clock(10))
    removed, _ = base.remove("a", "k")
    updated, _ = base.put("b", "k", 2, clock=clock(5))
    assert removed.merge(updated)["k"] == 2
    assert updated.merge(removed)["k"] == 2


def test_lwwmap_put_after_put_supersedes_with_a_later_timestamp() -> None:
    config, _ = LWWMap().put("a", "k", 1, clock=clock(100))
    config, _ = config.put("b", "k", 2, clock=clock(50))
    register = config.registers["k"]
    assert (register.value, register.timestamp, register.node) == (2, 101, "b")


def test_lwwmap_refuses_bad_keys_and_values() -> None:
    with pytest.raises(TypeError, match="tuple"):
        LWWMap().put("a", "k", (1, 2))
    with pytest.raises(TypeError, match="str, int or bytes"):
        LWWMap().put("a", (1,), 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LWWRegisters"):
        LWWMap(visit(ORMap(), "a", "k")[0])  # type: ignore[arg-type]


# -- the codec -------------------------------------------------------------------------


def test_counters_and_registers_round_trip() -> None:
    counter, _ = GCounter().increment("a", 3)
    counter, _ = counter.increment("b", 2**40)
    pn, _ = PNCounter().increment("a", 5)
    pn, _ = pn.decrement("b", 9)
    register, _ = LWWRegister().set("a", {"k": [1, 2.5, b"x", None, True, {"n": "s"}]})
    for value in (counter, pn, register, LWWRegister().set("b", b"bytes")[0]):
        assert round_trip(value) == value


def test_orsets_round_trip_with_every_kind_of_element_and_a_cloud() -> None:
    tags = ORSet()
    for element in ("s", 7, -3, b"raw", None, 2.5, False):
        tags, _ = tags.add("a", element)
    tags, _ = tags.remove("a", 7)
    _, second = ORSet().add("b", "first")[0].add("b", "second")
    cloudy = tags.merge(second)
    assert cloudy.context.cloud == {("b", 2)}
    for value in (tags, cloudy, second):
        back = round_trip(value)
        assert back == value
        assert back.context.cloud == value.context.cloud
    assert type(next(iter(round_trip(ORSet().add("a", b"x")[0])))) is bytes


def test_maps_round_trip() -> None:
    counters = ORMap()
    counters, _ = counters.update("a", "k", lambda c: c.decrement("a", 3), initial=PNCounter())
    counters, _ = counters.update("b", 1, lambda c: c.increment("b", 4), initial=PNCounter())
    concurrent, _ = ORMap().update("c", 1, lambda c: c.increment("c"), initial=PNCounter())
    counters = counters.merge(concurrent)
    back = round_trip(counters)
    assert back == counters
    assert isinstance(back[1], PNCounter)
    assert back[1].value == 5

    config, _ = LWWMap().put("a", "model", "small")
    config, _ = config.put("b", b"k", [1, {"x": None}])
    assert round_trip(config) == config

    inner, _ = ORMap().update("a", "s", lambda s: s.add("a", "e"), initial=ORSet())
    nested, _ = ORMap().update("a", "n", lambda m: inner, initial=ORMap())
    back = round_trip(nested)
    assert back == nested
    assert back["n"]["s"].elements == {"e"}
    of_lww, _ = ORMap().update("a", "m", lambda m: m.put("a", "x", 1), initial=LWWMap())
    assert round_trip(of_lww)["m"]["x"] == 1


def test_a_value_inside_a_built_in_one_round_trips() -> None:
    codec = Codec()
    value = [GCounter({"a": 1}), {"set": ORSet().add("a", "x")[0]}]
    type_id, payload = codec.to_wire(value, Hooks())
    assert codec.from_wire(type_id, payload, Hooks()) == value


def test_malformed_states_do_not_decode() -> None:
    codec = Codec()
    bad = [
        ("tinyagents.GCounter", {"counts": {"a": -1}}),
        (
            "tinyagents.ORSet",
            {"entries": {"x": [["a", 1]]}, "context": {"vector": {}, "cloud": []}},
        ),
        ("tinyagents.ORMap", {"entries": {"k": [[["a", 1], {"counts": {}}]]}, "kind": ""}),
        ("tinyagents.ORMap", {"kind": "Nothing"}),
        ("tinyagents.LWWRegister", {"value": 1, "timestamp": 0, "node": ""}),
    ]
    for type_id, data in bad:
        with pytest.raises(CodecError, match="does not decode"):
            codec.from_wire(type_id, msgpack.packb(data), Hooks())
