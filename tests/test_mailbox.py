"""Mailboxes against a plain reference model, for every overflow policy."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import tinyagents as ta
from tinyagents._queue import Closed, Full, Mailbox
from tinyagents.errors import MailboxFull, MessageDropped
from tinyagents.events import DeadLetter, DeadLetterReason

POLICIES = list(ta.Overflow)


class ReferenceMailbox:
    """The obvious list-based meaning of each overflow policy."""

    def __init__(self, capacity: float, overflow: ta.Overflow) -> None:
        self.items: list[Any] = []
        self.capacity = capacity
        self.overflow = overflow
        self.enqueued = 0
        self.dropped: list[Any] = []
        self.closed = False

    def put(self, item: Any) -> str:
        """Return 'ok', 'dropped' (some item dropped), 'full' or 'closed'."""
        if self.closed:
            return "closed"
        if len(self.items) >= self.capacity:
            if self.overflow is ta.Overflow.DROP_NEWEST:
                self.dropped.append(item)
                return "dropped"
            if self.overflow is ta.Overflow.DROP_OLDEST:
                self.dropped.append(self.items.pop(0))
                self.items.append(item)
                self.enqueued += 1
                return "dropped"
            return "full"
        self.items.append(item)
        self.enqueued += 1
        return "ok"


class MailboxMachine(RuleBasedStateMachine):
    """Random puts, takes and closes on a Mailbox agree with ReferenceMailbox."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    @initialize(
        capacity=st.one_of(st.integers(1, 4), st.just(None)),
        overflow=st.sampled_from(POLICIES),
    )
    def make(self, capacity: int | None, overflow: ta.Overflow) -> None:
        spec: ta.Bounded | ta.Unbounded = (
            ta.Unbounded() if capacity is None else ta.Bounded(capacity, overflow)
        )
        self.mailbox: Mailbox[Any] = spec.create()
        self.model = ReferenceMailbox(
            float("inf") if capacity is None else capacity,
            ta.Overflow.FAIL if capacity is None else overflow,
        )

    @rule()
    def put(self) -> None:
        self.counter += 1
        item = self.counter
        expected = self.model.put(item)
        try:
            dropped = self.mailbox.put_nowait(item)
        except Full:
            assert expected == "full"
        except Closed:
            assert expected == "closed"
        else:
            if expected == "dropped":
                assert dropped == self.model.dropped[-1]
            else:
                assert expected == "ok"
                assert dropped is None

    @precondition(lambda self: not self.model.closed)
    @rule()
    def take(self) -> None:
        if self.model.items:
            assert self.mailbox.queue.popleft() == self.model.items.pop(0)
            self.mailbox.took_one()
        else:
            assert not self.mailbox.queue

    @rule()
    def put_system(self) -> None:
        self.mailbox.put_system("sys")
        assert self.mailbox.system is not None
        assert len(self.mailbox.queue) == len(self.model.items)  # capacity untouched

    @precondition(lambda self: not self.model.closed)
    @rule()
    def close(self) -> None:
        assert self.mailbox.close() == self.model.items
        self.model.items = []
        self.model.closed = True

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "mailbox"):
            return
        stats = self.mailbox.statistics()
        assert list(self.mailbox.queue) == self.model.items
        assert stats.length == len(self.model.items)
        assert stats.enqueued == self.model.enqueued
        assert stats.dropped == len(self.model.dropped)
        assert stats.length <= self.model.capacity


TestMailboxModel = MailboxMachine.TestCase
TestMailboxModel.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


class Gate(ta.Actor):
    """Handles its first message by waiting on a gate; records every message."""

    def __init__(self, gate: trio.Event, handled: list[Any]) -> None:
        self.gate = gate
        self.handled = handled

    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if message == "gate":
            await self.gate.wait()
        self.handled.append(message)
        return message


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 4),
    overflow=st.sampled_from(POLICIES),
    count=st.integers(0, 12),
)
def test_actor_mailbox_matches_model(capacity: int, overflow: ta.Overflow, count: int) -> None:
    """Through real actors: what is handled, dropped and refused matches the model."""

    async def scenario() -> None:
        gate = trio.Event()
        handled: list[Any] = []
        model = ReferenceMailbox(capacity, overflow)
        refused: list[int] = []
        async with (
            ta.ActorSystem("model") as system,
            system.events.subscribe(DeadLetter) as dead,
        ):
            ref = await system.spawn(
                lambda: Gate(gate, handled), mailbox=ta.Bounded(capacity, overflow)
            )
            ref.tell_nowait("gate")
            await trio.testing.wait_all_tasks_blocked()  # the actor now waits on the gate
            for item in range(count):
                outcome = model.put(item)
                try:
                    ref.tell_nowait(item)
                except MailboxFull:
                    refused.append(item)
                    assert outcome == "full"
                else:
                    assert outcome in ("ok", "dropped")
            gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert handled == ["gate", *model.items]
            letters = []
            while True:
                try:
                    letters.append(dead.receive_nowait())
                except trio.WouldBlock:
                    break
            assert [letter.message for letter in letters] == model.dropped
            expected_reason = (
                DeadLetterReason.DROPPED_NEWEST
                if overflow is ta.Overflow.DROP_NEWEST
                else DeadLetterReason.DROPPED_OLDEST
            )
            assert all(letter.reason is expected_reason for letter in letters)
            assert all(letter.recipient == ref for letter in letters)
            stats = ref.statistics()
            assert stats.dropped == len(model.dropped) == system.dead_letters
            assert stats.processed == 1 + len(model.items)
            assert stats.enqueued == 1 + model.enqueued
            assert stats.length == 0
            if overflow in (ta.Overflow.FAIL, ta.Overflow.BLOCK):
                assert refused == list(range(capacity, count))

    trio.run(scenario)


