"""An agent using the tools of an MCP server that the example starts itself.

``notes_server.py`` (next to this file) is a small MCP server over stdio. The example
starts it with ``MCPServer.stdio``, which negotiates the protocol, lists its tools and
keeps them in ``server.tools``; an agent gets them with ``Agent(tools=server.tools)``
and calls them like any other tool, and a failing tool goes back to the model as an
error result.

The model is a ScriptedProvider (offline, no API key): it is scripted to keep two
notes, then to list them, and to answer with what the tool returned. Every model call
and tool result is printed as it happens.

Run it with ``python examples/mcp-tools/main.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt
from tinyagents.llm import ChatRequest, ChatResponse, Message, ToolCall, Usage
from tinyagents.mcp import MCPServer
from tinyagents.testing import ScriptedProvider

SERVER = Path(__file__).with_name("notes_server.py")


def calls(*pairs: tuple[str, dict[str, str]]) -> ChatResponse:
    """An assistant answer calling tools."""
    tool_calls = [ToolCall(f"call-{i}", name, args) for i, (name, args) in enumerate(pairs)]
    return ChatResponse(Message.assistant(tool_calls=tool_calls), Usage(20, 10), "tool_calls")


def show(request: ChatRequest) -> None:
    """Print the tool results the model is about to read (those since its last answer)."""
    new: list[Message] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            break
        new.insert(0, message)
    for message in new:
        print(f"  tool {message.name}: {message.content!r}")


def answer(request: ChatRequest) -> str:
    show(request)
    listed = request.messages[-1].content
    return f"You have these notes:\n{listed}"


def keep_going(then: ChatResponse) -> Callable[[ChatRequest], ChatResponse]:
    def step(request: ChatRequest) -> ChatResponse:
        show(request)
        return then

    return step


async def main() -> None:
    provider = ScriptedProvider(
        [
            calls(
                ("notes_add_note", {"text": "buy oat milk"}),
                ("notes_add_note", {"text": "call Ada about the trio talk"}),
                ("notes_add_note", {"text": ""}),  # refused by the server: an error result
            ),
            keep_going(calls(("notes_list_notes", {}))),
            answer,
        ]
    )
    async with (
        MCPServer.stdio(sys.executable, SERVER, prefix="notes_", timeout=10) as notes,
        ActorSystem("mcp-tools") as system,
    ):
        print(f"connected to {notes.server_info.get('name')} (MCP {notes.protocol_version})")
        for tool in notes.tools:
            print(f"  tool {tool.spec.name}: {tool.spec.description}")
        bot = await system.spawn(Agent("assistant", provider, "scripted", tools=notes.tools))
        question = "Keep two notes for me, then show me my notes."
        print(f"\nask: {question}")
        response = await bot.ask(Prompt(question), timeout=30)
        print(f"\nanswer ({response.rounds} model calls, {response.tool_calls} tool calls):")
        print(response.text)
        print(f"\nthe server's log:\n{notes.stderr_tail()}")


if __name__ == "__main__":
    trio.run(main)
