"""Three agents in a Pipeline: extractor -> summariser -> formatter, on one provider.

Each stage's answer is the next stage's prompt; the team itself is an actor that
answers Prompt with Response, so it could be a member of a bigger team.

Where the model comes from: a local Ollama server if one answers (``OLLAMA_HOST``,
default ``http://localhost:11434``; model from ``OLLAMA_MODEL``, default ``llama3.2``);
else an offline stub server speaking Ollama's real wire format, whose scripted stages
behave predictably.

Run it with ``python examples/team-pipeline/main.py``.
"""

from __future__ import annotations

import os

import httpx
import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.llm.ollama import Ollama
from tinyagents.team import Pipeline
from tinyagents.testing import OllamaStub, RecordedRequest, StubReply

TEXT = (
    "The meeting moved to Thursday at 3 pm. Alice will bring the budget figures. "
    "Bob is out until Monday, so Carol presents the roadmap."
)
STAGES = {
    "extractor": "Extract the facts as a list, one per line.",
    "summariser": "Summarise the facts in one sentence.",
    "formatter": "Format the sentence as a short memo with a subject line.",
}


def scripted(request: RecordedRequest) -> StubReply:
    """Offline behaviour, chosen by the stage's system prompt."""
    messages = request.json.get("messages", []) if isinstance(request.json, dict) else []
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    text = messages[-1].get("content", "") if messages else ""
    if system == STAGES["extractor"]:
        return StubReply(text="\n".join(f"- {s.strip()}" for s in text.split(". ") if s))
    if system == STAGES["summariser"]:
        facts = [line[2:].rstrip(".") for line in text.splitlines()]
        return StubReply(text="; ".join(facts) + ".")
    return StubReply(text=f"Subject: Update\n\n{text}")


async def ollama_host() -> str | None:
    host = os.environ.get("OLLAMA_HOST", "http://localhost:11434")
    host = host if host.startswith("http") else f"http://{host}"
    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            return host if (await client.get(f"{host}/api/tags")).status_code == 200 else None
    except httpx.HTTPError:
        return None


async def run(base_url: str, model: str, where: str) -> None:
    async with Ollama(base_url=base_url) as provider, ActorSystem("pipeline") as system:
        stages = [
            await system.spawn(Agent(name, provider, model, system=prompt), name=name)
            for name, prompt in STAGES.items()
        ]
        team = await system.spawn(Pipeline(stages), name="team")
        print(f"(model: {model} via {where})\n")
        response: Response = await team.ask(Prompt(TEXT), timeout=180)
        print(response.text)
        print(f"\n[{response.agent}: {response.rounds} model calls, {response.usage}]")
        for step in response.steps:  # each stage's own response, in order
            print(f"  {step.agent}: {step.usage}")


async def main() -> None:
    host = await ollama_host()
    if host is not None:
        await run(host, os.environ.get("OLLAMA_MODEL", "llama3.2"), f"Ollama at {host}")
        return
    async with OllamaStub(responder=scripted) as stub:
        await run(stub.base_url, "stub-model", "an offline Ollama stub")


if __name__ == "__main__":
    trio.run(main)
