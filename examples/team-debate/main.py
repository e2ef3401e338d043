"""A Debate: two debaters alternate for two rounds, then an arbiter decides.

The debaters and the arbiter are agents on different providers (OpenAI and
Anthropic); the arbiter's verdict streams to the terminal, and the response carries
the whole transcript.

Where the models come from: the real services when ``OPENAI_API_KEY`` and
``ANTHROPIC_API_KEY`` are set; else offline stub servers speaking each real wire
format, with scripted arguments.

Run it with ``python examples/team-debate/main.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.llm import Chunk, Provider
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.openai import OpenAI
from tinyagents.team import Debate
from tinyagents.testing import AnthropicStub, OpenAIStub, RecordedRequest, StubReply

TOPIC = "Should a library raise errors from background tasks, or only log them?"
ARGUMENTS = {
    "optimist": [
        "Logging keeps the program running; one flaky task should not stop the others.",
        "Supervisors can restart a task quietly; users see a healthy system.",
    ],
    "skeptic": [
        "A logged error is a lost error: nobody reads logs until it is too late.",
        "Restarts are fine, but when they fail the error must reach the caller.",
    ],
}


def scripted(request: RecordedRequest) -> StubReply:
    body = request.json if isinstance(request.json, dict) else {}
    text = str(body.get("messages", [{}])[-1].get("content", ""))
    if isinstance(body.get("messages", [{}])[-1].get("content"), list):
        text = " ".join(b.get("text", "") for b in body["messages"][-1]["content"])
    for name, lines in ARGUMENTS.items():
        if f"You are {name}." in text:
            round_ = 0 if "round 1 " in text else 1
            return StubReply(text=lines[round_])
    return StubReply(
        text="Verdict: the skeptic wins. Supervise and restart, but never drop an error.",
        chunk_size=5,
        delay=0.01,
    )


@asynccontextmanager
async def providers() -> AsyncIterator[tuple[Provider, Provider, str, str]]:
    if os.environ.get("OPENAI_API_KEY") and os.environ.get("ANTHROPIC_API_KEY"):
        async with OpenAI() as openai, Anthropic() as anthropic:
            yield openai, anthropic, "gpt-4o-mini", "claude-3-5-haiku-latest"
        return
    async with (
        OpenAIStub(responder=scripted) as openai_stub,
        AnthropicStub(responder=scripted) as anthropic_stub,
        OpenAI(api_key="offline", base_url=openai_stub.base_url) as openai,
        Anthropic(api_key="offline", base_url=anthropic_stub.base_url) as anthropic,
    ):
        yield openai, anthropic, "stub-model", "stub-model"


async def main() -> None:
    async with providers() as (openai, anthropic, gpt, claude), ActorSystem("debate") as system:
        optimist = await system.spawn(Agent("optimist", openai, gpt), name="optimist")
        skeptic = await system.spawn(Agent("skeptic", anthropic, claude), name="skeptic")
        arbiter = await system.spawn(Agent("arbiter", anthropic, claude), name="arbiter")
        team = await system.spawn(Debate([optimist, skeptic], arbiter, rounds=2))
        print(f"Topic: {TOPIC}\n")
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        async with trio.open_nursery() as nursery:

            async def show() -> None:
                async for chunk in receive:
                    print(chunk.delta, end="", flush=True)

            nursery.start_soon(show)
            response: Response = await team.ask(Prompt(TOPIC, stream=send), timeout=300)
        print("\n\nTranscript:")
        for speaker, said in response.transcript[:-1]:
            print(f"  {speaker}: {said}")
        print(f"\n[{len(response.steps)} turns, {response.usage} in total]")


if __name__ == "__main__":
    trio.run(main)
