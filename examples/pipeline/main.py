"""A pipeline of actors passing typed messages, with backpressure between the stages.

::

    main --Line--> tokenizer --Tokens--> worker-0 --Counted--> collector
                      (round robin)   -> worker-1 ->           (reorders by seq)
                                      -> worker-2 ->

* Messages are frozen attrs classes, matched by type in ``receive``.
* ``tokenizer`` spawns the workers as its children in its ``started`` hook. Each worker
  has a ``Bounded(2)`` mailbox with the default ``BLOCK`` policy, so ``await tell``
  waits while a worker is full: a slow stage holds back the one before it instead of
  queueing without limit. ``tokenizer``'s own mailbox is bounded too, so ``main`` is
  held back in the same way.
* The workers are not equally fast, so results reach ``collector`` out of order; it
  puts them back in sequence.
* ``main`` asks ``collector`` for a ``Summary``; the collector keeps that ask open with
  ``ctx.detach_reply()`` and answers it once every line is in.
* Nothing is lost: the dead-letter count is 0 at the end, after shutdown too.

Run it with::

    python examples/pipeline/main.py
"""

from __future__ import annotations

import functools

import attrs
import trio

from tinyagents import Actor, ActorRef, ActorSystem, Bounded, Context, Reply

TEXT = """\
Beautiful is better than ugly.
Explicit is better than implicit.
Simple is better than complex.
Complex is better than complicated.
Flat is better than nested.
Sparse is better than dense.
Readability counts.
Special cases aren't special enough to break the rules.
Although practicality beats purity.
Errors should never pass silently.
Unless explicitly silenced.
In the face of ambiguity, refuse the temptation to guess.
"""


# -- messages -------------------------------------------------------------------------


@attrs.frozen
class Line:
    """main -> tokenizer: one line of input, numbered."""

    seq: int
    text: str


@attrs.frozen
class Tokens:
    """tokenizer -> worker: the words of one line."""

    seq: int
    words: tuple[str, ...]


@attrs.frozen
class Counted:
    """worker -> collector: what a worker found in one line."""

    seq: int
    words: int
    longest: str


@attrs.frozen
class Finish:
    """main -> collector (asked): reply with a Summary once ``lines`` lines are in."""

    lines: int


@attrs.frozen
class Summary:
    """collector -> main: the reply to Finish."""

    lines: int
    words: int
    out_of_order: int


# -- actors ---------------------------------------------------------------------------


class Worker(Actor):
    """Counts the words of a line; ``delay`` makes some workers slower than others."""

    def __init__(self, collector: ActorRef, delay: float) -> None:
        self.collector = collector
        self.delay = delay

    async def receive(self, ctx: Context, message: object) -> None:
        match message:
            case Tokens(seq, words):
                await trio.sleep(self.delay)  # stands for real work
                longest = max(words, key=len, default="")
                # Told from inside an actor, the message's sender is this worker.
                await self.collector.tell(Counted(seq, len(words), longest))
            case _:
                raise TypeError(f"unexpected message {message!r}")


class Tokenizer(Actor):
    """Splits lines into words and deals them out to its workers in turn."""

    def __init__(self, collector: ActorRef, workers: int) -> None:
        self.collector = collector
        self.worker_count = workers
        self.workers: list[ActorRef] = []
        self.waited = 0

    async def started(self, ctx: Context) -> None:
        for i in range(self.worker_count):
            worker = await ctx.spawn(
                functools.partial(Worker, self.collector, 0.002 * (1 + 2 * i)),
                name=f"worker-{i}",
                mailbox=Bounded(2),  # overflow=Overflow.BLOCK is the default
            )
            self.workers.append(worker)

    async def receive(self, ctx: Context, message: object) -> None:
        match message:
            case Line(seq, text):
                words = tuple(word.strip(".,") for word in text.split())
                worker = self.workers[seq % len(self.workers)]
                stats = worker.statistics()
                if stats.length >= stats.capacity:
                    self.waited += 1  # this tell will wait until the worker takes one
                await worker.tell(Tokens(seq, words))
            case _:
                raise TypeError(f"unexpected message {message!r}")

    async def stopped(self, ctx: Context) -> None:
        # Runs after the workers (its children) have stopped.
        print(f"tokenizer: stopped; it waited for a full worker {self.waited} times")


class Collector(Actor):
    """Puts results back in sequence and answers Finish when all are in."""

    def __init__(self) -> None:
        self.next_seq = 0
        self.held: dict[int, tuple[Counted, str]] = {}
        self.words = 0
        self.out_of_order = 0
        self.expected: int | None = None
        self.finish: Reply | None = None

    async def receive(self, ctx: Context, message: object) -> None:
        match message:
            case Counted(seq):
                if seq != self.next_seq:
                    self.out_of_order += 1
                worker = ctx.sender.name if ctx.sender is not None else "?"
                self.held[seq] = (message, worker)
                while self.next_seq in self.held:
                    result, worker = self.held.pop(self.next_seq)
                    self.words += result.words
                    print(
                        f"  #{result.seq:02d} {result.words:2d} words,"
                        f" longest {result.longest!r:<14} (from {worker})"
                    )
                    self.next_seq += 1
            case Finish(lines):
                self.expected = lines
                # Keep the ask open; the handler's return value is no longer the reply.
                self.finish = ctx.detach_reply()
            case _:
                raise TypeError(f"unexpected message {message!r}")
        if self.finish is not None and self.next_seq == self.expected:
            self.finish.send(Summary(self.next_seq, self.words, self.out_of_order))
            self.finish = None


async def main() -> None:
    lines = TEXT.splitlines()
    async with ActorSystem("pipeline") as system:
        collector = await system.spawn(Collector, name="collector")
        tokenizer = await system.spawn(
            functools.partial(Tokenizer, collector, 3),
            name="tokenizer",
            mailbox=Bounded(4),
        )
        workers = [system.lookup(f"{tokenizer.path}/worker-{i}") for i in range(3)]
        print(f"{tokenizer.path} -> {[w.name for w in workers if w]} -> {collector.path}")
        for seq, text in enumerate(lines):
            await tokenizer.tell(Line(seq, text))  # waits while the tokenizer is full
        summary = await collector.ask(Finish(len(lines)), timeout=5.0)
        print(
            f"collector: {summary.lines} lines, {summary.words} words,"
            f" {summary.out_of_order} arrived out of order"
        )
    print(f"dead letters: {system.dead_letters}")


if __name__ == "__main__":
    trio.run(main)
