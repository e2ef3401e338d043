"""Two nodes: node a asks an agent and an actor that live on node b, across a transport.

Each node is an :class:`~tinyagents.ActorSystem` with its own
:class:`~tinyagents.transport.Transport`; the two authenticate each other with a shared
secret (an HMAC challenge-response: the secret never goes on the wire). Node b runs an
agent ``bot`` (on an offline :class:`~tinyagents.testing.ScriptedProvider`) and a plain
actor ``calc``. Node a makes refs to them from URIs
(``tinyagents://b@127.0.0.1:<port>/user/bot``) and:

1. asks ``bot`` with a ``Prompt`` whose ``stream`` is a channel of node a: the text
   deltas come back over the connection while the ask waits, then the ``Response``;
2. asks ``calc`` a registered message type (``@message``), and gets the sum back;
3. asks ``calc`` to divide by zero: ``ActorFailed``, whose ``__cause__`` is a
   ``RemoteError`` with the remote exception's ``type_name``, ``text`` and ``node``
   (the exception object itself never crosses); ``calc`` is restarted on node b and
   answers the next ask;
4. asks an actor that does not exist on node b: ``ActorStopped`` at once, not after
   the timeout.

Every line says which node prints it (``[a]`` or ``[b]``). Everything stays on
127.0.0.1: no network and no model are needed.

Run both nodes in one process (each on a free port)::

    python examples/remote-ask/main.py

or in two terminals (node b serves until Ctrl-C)::

    python examples/remote-ask/main.py --role b --bind 127.0.0.1:7947
    python examples/remote-ask/main.py --role a --peer 127.0.0.1:7947

``--secret`` (the same on both sides) sets the shared secret.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys

import attrs
import trio

from tinyagents import Actor, ActorRef, ActorSystem, Context
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.errors import ActorFailed, ActorStopped, NodeUnreachable, RemoteError
from tinyagents.llm import ChatRequest, Chunk
from tinyagents.testing import ScriptedProvider
from tinyagents.transport import Transport, message

DEFAULT_SECRET = "tinyagents-remote-ask-demo"
TIMEOUT = 10.0


# Message types that cross nodes are registered with @message, on both nodes (here the
# same module runs both). Prompt, Response and Chunk need no registration.
@message
@attrs.frozen
class Add:
    a: int
    b: int


@message
@attrs.frozen
class Divide:
    a: int
    b: int


class Calculator(Actor):
    """A plain actor of node b."""

    async def restarted(self, ctx: Context, error: BaseException | None) -> None:
        print(f"[b] {ctx.self.name} restarted after {error!r}")

    async def receive(self, ctx: Context, message: object) -> object:
        print(f"[b] {ctx.self.name} handles {message!r}")
        match message:
            case Add(a, b):
                return a + b
            case Divide(a, b):
                return a // b  # ZeroDivisionError when b == 0
            case _:
                raise TypeError(f"unexpected message {message!r}")


def answer(request: ChatRequest) -> str:
    """The scripted model of node b's agent: it answers any prompt, offline."""
    question = request.messages[-1].content
    print(f"[b] bot's model is asked {question!r}")
    return f"Hello from node b! You said {question!r}; this reply streamed across nodes."


# -- node b ---------------------------------------------------------------------------


async def start_node_b(system: ActorSystem) -> None:
    """Spawn node b's actors: the agent ``bot`` and the actor ``calc``."""
    provider = ScriptedProvider(default=answer, chunk_size=8, delay=0.02)
    await system.spawn(Agent("bot", provider, "scripted-1"), name="bot")
    await system.spawn(Calculator, name="calc")
    print("[b] spawned /user/bot (an agent) and /user/calc (an actor)")


