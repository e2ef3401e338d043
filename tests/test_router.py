"""Routers: every routing rule, asks through each router, routee changes and removal."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.errors import ActorFailed, ActorStopped, MailboxFull, NoRoutees
from tinyagents.events import DeadLetter, DeadLetterReason
from tinyagents.router import (
    AddRoutee,
    Broadcast,
    ConsistentHash,
    GetRoutees,
    LeastLoaded,
    Random,
    RemoveRoutee,
    RoundRobin,
    RouteeReply,
)


class Named(ta.Actor):
    """Answers every message with (its own name, the message, the sender's path)."""

    def __init__(self, seen: list[tuple[str, Any]] | None = None) -> None:
        self.seen = seen

    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if self.seen is not None:
            self.seen.append((ctx.self.name, message))
        if message == "fail":
            raise ValueError("routee failed")
        sender = ctx.sender.path if ctx.sender is not None else None
        return (ctx.self.name, message, sender)


async def spawn_named(
    system: ta.ActorSystem, names: str, seen: list[tuple[str, Any]] | None = None
) -> list[ta.ActorRef]:
    return [await system.spawn(lambda: Named(seen), name=name) for name in names]


async def test_round_robin_goes_in_turn_and_the_routee_answers() -> None:
    async with ta.ActorSystem("rr") as system:
        routees = await spawn_named(system, "abc")
        router = await system.spawn(RoundRobin(routees), name="router")
        answers = [await router.ask(i) for i in range(7)]
        assert [name for name, _, _ in answers] == list("abcabca")
        assert [message for _, message, _ in answers] == list(range(7))


async def test_router_keeps_the_original_sender() -> None:
    class Client(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            return await message.ask("hi")

    async with ta.ActorSystem("sender") as system:
        routees = await spawn_named(system, "a")
        router = await system.spawn(RoundRobin(routees))
        client = await system.spawn(Client, name="client")
        assert await client.ask(router) == ("a", "hi", "/user/client")


async def test_random_is_reproducible_with_a_seed_and_uses_every_routee() -> None:
    async with ta.ActorSystem("random") as system:
        routees = await spawn_named(system, "abcd")
        first = await system.spawn(Random(routees, seed=42))
        second = await system.spawn(Random(routees, seed=42))
        picks_1 = [(await first.ask(i))[0] for i in range(200)]
        picks_2 = [(await second.ask(i))[0] for i in range(200)]
        assert picks_1 == picks_2
        counts = Counter(picks_1)
        assert set(counts) == set("abcd")
        assert picks_1 != sorted(picks_1)


async def test_broadcast_tells_everyone_and_ask_gathers_every_reply() -> None:
    seen: list[tuple[str, Any]] = []
    async with ta.ActorSystem("broadcast") as system:
        routees = await spawn_named(system, "abc", seen)
        router = await system.spawn(Broadcast(routees))
        await router.tell("news")
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(seen) == [("a", "news"), ("b", "news"), ("c", "news")]
        replies = await router.ask("question")
        assert [r.ref for r in replies] == routees
        assert all(r.ok for r in replies)
        assert [r.value[0] for r in replies] == ["a", "b", "c"]


async def test_broadcast_ask_marks_each_failure() -> None:
    class Picky(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if ctx.self.name == "b":
                raise ValueError("b refuses")
            return ctx.self.name

    async with ta.ActorSystem("marks") as system:
        routees = [await system.spawn(Picky, name=name) for name in "abc"]
        router = await system.spawn(Broadcast(routees))
        replies: list[RouteeReply] = await router.ask("q")
        assert [r.ok for r in replies] == [True, False, True]
        assert [r.value for r in replies] == ["a", None, "c"]
        failure = replies[1].error
        assert isinstance(failure, ActorFailed)
        assert isinstance(failure.error, ValueError)


async def test_broadcast_keeps_serving_while_an_ask_gathers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Sleepy(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            await trio.sleep(message)
            return message

    async with ta.ActorSystem("gather") as system:
        routees = [await system.spawn(Sleepy) for _ in range(3)]
        router = await system.spawn(Broadcast(routees))
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(router.ask, 5.0)
        # both asks gathered concurrently: the routees took 2 x 5 s, not the router 4 x 5 s
        assert trio.current_time() - start == pytest.approx(10.0)


@attrs.frozen
class Deposit:
    account: str
    amount: int

    @property
    def hash_key(self) -> str:
        return self.account


async def test_consistent_hash_sends_a_key_always_to_the_same_routee() -> None:
    async with ta.ActorSystem("hash") as system:
        routees = await spawn_named(system, "abcd")
        router = await system.spawn(ConsistentHash(routees))
        owners: dict[str, set[str]] = {}
        for round_ in range(3):
            for account in (f"acct-{i}" for i in range(40)):
                name, _, _ = await router.ask(Deposit(account, round_))
                owners.setdefault(account, set()).add(name)
        assert all(len(names) == 1 for names in owners.values())
        assert {next(iter(n)) for n in owners.values()} == set("abcd")  # all used


async def test_consistent_hash_key_function_and_bad_messages() -> None:
    async with ta.ActorSystem("key") as system:
        routees = await spawn_named(system, "ab")
        router = await system.spawn(ConsistentHash(routees, key=lambda m: m["user"]))
        first = await router.ask({"user": "ann", "n": 1})
        again = await router.ask({"user": "ann", "n": 2})
        assert first[0] == again[0]
        plain = await system.spawn(ConsistentHash(routees), supervisor=ta.Stop())
        with pytest.raises(ActorFailed) as info:
            await plain.ask(12345)
        assert isinstance(info.value.error, TypeError)
        assert "hash_key" in str(info.value.error)


async def test_consistent_hash_moves_only_the_removed_routees_keys() -> None:
    async with ta.ActorSystem("move") as system:
        routees = await spawn_named(system, "abcd")
        router = await system.spawn(ConsistentHash(routees))
        keys = [f"k{i}" for i in range(200)]
        before = {k: (await router.ask(k))[0] for k in keys}
        await routees[1].stop()  # "b" stops: the router drops it
        await trio.testing.wait_all_tasks_blocked()
        after = {k: (await router.ask(k))[0] for k in keys}
        for key in keys:
            if before[key] != "b":
                assert after[key] == before[key]
            else:
                assert after[key] != "b"


async def test_least_loaded_counts_the_message_in_hand_and_breaks_ties_in_turn() -> None:
    gates = {name: trio.Event() for name in "abc"}
    seen: list[tuple[str, Any]] = []

    class Gated(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> None:
            seen.append((ctx.self.name, message))
            await gates[ctx.self.name].wait()

    async def tell(router: ta.ActorRef, message: Any) -> str:
        await router.tell(message)
        await trio.testing.wait_all_tasks_blocked()
        return seen[-1][0] if seen[-1][1] == message else "queued"

    async with ta.ActorSystem("least") as system:
        a, b = [await system.spawn(Gated, name=name) for name in "ab"]
        router = await system.spawn(LeastLoaded([a, b]))
        assert await tell(router, 0) == "a"  # all idle: in turn
        assert await tell(router, 1) == "b"  # tie (0, 0): in turn
        gates["b"].set()
        await trio.testing.wait_all_tasks_blocked()
        # a holds one message in hand with an empty queue, b is idle: b, although a is
        # next in turn, because the message in hand counts
        assert await tell(router, 2) == "b"
        # a: one in hand; b: idle. Two quick tells: b (idle), then a tie at 1 goes in
        # turn to a, whose load becomes 2 (one in hand, one queued)
        await router.tell(3)
        await router.tell(4)
        await trio.testing.wait_all_tasks_blocked()
        assert [m for name, m in seen if name == "b"] == [1, 2, 3]
        assert a.statistics().length == 1
        assert a.statistics().busy
        c = await system.spawn(Gated, name="c")
        await router.ask(AddRoutee(c))
        # b and c are both idle (b's gate is open): the tie goes in turn, b then c
        assert await tell(router, 6) == "b"
        assert await tell(router, 7) == "c"
        for gate in gates.values():
            gate.set()


async def test_routees_added_and_removed_at_run_time() -> None:
    async with ta.ActorSystem("dynamic") as system:
        a, b, c = await spawn_named(system, "abc")
        router = await system.spawn(RoundRobin([a]))
        await router.tell(AddRoutee(b))
        await router.ask(AddRoutee(b))  # twice is once
        assert await router.ask(GetRoutees()) == [a, b]
        assert [(await router.ask(i))[0] for i in range(4)] == list("abab")
        await router.ask(RemoveRoutee(a))
        await router.ask(AddRoutee(c))
        assert await router.ask(GetRoutees()) == [b, c]
        await c.stop()
        await trio.testing.wait_all_tasks_blocked()
        assert await router.ask(GetRoutees()) == [b]


async def test_a_router_without_routees_fails_asks_and_dead_letters_tells() -> None:
    async with ta.ActorSystem("empty") as system:
        (a,) = await spawn_named(system, "a")
        router = await system.spawn(RoundRobin([a]), name="router")
        await a.stop()
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(NoRoutees, match="/user/router"):
            await router.ask("anyone?")
        async with system.events.subscribe(DeadLetter) as events:
            await router.tell("hello?")
            letter = await events.receive()
        assert letter.reason is DeadLetterReason.NO_ROUTEE
        assert letter.message == "hello?"
        assert letter.recipient == router
        assert router.is_alive  # not a failure of the router


async def test_pools_spawn_their_workers_as_children() -> None:
    async with ta.ActorSystem("pool") as system:
        router = await system.spawn(RoundRobin.pool(3, Named), name="workers")
        routees = await router.ask(GetRoutees())
        assert [r.path for r in routees] == [f"/user/workers/${i}" for i in (1, 2, 3)]
        assert {(await router.ask(i))[0] for i in range(6)} == {"$1", "$2", "$3"}
        for spec in (
            Random.pool(2, Named, seed=1),
            Broadcast.pool(2, Named),
            LeastLoaded.pool(2, Named),
            ConsistentHash.pool(2, Named),
        ):
            ref = await system.spawn(spec)
            assert len(await ref.ask(GetRoutees())) == 2
        with pytest.raises(ValueError, match="positive"):
            RoundRobin.pool(0, Named)
        with pytest.raises(TypeError, match="ActorRef"):
            RoundRobin(["not a ref"])  # type: ignore[list-item]


async def test_a_failing_routee_fails_the_ask_not_the_router() -> None:
    async with ta.ActorSystem("fail") as system:
        routees = await spawn_named(system, "ab")
        router = await system.spawn(RoundRobin(routees))
        with pytest.raises(ActorFailed):
            await router.ask("fail")
        assert (await router.ask("ok"))[0] == "b"
        assert router.is_alive


class Gate(ta.Actor):
    """Waits on ``gate`` for its first message, then records every message."""

    def __init__(self, gate: trio.Event, seen: list[Any]) -> None:
        self.gate = gate
        self.seen = seen

    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if message == "first":
            await self.gate.wait()
        self.seen.append(message)
        return message


async def test_a_full_block_routee_is_waited_for_by_the_router() -> None:
    gate = trio.Event()
    seen: list[Any] = []
    async with ta.ActorSystem("block") as system:
        routee = await system.spawn(lambda: Gate(gate, seen), mailbox=ta.Bounded(1))
        router = await system.spawn(RoundRobin([routee]))
        router.tell_nowait("first")
        await trio.testing.wait_all_tasks_blocked()
        router.tell_nowait("queued")  # fills the routee's mailbox
        router.tell_nowait("waits")  # the router takes it and waits for room
        router.tell_nowait("after")
        await trio.testing.wait_all_tasks_blocked()
        assert router.statistics().enqueued == 2
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["first", "queued", "waits", "after"]
        assert system.dead_letters == 0


async def test_a_full_fail_routee_raises_to_the_sender() -> None:
    gate = trio.Event()
    async with ta.ActorSystem("fail") as system:
        routee = await system.spawn(
            lambda: Gate(gate, []), mailbox=ta.Bounded(1, ta.Overflow.FAIL), name="r"
        )
        router = await system.spawn(RoundRobin([routee]))
        router.tell_nowait("first")
        await trio.testing.wait_all_tasks_blocked()
        router.tell_nowait("queued")
        with pytest.raises(MailboxFull, match="/user/r"):
            router.tell_nowait("refused")
        with pytest.raises(MailboxFull):
            await router.ask("refused too")
        gate.set()


async def test_broadcast_copy_refused_by_a_fail_routee_is_a_dead_letter() -> None:
    gate = trio.Event()
    seen: list[Any] = []
    async with ta.ActorSystem("bfail") as system:
        full = await system.spawn(
            lambda: Gate(gate, []), mailbox=ta.Bounded(1, ta.Overflow.FAIL), name="full"
        )
        other = await system.spawn(lambda: Named(seen), name="other")
        full.tell_nowait("first")
        await trio.testing.wait_all_tasks_blocked()
        full.tell_nowait("queued")
        router = await system.spawn(Broadcast([full, other]))
        async with system.events.subscribe(DeadLetter) as events:
            await router.tell("news")
            letter = await events.receive()
        assert letter.reason is DeadLetterReason.MAILBOX_FULL
        assert letter.recipient == full
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [("other", "news")]
        gate.set()


async def test_a_stopped_router_dead_letters_what_it_is_sent() -> None:
    async with ta.ActorSystem("stopped") as system:
        routees = await spawn_named(system, "a")
        router = await system.spawn(RoundRobin(routees))
        await router.stop()
        async with system.events.subscribe(DeadLetter) as events:
            await router.tell("late")
            letter = await events.receive()
        assert letter.reason is DeadLetterReason.RECIPIENT_STOPPED
        assert letter.recipient == router
        with pytest.raises(ActorStopped):
            await router.ask("late ask")
