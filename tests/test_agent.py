"""Agents on ScriptedProvider: the tool loop, memory, streaming, deadlines, budgets."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.agent import Agent, Budget, Prompt, Response
from tinyagents.errors import (
    ActorFailed,
    BudgetExceeded,
    RateLimited,
    ToolRoundsExceeded,
)
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, ToolCall, Usage
from tinyagents.memory import BufferMemory
from tinyagents.testing import ScriptedProvider
from tinyagents.tool import tool


def calls(*pairs: tuple[str, dict[str, Any]]) -> ChatResponse:
    """An assistant answer that calls tools."""
    return ChatResponse(
        Message.assistant(
            tool_calls=[ToolCall(f"call-{i}", name, args) for i, (name, args) in enumerate(pairs)]
        ),
        Usage(10, 5),
        "tool_calls",
    )


DEFAULT_USAGE = Usage(10, 5)


def text(answer: str, usage: Usage = DEFAULT_USAGE) -> ChatResponse:
    return ChatResponse(Message.assistant(answer), usage, "stop")


async def collect(receive: trio.MemoryReceiveChannel[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in receive]


async def test_a_plain_answer_with_system_prompt_and_usage() -> None:
    provider = ScriptedProvider([text("Hello there.", Usage(7, 3))])
    async with ta.ActorSystem("plain") as system:
        bot = await system.spawn(Agent("bot", provider, "m1", system="Be brief."), name="bot")
        response: Response = await bot.ask(Prompt("Hi"))
    assert response.text == "Hello there."
    assert response.usage == Usage(7, 3)
    assert response.agent == "bot"
    assert response.rounds == 1
    request = provider.requests[0]
    assert request.model == "m1"
    assert request.messages == (Message.system("Be brief."), Message.user("Hi"))


async def test_tool_calls_of_one_round_run_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    running: list[str] = []
    peak: list[int] = []

    @tool
    async def slow_lookup(city: str) -> str:
        """Look a city up."""
        running.append(city)
        peak.append(len(running))
        await trio.sleep(1.0)
        running.remove(city)
        return f"{city}: sunny"

    provider = ScriptedProvider(
        [
            calls(("slow_lookup", {"city": "Paris"}), ("slow_lookup", {"city": "Oslo"})),
            text("Both sunny."),
        ]
    )
    async with ta.ActorSystem("tools") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=[slow_lookup]))
        start = trio.current_time()
        response = await bot.ask(Prompt("Weather?"), timeout=10)
        assert trio.current_time() - start == pytest.approx(1.0)  # not 2 s: concurrent
    assert max(peak) == 2
    assert response.text == "Both sunny."
    assert response.rounds == 2
    assert response.tool_calls == 2
    assert response.usage == Usage(20, 10)
    second = provider.requests[1].messages
    results = [m for m in second if m.role == "tool"]
    assert [(m.tool_call_id, m.content) for m in results] == [
        ("call-0", "Paris: sunny"),
        ("call-1", "Oslo: sunny"),
    ]
    assert [spec.name for spec in provider.requests[0].tools] == ["slow_lookup"]


async def test_tool_errors_go_back_to_the_model() -> None:
    @tool
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    provider = ScriptedProvider(
        [
            calls(("divide", {"a": 1, "b": 0}), ("nope", {}), ("divide", {"a": "x"})),
            text("I could not."),
        ]
    )
    async with ta.ActorSystem("errors") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=[divide]))
        response = await bot.ask(Prompt("Divide"))
    assert response.text == "I could not."
    results = [m.content for m in provider.requests[1].messages if m.role == "tool"]
    assert len(results) == 3
    assert "ZeroDivisionError" in results[0] or "division" in results[0]
    assert "nope" in results[1]
    assert "divide" in results[2]


async def test_exceeding_max_tool_rounds_ends_the_ask_with_a_clear_error() -> None:
    @tool
    def again() -> str:
        """Do it again."""
        return "ok"

    provider = ScriptedProvider(default=calls(("again", {})))
    async with ta.ActorSystem("rounds") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=[again], max_tool_rounds=2))
        with pytest.raises(ToolRoundsExceeded, match="max_tool_rounds=2") as info:
            await bot.ask(Prompt("Loop"))
        assert info.value.agent == "bot"
        assert len(provider.requests) == 3  # the first call plus two rounds of tools
        assert bot.is_alive  # not a failure of the actor


async def test_provider_errors_reach_the_asker_unwrapped() -> None:
    provider = ScriptedProvider([RateLimited("scripted", "slow down", retry_after=1.0)])
    async with ta.ActorSystem("perr") as system:
        bot = await system.spawn(Agent("bot", provider, "m"))
        with pytest.raises(RateLimited):
            await bot.ask(Prompt("Hi"))
        provider.add(text("fine"))
        assert (await bot.ask(Prompt("Hi"))).text == "fine"


async def test_a_bug_is_a_supervised_failure() -> None:
    provider = ScriptedProvider([ValueError("bug in a provider")])
    async with ta.ActorSystem("bug") as system:
        bot = await system.spawn(Agent("bot", provider, "m"))
        with pytest.raises(ActorFailed) as info:
            await bot.ask(Prompt("Hi"))
        assert isinstance(info.value.error, ValueError)


async def test_memory_keeps_the_conversation_and_whole_turns() -> None:
    @tool
    def lookup(key: str) -> str:
        """Look up."""
        return key.upper()

    memory = BufferMemory(50)
    provider = ScriptedProvider(
        [calls(("lookup", {"key": "a"})), text("A it is."), text("You asked about a.")]
    )
    async with ta.ActorSystem("memory") as system:
        bot = await system.spawn(
            Agent("bot", provider, "m", system="sys", memory=memory, tools=[lookup])
        )
        await bot.ask(Prompt("first"))
        await bot.ask(Prompt("second"))
    roles = [m.role for m in provider.requests[2].messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    stored = await memory.messages()
    assert [m.role for m in stored] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]


async def test_a_failed_turn_is_not_remembered() -> None:
    memory = BufferMemory(50)
    provider = ScriptedProvider([RateLimited("scripted", "no"), text("ok")])
    async with ta.ActorSystem("forget") as system:
        bot = await system.spawn(Agent("bot", provider, "m", memory=memory))
        with pytest.raises(RateLimited):
            await bot.ask(Prompt("lost"))
        await bot.ask(Prompt("kept"))
    assert [m.content for m in await memory.messages()] == ["kept", "ok"]


async def test_streaming_reaches_the_caller_and_closes_once_on_success() -> None:
    provider = ScriptedProvider([text("Hello streaming world")], chunk_size=5)
    async with ta.ActorSystem("stream") as system:
        bot = await system.spawn(Agent("bot", provider, "m"))
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        response = await bot.ask(Prompt("Hi", stream=send))
        chunks = await collect(receive)  # ends: the channel was closed
    assert "".join(c.delta for c in chunks) == response.text
    assert chunks[-1].finish_reason == "stop"
    with pytest.raises(trio.ClosedResourceError):
        send.send_nowait(Chunk(delta="late"))


async def test_stream_closed_on_error_and_on_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    failing = ScriptedProvider([RateLimited("scripted", "no")])
    slow = ScriptedProvider([text("a b c d e f g h")], chunk_size=1, delay=1.0)
    async with ta.ActorSystem("closing") as system:
        bot = await system.spawn(Agent("bot", failing, "m"))
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        with pytest.raises(RateLimited):
            await bot.ask(Prompt("Hi", stream=send))
        assert await collect(receive) == []

        slow_bot = await system.spawn(Agent("slow", slow, "m"))
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        with pytest.raises(ta.errors.AskTimeout):
            await slow_bot.ask(Prompt("Hi", stream=send), timeout=2.5)
        await trio.testing.wait_all_tasks_blocked()
        got = await collect(receive)  # closed by the cancelled turn
        assert 1 <= len(got) <= 3


async def test_the_askers_deadline_bounds_the_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @tool
    async def forever() -> str:
        """Never returns."""
        await trio.sleep_forever()
        return "never"  # pragma: no cover

    provider = ScriptedProvider([calls(("forever", {}))])
    async with ta.ActorSystem("deadline") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=[forever]))
        start = trio.current_time()
        with pytest.raises(ta.errors.AskTimeout):
            await bot.ask(Prompt("Hi"), timeout=3.0)
        assert trio.current_time() == start + 3.0
        # the turn was cancelled at that same deadline, so the agent answers at once
        provider.add(text("next"))
        assert (await bot.ask(Prompt("again"), timeout=3.0)).text == "next"
        assert trio.current_time() == start + 3.0


async def test_a_shared_budget_stops_further_calls() -> None:
    budget = Budget(25)
    first = ScriptedProvider([text("one", Usage(10, 10)), text("two", Usage(10, 10))])
    second = ScriptedProvider([text("three", Usage(5, 5))])
    async with ta.ActorSystem("budget") as system:
        a = await system.spawn(Agent("a", first, "m", budget=budget))
        b = await system.spawn(Agent("b", second, "m", budget=budget))
        await a.ask(Prompt("x"))  # 20 spent
        await b.ask(Prompt("y"))  # 30 spent: the call was allowed, then charged
        with pytest.raises(BudgetExceeded) as info:
            await a.ask(Prompt("z"))
    assert info.value.spent == 30
    assert budget.remaining == 0
    assert len(first.requests) == 1


async def test_prompts_must_be_prompts() -> None:
    provider = ScriptedProvider([text("ok")])
    async with ta.ActorSystem("types") as system:
        bot = await system.spawn(Agent("bot", provider, "m"), supervisor=ta.Stop())
        assert (await bot.ask("a plain string works")).text == "ok"
        with pytest.raises(ActorFailed) as info:
            await bot.ask(42)
        assert isinstance(info.value.error, TypeError)


async def test_requests_carry_the_agents_settings() -> None:
    provider = ScriptedProvider([text("ok")])
    async with ta.ActorSystem("settings") as system:
        bot = await system.spawn(
            Agent("bot", provider, "m", temperature=0.2, max_tokens=99, options={"seed": 1})
        )
        await bot.ask(Prompt("x"))
    request: ChatRequest = provider.requests[0]
    assert (request.temperature, request.max_tokens, dict(request.options)) == (
        0.2,
        99,
        {"seed": 1},
    )
