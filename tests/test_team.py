"""Teams on ScriptedProvider agents: each pattern, nesting, deadlines, concurrency."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.errors import AskTimeout, RateLimited
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, ToolCall, Usage
from tinyagents.team import Broadcast, Debate, Hierarchy, Member, Pipeline, Router
from tinyagents.testing import ScriptedProvider
from tinyagents.tool import tool


def last_user(request: ChatRequest) -> str:
    return [m for m in request.messages if m.role == "user"][-1].content


ONE = Usage(1, 1)


def wrapping(name: str, usage: Usage = ONE) -> ScriptedProvider:
    """Answers name(<last user text>)."""
    return ScriptedProvider(
        default=lambda request: ChatResponse(
            Message.assistant(f"{name}({last_user(request)})"), usage, "stop"
        ),
        chunk_size=3,
    )


async def agent(system: ta.ActorSystem, name: str, provider: Any, **kw: Any) -> ta.ActorRef:
    return await system.spawn(Agent(name, provider, "m", **kw), name=name)


async def test_pipeline_feeds_each_answer_to_the_next_and_streams_the_last() -> None:
    async with ta.ActorSystem("pipeline") as system:
        stages = [await agent(system, n, wrapping(n)) for n in ("extract", "summary", "format")]
        team = await system.spawn(Pipeline(stages), name="team")
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        response: Response = await team.ask(Prompt("text", stream=send))
        chunks = [chunk async for chunk in receive]
    assert response.text == "format(summary(extract(text)))"
    assert response.usage == Usage(3, 3)
    assert response.agent == "pipeline"
    assert "".join(c.delta for c in chunks) == response.text  # only the last stage streamed


async def test_pipeline_stops_at_a_failing_stage_and_names_it() -> None:
    async with ta.ActorSystem("pfail") as system:
        ok = await agent(system, "ok", wrapping("ok"))
        bad = await agent(system, "bad", ScriptedProvider([RateLimited("s", "no")]))
        never = ScriptedProvider()
        last = await agent(system, "last", never)
        team = await system.spawn(Pipeline([ok, bad, last]))
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        with pytest.raises(RateLimited) as info:
            await team.ask(Prompt("x", stream=send))
        assert any("'bad'" in note for note in info.value.__notes__)
        assert [chunk async for chunk in receive] == []  # closed, once, by the team
        assert never.requests == []


async def test_broadcast_keeps_every_answer_and_each_failure() -> None:
    async with ta.ActorSystem("broadcast") as system:
        a = await agent(system, "a", wrapping("a"))
        b = await agent(system, "b", ScriptedProvider([RateLimited("s", "no")]))
        c = await agent(system, "c", wrapping("c", Usage(2, 2)))
        team = await system.spawn(Broadcast([a, b, c]))
        response: Response = await team.ask(Prompt("q"))
    assert [part.member for part in response.parts] == ["a", "b", "c"]
    assert [part.ok for part in response.parts] == [True, False, True]
    assert isinstance(response.parts[1].error, RateLimited)
    assert response.text == "[a] a(q)\n\n[c] c(q)"
    assert response.usage == Usage(3, 3)


async def test_broadcast_where_everyone_fails_raises() -> None:
    async with ta.ActorSystem("allfail") as system:
        a = await agent(system, "a", ScriptedProvider([RateLimited("s", "no")]))
        team = await system.spawn(Broadcast([a]))
        with pytest.raises(RateLimited):
            await team.ask(Prompt("q"))


async def test_router_by_function() -> None:
    async with ta.ActorSystem("route") as system:
        math_agent = await agent(system, "math", wrapping("math"))
        chat = await agent(system, "chat", wrapping("chat"))
        team = await system.spawn(
            Router([math_agent, chat], route=lambda text: "math" if "+" in text else "chat")
        )
        first = await team.ask(Prompt("1 + 1"))
        second = await team.ask(Prompt("hello"))
    assert (first.routed_to, first.text) == ("math", "math(1 + 1)")
    assert (second.routed_to, second.text) == ("chat", "chat(hello)")


async def test_router_by_classifier_with_a_fallback() -> None:
    answers = ScriptedProvider(["The best is: Billing.", "nobody fits", "tech"])
    async with ta.ActorSystem("classify") as system:
        billing = await agent(system, "billing", wrapping("billing"))
        tech = await agent(system, "tech", wrapping("tech"))
        classifier = await agent(system, "classifier", answers)
        team = await system.spawn(
            Router(
                [Member("billing", billing, "invoices"), Member("tech", tech, "bugs")],
                classifier=classifier,
                fallback="tech",
            )
        )
        picks = [(await team.ask(Prompt(q))).routed_to for q in ("invoice?", "hm", "crash")]
    assert picks == ["billing", "tech", "tech"]
    shown = last_user(answers.requests[0])
    assert "billing: invoices" in shown
    assert "tech: bugs" in shown
    with pytest.raises(ValueError, match="fallback"):
        Router([billing], classifier=classifier, fallback="nobody")
    with pytest.raises(ValueError, match="exactly one"):
        Router([billing])


async def test_hierarchy_delegates_concurrently_and_gets_answers_as_tool_results(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def slow(name: str) -> ScriptedProvider:
        return ScriptedProvider(
            default=lambda request: ChatResponse(
                Message.assistant(f"{name} did {last_user(request)}"), Usage(3, 3), "stop"
            ),
            delay=1.0,
        )

    supervisor = ScriptedProvider(
        [
            ChatResponse(
                Message.assistant(
                    tool_calls=[
                        ToolCall("c1", "delegate", {"worker": "research", "task": "find"}),
                        ToolCall("c2", "delegate", {"worker": "write", "task": "draft"}),
                        ToolCall("c3", "delegate", {"worker": "nobody", "task": "x"}),
                    ]
                ),
                Usage(5, 5),
                "tool_calls",
            ),
            ChatResponse(Message.assistant("Final report."), Usage(5, 5), "stop"),
        ]
    )
    async with ta.ActorSystem("hierarchy") as system:
        research = await agent(system, "research", slow("research"))
        write = await agent(system, "write", slow("write"))
        team = await system.spawn(
            Hierarchy(
                Agent("boss", supervisor, "m"),
                [Member("research", research, "finds facts"), Member("write", write, "writes")],
            )
        )
        start = trio.current_time()
        response: Response = await team.ask(Prompt("Report on X"), timeout=30)
        elapsed = trio.current_time() - start
    results = {
        m.tool_call_id: m.content for m in supervisor.requests[1].messages if m.role == "tool"
    }
    assert results["c1"] == "research did find"
    assert results["c2"] == "write did draft"
    assert "unknown worker" in results["c3"]
    assert response.text == "Final report."
    assert response.usage == Usage(16, 16)  # the boss's two calls and both workers
    assert elapsed == pytest.approx(1.0)  # the two delegations ran at once
    tools = supervisor.requests[0].tools
    assert [t.name for t in tools] == ["delegate"]
    assert tools[0].parameters["properties"]["worker"]["enum"] == ["research", "write"]


async def test_debate_alternates_then_the_arbiter_decides() -> None:
    async with ta.ActorSystem("debate") as system:
        pro = await agent(system, "pro", ScriptedProvider(["pro 1", "pro 2"]))
        con = await agent(system, "con", ScriptedProvider(["con 1", "con 2"]))
        judge_provider = ScriptedProvider(["pro wins"])
        judge = await agent(system, "judge", judge_provider)
        team = await system.spawn(Debate([pro, con], judge, rounds=2))
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        response: Response = await team.ask(Prompt("Is trio best?", stream=send))
        streamed = "".join([c.delta async for c in receive])
    assert response.transcript == (
        ("pro", "pro 1"),
        ("con", "con 1"),
        ("pro", "pro 2"),
        ("con", "con 2"),
        ("judge", "pro wins"),
    )
    assert streamed == "pro wins"
    shown = last_user(judge_provider.requests[0])
    assert "Topic: Is trio best?" in shown
    assert "con: con 2" in shown
    assert response.usage.input_tokens > 0


async def test_teams_nest_three_levels_deep() -> None:
    async with ta.ActorSystem("nested") as system:
        a = await agent(system, "a", wrapping("a"))
        b = await agent(system, "b", wrapping("b"))
        c = await agent(system, "c", wrapping("c"))
        d = await agent(system, "d", wrapping("d"))
        inner = await system.spawn(Pipeline([a, b]), name="inner")
        middle = await system.spawn(Broadcast([Member("inner", inner), Member("c", c)]))
        outer = await system.spawn(Pipeline([middle, d]))
        response: Response = await outer.ask(Prompt("x"))
    assert response.text == "d([inner] b(a(x))\n\n[c] c(x))"
    assert response.usage == Usage(4, 4)


async def test_the_deadline_reaches_the_members(autojump_clock: trio.testing.MockClock) -> None:
    @tool
    async def forever() -> str:
        """Never returns."""
        await trio.sleep_forever()
        return ""  # pragma: no cover

    stuck = ScriptedProvider(
        [
            ChatResponse(
                Message.assistant(tool_calls=[ToolCall("c", "forever", {})]),
                Usage(1, 1),
                "tool_calls",
            ),
            "free again",
        ]
    )
    async with ta.ActorSystem("deadline") as system:
        member = await agent(system, "member", stuck, tools=[forever])
        team = await system.spawn(Pipeline([member]))
        start = trio.current_time()
        with pytest.raises(AskTimeout):
            await team.ask(Prompt("x"), timeout=4.0)
        assert trio.current_time() == start + 4.0
        # the member's turn was bounded by the same deadline: it is free at once
        assert (await member.ask(Prompt("y"))).text == "free again"
        assert trio.current_time() == start + 4.0


async def test_a_team_serves_concurrent_prompts_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def slow(name: str) -> ScriptedProvider:
        return ScriptedProvider(default=f"{name} done", delay=2.0)

    async with ta.ActorSystem("concurrent") as system:
        left = await agent(system, "left", slow("left"))
        right = await agent(system, "right", slow("right"))
        team = await system.spawn(Router([left, right], route=lambda text: text))
        start = trio.current_time()
        results: dict[str, str] = {}

        async def ask(name: str) -> None:
            results[name] = (await team.ask(Prompt(name))).text

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "left")
            nursery.start_soon(ask, "right")
        assert trio.current_time() - start == pytest.approx(2.0)  # not 4: in parallel
    assert results == {"left": "left done", "right": "right done"}


def test_team_specs_validate_their_members() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        Pipeline([])
    with pytest.raises(TypeError, match="team member"):
        Pipeline(["not a ref"])  # type: ignore[list-item]
