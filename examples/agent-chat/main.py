"""One agent with memory and a tool, streaming its answers.

The agent keeps the conversation in a BufferMemory and may call a ``word_count`` tool;
its answers stream to the terminal while each ask waits.

Where the model comes from: OpenAI when ``OPENAI_API_KEY`` is set; else a local Ollama
server if one answers (``OLLAMA_HOST``, default ``http://localhost:11434``; model from
``OLLAMA_MODEL``, default ``llama3.2``); else an offline stub server speaking Ollama's
real wire format, scripted to call the tool and use its result.

Run it with ``python examples/agent-chat/main.py``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt
from tinyagents.llm import Chunk, Provider, ToolCall
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.memory import BufferMemory
from tinyagents.testing import OllamaStub, RecordedRequest, StubReply
from tinyagents.tool import tool


@tool
def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: The text to count.
    """
    return len(text.split())


def scripted(request: RecordedRequest) -> StubReply:
    """Offline behaviour: call the tool for the first question, then use its result."""
    messages = request.json.get("messages", []) if isinstance(request.json, dict) else []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return StubReply(text=f"That sentence has {last.get('content')} words.", delay=0.01)
    question = str(last.get("content", ""))
    if "how many words" in question.lower():
        sentence = question.split(":", 1)[-1].strip()
        return StubReply(tool_calls=[ToolCall("", "word_count", {"text": sentence})])
    earlier = [m["content"] for m in messages if m.get("role") == "user"][:-1]
    return StubReply(text=f"Earlier you asked: {earlier[-1]!r}" if earlier else "Hello!")


async def ollama_answers(host: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            return (await client.get(f"{host}/api/tags")).status_code == 200
    except httpx.HTTPError:
        return False


@asynccontextmanager
async def choose_provider() -> AsyncIterator[tuple[Provider, str, str]]:
    host = os.environ.get("OLLAMA_HOST", "http://localhost:11434")
    if not host.startswith("http"):
        host = f"http://{host}"
    if os.environ.get("OPENAI_API_KEY"):
        async with OpenAI() as provider:
            yield provider, "gpt-4o-mini", "OpenAI"
    elif await ollama_answers(host):
        async with Ollama(base_url=host) as provider:
            yield provider, os.environ.get("OLLAMA_MODEL", "llama3.2"), f"Ollama at {host}"
    else:
        async with OllamaStub(responder=scripted) as stub, Ollama(base_url=stub.base_url) as p:
            yield p, "stub-model", "an offline Ollama stub"


async def main() -> None:
    questions = [
        "How many words are in this sentence: structured concurrency keeps tasks in order",
        "What did I ask you before?",
    ]
    async with choose_provider() as (provider, model, where), ActorSystem("chat") as system:
        bot = await system.spawn(
            Agent(
                "bot",
                provider,
                model,
                system="You are concise. Use tools when they help.",
                memory=BufferMemory(20),
                tools=[word_count],
            ),
            name="bot",
        )
        print(f"(model: {model} via {where})")
        for question in questions:
            print(f"\nyou> {question}\nbot> ", end="", flush=True)
            send, receive = trio.open_memory_channel[Chunk](math.inf)
            async with trio.open_nursery() as nursery:

                async def show(receive: trio.MemoryReceiveChannel[Chunk] = receive) -> None:
                    async for chunk in receive:
                        if chunk.tool_call is not None:
                            args = json.dumps(dict(chunk.tool_call.arguments))
                            print(f"[calls {chunk.tool_call.name}({args})] ", end="")
                        print(chunk.delta, end="", flush=True)

                nursery.start_soon(show)
                response = await bot.ask(Prompt(question, stream=send), timeout=120)
            made = f"{calls(response.rounds, 'model')}, {calls(response.tool_calls, 'tool')}"
            print(f"\n    ({made})")


def calls(count: int, kind: str) -> str:
    """``1 model call``, ``2 tool calls``."""
    return f"{count} {kind} call" + ("" if count == 1 else "s")


if __name__ == "__main__":
    trio.run(main)
