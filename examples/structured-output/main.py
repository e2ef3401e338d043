"""Typed answers: an agent whose ``output_type`` is an attrs class.

Two agents extract the same ``Trip`` from a sentence: one on an OpenAI-dialect server,
which is sent the schema as ``response_format``, one on an Anthropic-dialect server,
which is made to call a tool named ``Trip``. Both servers are the local stubs of
``tinyagents.testing``, speaking the real wire formats, so the example runs offline.
Each is scripted to get it wrong once (a missing field, a number as text): the agent
sends the problems back to the model, and the second answer is structured into a
``Trip``.

Run it with::

    python examples/structured-output/main.py
"""

from __future__ import annotations

import json
from typing import Literal

import attrs
import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.openai import OpenAI
from tinyagents.testing import AnthropicStub, OpenAIStub, StubReply


@attrs.frozen
class Trip:
    """A journey someone plans.

    Args:
        origin: where it starts.
        destination: where it ends.
        nights: how many nights away.
        transport: how they travel.
    """

    origin: str
    destination: str
    nights: int
    transport: Literal["train", "plane", "car", "boat"] = "train"


SENTENCE = "Next week I take the train from Lyon to Rome and stay four nights."
WRONG = {"origin": "Lyon", "destination": "Rome", "nights": "four"}
RIGHT = {"origin": "Lyon", "destination": "Rome", "nights": 4, "transport": "train"}


async def extract(system: ActorSystem, agent: Agent, requests: list[object]) -> None:
    ref = await system.spawn(agent, name=agent.id)
    response = await ref.ask(Prompt(SENTENCE), timeout=30)
    assert isinstance(response, Response)
    print(f"{agent.id}: {response.output!r}")
    print(f"  {response.rounds} model calls, {len(requests)} requests to the server")


async def main() -> None:
    async with OpenAIStub() as openai_stub, AnthropicStub() as anthropic_stub:
        for stub in (openai_stub, anthropic_stub):
            stub.script(StubReply(text=json.dumps(WRONG)), StubReply(text=json.dumps(RIGHT)))
        async with (
            OpenAI(api_key="sk-local", base_url=openai_stub.base_url) as openai,
            Anthropic(api_key="sk-local", base_url=anthropic_stub.base_url) as anthropic,
            ActorSystem("structured-output") as system,
        ):
            gpt = Agent("gpt", openai, "gpt-4o-mini", output_type=Trip)
            claude = Agent("claude", anthropic, "claude-haiku", output_type=Trip)
            await extract(system, gpt, openai_stub.requests)
            first = openai_stub.requests[0].json["response_format"]
            print(f"  sent response_format {first['type']} named {first['json_schema']['name']!r}")
            retry = openai_stub.requests[1].json["messages"][-1]["content"]
            print(f"  told the model: {retry}")
            await extract(system, claude, anthropic_stub.requests)
            choice = anthropic_stub.requests[0].json["tool_choice"]
            print(f"  sent tool_choice {choice}")


if __name__ == "__main__":
    trio.run(main)
