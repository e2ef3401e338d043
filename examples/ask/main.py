"""Every way an ask can end, shown for real.

``ref.ask(message, timeout=...)`` sends a message and waits for the reply. It always
ends, in one of these ways, each shown below:

1. the reply is the handler's return value;
2. the handler answers early with ``ctx.reply(value)`` (its return value is then ignored);
3. ``AskTimeout``: no reply within the timeout (the late reply becomes a dead letter);
4. ``ActorFailed``: the handler raised; the actor is supervised by ``OneForOne``, so it
   is restarted with a fresh instance and answers the next ask;
5. ``MessageDropped``: a full ``Bounded(..., DROP_NEWEST)`` mailbox dropped the message;
6. ``ActorStopped``: the actor has stopped.

At the end it lists the dead letters these produced, from a ``DeadLetter`` subscription.

Run it with::

    python examples/ask/main.py
"""

from __future__ import annotations

import logging

import attrs
import trio

from tinyagents import (
    Actor,
    ActorSystem,
    Backoff,
    Bounded,
    Context,
    DeadLetter,
    OneForOne,
    Overflow,
)
from tinyagents.errors import ActorFailed, ActorStopped, AskTimeout, MessageDropped


@attrs.frozen
class Add:
    a: int
    b: int


@attrs.frozen
class Shout:
    text: str


@attrs.frozen
class Slow:
    seconds: float


@attrs.frozen
class Divide:
    a: int
    b: int


class Calculator(Actor):
    """Answers arithmetic questions."""

    async def restarted(self, ctx: Context, error: BaseException | None) -> None:
        print(f"   [{ctx.self.name}] restarted with a fresh instance after {error!r}")

    async def receive(self, ctx: Context, message: object) -> object:
        match message:
            case Add(a, b):
                return a + b  # (1) the return value is the reply
            case Shout(text):
                ctx.reply(text.upper())  # (2) reply now...
                return "ignored"  # ...so the return value is not used
            case Slow(seconds):
                await trio.sleep(seconds)
                return f"done after {seconds}s"
            case Divide(a, b):
                return a // b  # raises ZeroDivisionError when b == 0
            case _:
                raise TypeError(f"unexpected message {message!r}")


async def main() -> None:
    # Supervision logs every failure at WARNING with its traceback; this program fails
    # on purpose, so keep the output short.
    logging.getLogger("tinyagents.actor").setLevel(logging.ERROR)

    async with (
        ActorSystem("ask-demo") as system,
        system.events.subscribe(DeadLetter) as dead_letters,
    ):
        calc = await system.spawn(
            Calculator,
            name="calc",
            supervisor=OneForOne(max_restarts=3, within=10.0, backoff=Backoff(initial=0.01)),
        )

        print("1. reply from the return value")
        print(f"   Add(2, 3) -> {await calc.ask(Add(2, 3), timeout=1.0)!r}")

        print("2. reply with ctx.reply()")
        print(f"   Shout('hi') -> {await calc.ask(Shout('hi'), timeout=1.0)!r}")

        print("3. AskTimeout")
        try:
            await calc.ask(Slow(0.2), timeout=0.05)
        except AskTimeout as exc:
            print(f"   {type(exc).__name__}: {exc}")
        # The message is not withdrawn: the actor finishes it, and the reply it then
        # gives becomes a dead letter (LATE_REPLY). The next ask waits behind it.

        print("4. ActorFailed, then a restart")
        try:
            await calc.ask(Divide(1, 0), timeout=1.0)
        except ActorFailed as exc:
            print(f"   {type(exc).__name__}: {exc}")
            print(f"   the handler's error: {exc.error!r} (also exc.__cause__)")
        print(f"   Divide(7, 2) -> {await calc.ask(Divide(7, 2), timeout=1.0)!r}")

        print("5. MessageDropped")
        tiny = await system.spawn(
            Calculator, name="tiny", mailbox=Bounded(1, overflow=Overflow.DROP_NEWEST)
        )
        # tell_nowait never yields, so `tiny` has not taken this message yet and its
        # one slot is still full when the ask arrives.
        tiny.tell_nowait(Add(0, 0))
        try:
            await tiny.ask(Add(1, 1), timeout=1.0)
        except MessageDropped as exc:
            print(f"   {type(exc).__name__}: {exc}")

        print("6. ActorStopped")
        await calc.stop()  # waits until the actor has stopped
        try:
            await calc.ask(Add(1, 1), timeout=1.0)
        except ActorStopped as exc:
            print(f"   {type(exc).__name__}: {exc}")

        print(f"dead letters: {system.dead_letters}")
        while True:
            try:
                letter = dead_letters.receive_nowait()
            except trio.WouldBlock:
                break
            recipient = letter.recipient.path if letter.recipient else "-"
            print(f"   {letter.reason.name:<17} to {recipient:<11} {letter.message!r}")


if __name__ == "__main__":
    trio.run(main)
