"""Agents on ScriptedProvider: the tool loop, memory, streaming, deadlines, budgets."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.agent import Agent, Budget, Prompt, Response, report_response, report_usage
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


async def test_the_response_is_named_after_the_spawned_actor() -> None:
    provider = ScriptedProvider(default=text("ok"))
    async with ta.ActorSystem("names") as system:
        named = await system.spawn(Agent("bot", provider, "m"), name="helper")
        unnamed = await system.spawn(Agent("bot", provider, "m"))
        assert (await named.ask(Prompt("x"))).agent == "helper"
        assert (await unnamed.ask(Prompt("x"))).agent == unnamed.name
    assert unnamed.name.startswith("$")


async def test_responses_reported_by_tools_are_steps_and_count_in_the_totals() -> None:
    async with ta.ActorSystem("report") as system:
        helper = await system.spawn(
            Agent("helper", ScriptedProvider(default=text("42", Usage(3, 2))), "m"),
            name="helper",
        )

        @tool
        async def ask_helper(question: str) -> str:
            """Ask the helper."""
            answer: Response = await helper.ask(Prompt(question))
            report_response(answer)
            report_usage(Usage(1, 1))  # tokens without a step
            return answer.text

        provider = ScriptedProvider([calls(("ask_helper", {"question": "?"})), text("It is 42.")])
        bot = await system.spawn(Agent("bot", provider, "m", tools=[ask_helper]), name="bot")
        response: Response = await bot.ask(Prompt("Ask the helper"))
    assert [(step.agent, step.text) for step in response.steps] == [("helper", "42")]
    # two calls of its own (10 + 5 each), the helper's one, and the tool's own report
    assert response.usage == Usage(20 + 3 + 1, 10 + 2 + 1)
    assert (response.rounds, response.tool_calls) == (3, 1)
    report_response(response)  # outside a turn: nothing happens
    with pytest.raises(TypeError, match="takes a Response"):
        report_response("nope")  # type: ignore[arg-type]


async def test_a_bug_in_a_tool_round_is_not_wrapped_in_a_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(registry: Any, call: ToolCall) -> Any:
        raise ValueError(f"bug running {call.name}")

    monkeypatch.setattr("tinyagents.agent.run_tool_call", broken)

    @tool
    def noop() -> str:
        """Do nothing."""
        return ""

    provider = ScriptedProvider([calls(("noop", {}), ("noop", {}))])
    async with ta.ActorSystem("toolbug") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=[noop]), supervisor=ta.Stop())
        with pytest.raises(ActorFailed) as info:
            await bot.ask(Prompt("go"))
    # two calls failed at once: that stays a group; one alone comes out as itself
    assert isinstance(info.value.error, ExceptionGroup)
    provider = ScriptedProvider([calls(("noop", {}))])
    async with ta.ActorSystem("toolbug1") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=[noop]), supervisor=ta.Stop())
        with pytest.raises(ActorFailed) as info:
            await bot.ask(Prompt("go"))
    assert isinstance(info.value.error, ValueError)
    assert str(info.value.error) == "bug running noop"


async def test_a_budget_charges_an_estimate_for_unreported_usage() -> None:
    budget = Budget(1_000)
    answer = "word " * 40  # 200 characters: about 50 tokens
    provider = ScriptedProvider(default=text(answer, Usage.unknown()))
    async with ta.ActorSystem("unreported") as system:
        bot = await system.spawn(Agent("bot", provider, "m", budget=budget, max_tokens=500))
        response = await bot.ask(Prompt("x" * 40))  # about 10 tokens
    assert response.usage == Usage.unknown()
    assert budget.estimated == 1
    assert budget.spent == 10 + 50  # not zero, and max_tokens is not taken as spent
    budget.charge(Usage(100, 0, unreported=1), estimate=30)  # a larger partial count wins
    assert budget.spent == 160


def test_agent_arguments_say_what_is_wrong() -> None:
    provider = ScriptedProvider()
    bad: list[tuple[Any, type[Exception], str]] = [
        (lambda: Agent("", provider, "m"), ValueError, "Agent id"),
        (lambda: Agent(None, provider, "m"), TypeError, "Agent id"),
        (lambda: Agent("a", "openai", "m"), TypeError, "provider must be a Provider"),
        (lambda: Agent("a", provider, ""), ValueError, "Agent model"),
        (lambda: Agent("a", provider, "m", system=1), TypeError, "system"),
        (lambda: Agent("a", provider, "m", memory=[]), TypeError, "memory"),
        (lambda: Agent("a", provider, "m", tools="abc"), TypeError, "tools"),
        (lambda: Agent("a", provider, "m", max_tool_rounds=-1), ValueError, "max_tool_rounds"),
        (lambda: Agent("a", provider, "m", max_tool_rounds=2.0), TypeError, "max_tool_rounds"),
        (lambda: Agent("a", provider, "m", temperature=-0.5), ValueError, "temperature"),
        (lambda: Agent("a", provider, "m", max_tokens=0), ValueError, "max_tokens"),
        (lambda: Agent("a", provider, "m", options=[("seed", 1)]), TypeError, "options"),
        (lambda: Agent("a", provider, "m", budget=100), TypeError, "budget"),
        (lambda: Prompt(42), TypeError, "Prompt text"),
        (lambda: Prompt("hi", stream=[]), TypeError, "stream"),
        (lambda: Budget(-1), ValueError, "Budget tokens"),
        (lambda: Budget(1.5), TypeError, "Budget tokens"),
    ]
    for make, error, match in bad:
        with pytest.raises(error, match=match):
            make()
    assert Agent("a", provider, "m", max_tool_rounds=0, temperature=0).max_tool_rounds == 0