async def serve_node_b(bind: str, secret: str) -> None:
    """``--role b``: run node b alone until Ctrl-C."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with (
            ActorSystem("b") as system,
            Transport(system, bind=bind, secret=secret) as transport,
        ):
            await start_node_b(system)
            host, port = transport.address
            print(f"[b] node b listens on {host}:{port}; run node a with:")
            print(f"[b]     python examples/remote-ask/main.py --role a --peer {host}:{port}")
            print("[b] serving; press Ctrl-C to stop")
            async for _ in signals:
                break
            print("\n[b] Ctrl-C: stopping node b")
    print("[b] node b stopped")


# -- node a ---------------------------------------------------------------------------


async def run_node_a(peer: str, secret: str) -> None:
    """Node a: every ask goes to node b, listening at ``peer`` (``host:port``)."""
    async with (
        ActorSystem("a") as system,
        Transport(system, bind="127.0.0.1:0", secret=secret) as transport,
    ):
        host, port = transport.address
        print(f"[a] node a listens on {host}:{port}; node b is at {peer}")
        bot = system.ref_for(f"tinyagents://b@{peer}/user/bot")
        calc = system.ref_for(f"tinyagents://b@{peer}/user/calc")

        print(f"\n[a] 1. ask the agent {bot.uri} with a stream")
        response = await ask_streaming(bot, "hi there")
        print(f"[a]    Response.agent: {response.agent!r}")
        print(f"[a]    Response.text:  {response.text!r}")
        usage = response.usage
        print(f"[a]    Response.usage: {usage.input_tokens} in, {usage.output_tokens} out")

        print(f"\n[a] 2. ask the actor {calc.uri}")
        print(f"[a]    Add(2, 3) -> {await calc.ask(Add(2, 3), timeout=TIMEOUT)!r}")

        print("\n[a] 3. a remote failure")
        try:
            await calc.ask(Divide(1, 0), timeout=TIMEOUT)
        except ActorFailed as failure:
            cause = failure.__cause__
            assert isinstance(cause, RemoteError)
            print(f"[a]    ActorFailed: {failure}")
            print(f"[a]    its __cause__ is a RemoteError raised on node {cause.node!r}:")
            print(f"[a]      type_name={cause.type_name!r} text={cause.text!r}")
        print(f"[a]    Divide(7, 2) -> {await calc.ask(Divide(7, 2), timeout=TIMEOUT)!r}")

        print("\n[a] 4. an actor that does not exist on node b")
        nobody = system.ref_for(f"tinyagents://b@{peer}/user/nobody")
        started = trio.current_time()
        try:
            await nobody.ask(Add(1, 1), timeout=TIMEOUT)
        except ActorStopped as stopped:
            took = trio.current_time() - started
            print(f"[a]    ActorStopped after {took * 1000:.1f} ms (timeout {TIMEOUT:g} s):")
            print(f"[a]      {stopped}")

        stats = transport.stats
        print(
            f"\n[a] transport: {stats.connections_opened} connection opened, "
            f"{stats.frames_sent} frames sent, {stats.frames_received} received"
        )


async def ask_streaming(bot: ActorRef, text: str) -> Response:
    """Ask ``bot``, printing the deltas as they arrive on node a's channel."""
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    deltas: list[str] = []

    async def show() -> None:
        async with receive:
            async for chunk in receive:  # ends when the agent closes the stream
                if chunk.delta:
                    deltas.append(chunk.delta)
                    print(f"[a]    delta {len(deltas)}: {chunk.delta!r}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(show)
        response: Response = await bot.ask(Prompt(text, stream=send), timeout=TIMEOUT)
    print(f"[a]    {len(deltas)} deltas, then the stream was closed")
    return response


# -- both in one process --------------------------------------------------------------


async def run_both(secret: str) -> None:
    """The default: node b on a free port and node a, in one process."""
    async with (
        ActorSystem("b") as system_b,
        Transport(system_b, bind="127.0.0.1:0", secret=secret) as transport_b,
    ):
        await start_node_b(system_b)
        host, port = transport_b.address
        print(f"[b] node b listens on {host}:{port}")
        await run_node_a(f"{host}:{port}", secret)
        print("[a] node a stopped")
    print("[b] node b stopped")


async def main(args: argparse.Namespace) -> int:
    # Supervision logs the division by zero at WARNING with its traceback; it is on
    # purpose, so keep the output short.
    logging.getLogger("tinyagents.actor").setLevel(logging.ERROR)
    if args.role == "b":
        await serve_node_b(args.bind, args.secret)
    elif args.role == "a":
        try:
            await run_node_a(args.peer, args.secret)
        except NodeUnreachable as error:
            print(f"[a] {error}", file=sys.stderr)
            print(
                f"[a] is node b running (--role b --bind {args.peer}), with the same --secret?",
                file=sys.stderr,
            )
            return 1
    else:
        await run_both(args.secret)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--role",
        choices=["a", "b"],
        help="run only node a or only node b (default: both, in one process)",
    )
    parser.add_argument(
        "--bind",
        default="127.0.0.1:7947",
        help="where node b listens, with --role b (default: %(default)s)",
    )
    parser.add_argument(
        "--peer",
        default="127.0.0.1:7947",
        help="where node b listens, for --role a (default: %(default)s)",
    )
    parser.add_argument(
        "--secret",
        default=DEFAULT_SECRET,
        help="the secret shared by both nodes (default: a demo string)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    try:
        sys.exit(trio.run(main, arguments))
    except KeyboardInterrupt:  # Ctrl-C outside node b's wait (node a, or while starting)
        sys.exit(130)