@pytest.mark.parametrize("overflow", [ta.Overflow.DROP_NEWEST, ta.Overflow.DROP_OLDEST])
async def test_dropped_ask_fails_at_once(overflow: ta.Overflow) -> None:
    gate = trio.Event()
    handled: list[Any] = []
    async with ta.ActorSystem("drops") as system:
        ref = await system.spawn(lambda: Gate(gate, handled), mailbox=ta.Bounded(1, overflow))
        ref.tell_nowait("gate")
        await trio.testing.wait_all_tasks_blocked()
        outcomes: dict[str, Any] = {}

        async def ask(name: str) -> None:
            try:
                outcomes[name] = await ref.ask(name)
            except MessageDropped as exc:
                outcomes[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "first")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ask, "second")
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        dropped, kept = (
            ("second", "first")
            if overflow is ta.Overflow.DROP_NEWEST
            else (
                "first",
                "second",
            )
        )
        assert isinstance(outcomes[dropped], MessageDropped)
        assert outcomes[dropped].policy == overflow.name
        assert ref.path in str(outcomes[dropped])
        assert outcomes[kept] == kept
        assert handled == ["gate", kept]


async def test_block_waits_for_room_and_keeps_each_senders_order() -> None:
    gate = trio.Event()
    handled: list[Any] = []
    async with ta.ActorSystem("block") as system:
        ref = await system.spawn(lambda: Gate(gate, handled), mailbox=ta.Bounded(2))
        ref.tell_nowait("gate")
        await trio.testing.wait_all_tasks_blocked()
        sent: list[str] = []

        async def sender(tag: str) -> None:
            for i in range(5):
                await ref.tell(f"{tag}{i}")
                sent.append(f"{tag}{i}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender, "a")
            nursery.start_soon(sender, "b")
            await trio.testing.wait_all_tasks_blocked()
            assert len(sent) == 2  # two fit; both senders now wait for room
            assert ref.statistics().length == 2
            with pytest.raises(MailboxFull):
                ref.tell_nowait("no room")  # tell_nowait never waits: BLOCK becomes FAIL
            gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(handled[1:]) == sorted(sent)
        for tag in "ab":
            mine = [m for m in handled if isinstance(m, str) and m.startswith(tag) and m != "gate"]
            assert mine == [f"{tag}{i}" for i in range(5)]
        assert system.dead_letters == 0


async def test_cancelled_blocked_tell_sends_nothing() -> None:
    gate = trio.Event()
    handled: list[Any] = []
    async with ta.ActorSystem("cancel") as system:
        ref = await system.spawn(lambda: Gate(gate, handled), mailbox=ta.Bounded(1))
        ref.tell_nowait("gate")
        await trio.testing.wait_all_tasks_blocked()
        ref.tell_nowait("queued")
        with trio.move_on_after(0.01) as scope:
            await ref.tell("never")
        assert scope.cancelled_caught
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert handled == ["gate", "queued"]
        assert ref.statistics().enqueued == 2


async def test_stopping_wakes_blocked_senders_with_dead_letters() -> None:
    gate = trio.Event()
    handled: list[Any] = []
    async with ta.ActorSystem("stop") as system:
        ref = await system.spawn(lambda: Gate(gate, handled), mailbox=ta.Bounded(1))
        ref.tell_nowait("gate")
        await trio.testing.wait_all_tasks_blocked()
        ref.tell_nowait("queued")
        async with system.events.subscribe(DeadLetter) as dead:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.tell, "blocked")
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(ref.stop)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
            letters = [dead.receive_nowait(), dead.receive_nowait()]
        assert {letter.message for letter in letters} == {"queued", "blocked"}
        assert {letter.reason for letter in letters} == {DeadLetterReason.RECIPIENT_STOPPED}
        assert handled == ["gate"]


def test_bounded_rejects_bad_capacity() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="capacity"):
            ta.Bounded(bad)
    for wrong in (1.5, True, "3"):
        with pytest.raises(TypeError, match="capacity"):
            ta.Bounded(wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"overflow must be one of Overflow\.BLOCK"):
        ta.Bounded(3, "block")  # type: ignore[arg-type]


async def test_system_messages_bypass_capacity_and_go_first() -> None:
    gate = trio.Event()
    handled: list[Any] = []
    async with ta.ActorSystem("sys") as system:
        ref = await system.spawn(lambda: Gate(gate, handled), mailbox=ta.Bounded(1))
        ref.tell_nowait("gate")
        await trio.testing.wait_all_tasks_blocked()
        ref.tell_nowait("queued")
        # a full mailbox still takes the stop request, and it is handled first
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.stop)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        assert handled == ["gate"]
        assert not ref.is_alive
