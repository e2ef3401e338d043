"""The ask timer: asks with the default timeout (its FIFO lane) and with others (its heap)
all end at exactly their deadlines, however they are answered, and settled asks leave
nothing behind."""

from __future__ import annotations

import random
from typing import Any

import trio
import trio.testing

import tinyagents as ta
from tinyagents.errors import AskTimeout


class Detaches(ta.Actor):
    """Keeps every reply, to be answered (or not) by the test."""

    def __init__(self, replies: list[ta.Reply]) -> None:
        self.replies = replies

    async def receive(self, ctx: ta.Context, message: Any) -> None:
        self.replies.append(ctx.detach_reply())


async def test_mixed_timeouts_answered_out_of_order_end_at_their_own_deadlines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rng = random.Random(7)
    replies: list[ta.Reply] = []
    outcomes: dict[int, tuple[str, float]] = {}
    # timeouts of None use the system's default (10 s): the lane; the others: the heap
    timeouts = [None, 3.0, None, 25.0, 1.0, None, 3.0, 0.5] * 40

    async def ask(ref: ta.ActorRef, index: int, timeout: float | None) -> None:
        start = trio.current_time()
        try:
            await ref.ask(index, timeout=timeout)
        except AskTimeout:
            outcomes[index] = ("timeout", trio.current_time() - start)
        else:
            outcomes[index] = ("reply", trio.current_time() - start)

    async with ta.ActorSystem(ask_timeout=10.0) as system, trio.open_nursery() as nursery:
        ref = await system.spawn(lambda: Detaches(replies))
        for index, timeout in enumerate(timeouts):
            nursery.start_soon(ask, ref, index, timeout)
        await trio.testing.wait_all_tasks_blocked()
        assert len(replies) == len(timeouts)
        # answer half of them, in a shuffled order, at once
        answered = set(rng.sample(range(len(timeouts)), len(timeouts) // 2))
        by_message = {reply.message: reply for reply in replies}
        for index in rng.sample(sorted(answered), len(answered)):
            by_message[index].send(index)
        await trio.sleep(30.0)
        timer = system._ask_timer
        assert not timer._lane
        assert not timer._heap
    for index, timeout in enumerate(timeouts):
        if index in answered:
            assert outcomes[index] == ("reply", 0.0)
        else:
            assert outcomes[index] == ("timeout", 10.0 if timeout is None else timeout)


async def test_sequential_asks_leave_the_timer_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Echo(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            return message

    async with ta.ActorSystem() as system:
        ref = await system.spawn(Echo)
        for i in range(1000):
            assert await ref.ask(i) == i
            assert await ref.ask(i, timeout=5.0) == i
        timer = system._ask_timer
        assert not timer._lane
        assert not timer._heap


async def test_many_settled_behind_one_pending_ask_are_compacted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    replies: list[ta.Reply] = []
    async with ta.ActorSystem() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(lambda: Detaches(replies))
        for i in range(2000):
            nursery.start_soon(lambda i=i: ref.ask(i))
            nursery.start_soon(lambda i=i: ref.ask(i, timeout=100.0))
        await trio.testing.wait_all_tasks_blocked()
        for reply in replies[2:]:  # the first of each kind stays pending
            reply.send(None)
        timer = system._ask_timer
        assert len(timer._lane) < 600
        assert len(timer._heap) < 600
        for reply in replies[:2]:
            reply.send(None)
        assert not timer._lane
        assert not timer._heap
