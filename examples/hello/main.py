"""The smallest tinyagents program: one actor, one tell, one ask.

It opens an actor system, spawns a ``Greeter``, sends it a message without waiting
for an answer (``tell``), then asks it a question and prints the reply (``ask``).
Leaving the ``async with`` block stops the actor and the system.

Run it with::

    python examples/hello/main.py
"""

from __future__ import annotations

import trio

from tinyagents import Actor, ActorSystem, Context


class Greeter(Actor):
    """Greets whoever it is asked about, and counts the greetings."""

    def __init__(self) -> None:
        self.greeted = 0

    async def receive(self, ctx: Context, message: object) -> object:
        if not isinstance(message, str):
            raise TypeError(f"Greeter expects a name, not {message!r}")
        self.greeted += 1
        greeting = f"Hello, {message}! (greeting #{self.greeted})"
        if ctx.asked:
            return greeting  # the return value is the reply to an ask
        print(f"[{ctx.self.path}] {greeting}")
        return None


async def main() -> None:
    async with ActorSystem("hello") as system:
        greeter = await system.spawn(Greeter, name="greeter")
        print(f"spawned {greeter.path}")

        await greeter.tell("trio")  # fire and forget: the greeter prints it
        reply = await greeter.ask("world", timeout=1.0)  # wait for the reply
        print(f"reply: {reply}")
    print("system stopped")


if __name__ == "__main__":
    trio.run(main)
