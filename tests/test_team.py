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
    assert response.agent == "team"  # the name it was spawned under, not the spec's default
    assert "".join(c.delta for c in chunks) == response.text  # only the last stage streamed


def totals(steps: tuple[Response, ...]) -> tuple[Usage, int, int]:
    """The usage, model calls and tool calls of ``steps`` together."""
    usage = sum((step.usage for step in steps), Usage())
    return usage, sum(step.rounds for step in steps), sum(step.tool_calls for step in steps)


async def test_a_pipeline_response_sums_every_stage_and_keeps_each_as_a_step() -> None:
    @tool
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    middle = ScriptedProvider(
        [
            ChatResponse(
                Message.assistant(tool_calls=[ToolCall("c1", "shout", {"text": "hi"})]),
                Usage(4, 2),
                "tool_calls",
            ),
            ChatResponse(Message.assistant("HI"), Usage(6, 1), "stop"),
        ]
    )
    async with ta.ActorSystem("psteps") as system:
        first = await agent(system, "first", wrapping("first", Usage(2, 2)))
        second = await agent(system, "second", middle, tools=[shout])
        third = await agent(system, "third", wrapping("third", Usage(3, 1)))
        team = await system.spawn(Pipeline([first, second, third]), name="stages")
        response: Response = await team.ask(Prompt("go"))
    assert response.agent == "stages"
    assert [step.agent for step in response.steps] == ["first", "second", "third"]
    assert [step.text for step in response.steps] == ["first(go)", "HI", "third(HI)"]
    assert [step.rounds for step in response.steps] == [1, 2, 1]
    assert response.steps[1].tool_calls == 1
    assert (response.usage, response.rounds, response.tool_calls) == (Usage(15, 6), 4, 1)
    assert (response.usage, response.rounds, response.tool_calls) == totals(response.steps)
    assert response.message == response.steps[-1].message


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
    # the members that answered, in member order; the failure is in parts only
    assert [step.agent for step in response.steps] == ["a", "c"]
    assert [step.text for step in response.steps] == ["a(q)", "c(q)"]
    assert response.parts[0].response is response.steps[0]
    assert (response.usage, response.rounds, response.tool_calls) == totals(response.steps)
    assert response.rounds == 2


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
    assert [step.agent for step in first.steps] == ["math"]
    assert (first.usage, first.rounds, first.tool_calls) == (ONE, 1, 0)


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
        responses = [await team.ask(Prompt(q)) for q in ("invoice?", "hm", "crash")]
    picks = [response.routed_to for response in responses]
    assert picks == ["billing", "tech", "tech"]
    first = responses[0]
    # the classifier's answer, then the chosen member's; the totals include both
    assert [step.agent for step in first.steps] == ["classifier", "billing"]
    assert first.steps[0].text == "The best is: Billing."
    assert first.rounds == 2
    assert (first.usage, first.rounds, first.tool_calls) == totals(first.steps)
    assert first.usage == first.steps[0].usage + ONE
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
    # one step, the supervisor's turn; the workers it delegated to are its steps
    (turn,) = response.steps
    assert turn.agent == "supervisor"
    assert turn.text == "Final report."
    assert sorted((step.agent, step.text) for step in turn.steps) == [
        ("research", "research did find"),
        ("write", "write did draft"),
    ]
    # two model calls of the boss and one of each worker; the boss ran three tool calls
    assert (response.usage, response.rounds, response.tool_calls) == (Usage(16, 16), 4, 3)
    assert (turn.usage, turn.rounds, turn.tool_calls) == (Usage(16, 16), 4, 3)
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
    # every speech, then the verdict
    assert [(step.agent, step.text) for step in response.steps] == list(response.transcript)
    assert response.message == response.steps[-1].message
    assert response.rounds == 5
    assert (response.usage, response.rounds, response.tool_calls) == totals(response.steps)
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
    assert response.rounds == 4
    middle_step, d_step = response.steps
    assert d_step.agent == "d"
    assert middle_step.agent == middle.name
    inner_step, c_step = middle_step.steps
    assert (inner_step.agent, c_step.agent) == ("inner", "c")
    assert [step.agent for step in inner_step.steps] == ["a", "b"]
    assert inner_step.text == "b(a(x))"
    for team_response in (response, middle_step, inner_step):
        assert (team_response.usage, team_response.rounds, team_response.tool_calls) == totals(
            team_response.steps
        )


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


async def test_unknown_usage_of_a_stage_marks_the_teams_total() -> None:
    silent = ScriptedProvider(default=ChatResponse(Message.assistant("?"), Usage.unknown()))
    async with ta.ActorSystem("unknown") as system:
        known = await agent(system, "known", wrapping("known", Usage(5, 2)))
        quiet = await agent(system, "quiet", silent)
        team = await system.spawn(Pipeline([known, quiet]), name="mixed")
        response: Response = await team.ask(Prompt("x"))
    assert response.steps[1].usage == Usage.unknown()
    assert response.usage == Usage(5, 2, unreported=1)
    assert not response.usage.known


class NotAnAgent(ta.Actor):
    """Answers prompts with a plain string: a bug a team must not hide in a group."""

    async def receive(self, ctx: ta.Context, message: Any) -> str:
        return "not a Response"


async def test_an_unexpected_error_in_a_broadcast_leaves_as_itself() -> None:
    async with ta.ActorSystem("bug") as system:
        fine = await agent(system, "fine", wrapping("fine"))
        odd = await system.spawn(NotAnAgent, name="odd")
        team = await system.spawn(Broadcast([fine, odd]), supervisor=ta.Stop())
        with pytest.raises(TypeError, match="answered a str, not a Response"):
            await team.ask(Prompt("q"))


async def test_team_specs_validate_their_members() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        Pipeline([])
    with pytest.raises(TypeError, match="team member"):
        Pipeline(["not a ref"])  # type: ignore[list-item]
    async with ta.ActorSystem("specs") as system:
        ref = await agent(system, "a", wrapping("a"))
        other = await agent(system, "b", wrapping("b"))
        bad: list[tuple[Any, type[Exception], str]] = [
            (lambda: Pipeline(ref), TypeError, "given as a list"),
            (lambda: Pipeline("ab"), TypeError, "given as a list"),
            (lambda: Pipeline([ref, ref]), ValueError, "unique"),
            (lambda: Pipeline([("a", "not a ref")]), TypeError, "must be an ActorRef"),
            (lambda: Pipeline([("", ref)]), ValueError, "name must not be empty"),
            (lambda: Pipeline([Member("a", ref, None)]), TypeError, "description"),
            (lambda: Pipeline([ref], name=3), TypeError, "team's name"),
            (lambda: Broadcast([]), ValueError, "at least one member"),
            (lambda: Router([ref], route="a"), TypeError, "route must be a function"),
            (lambda: Router([ref], classifier="bot"), TypeError, "classifier must be an"),
            (lambda: Router([ref], route=str, fallback=1), TypeError, "fallback"),
            (lambda: Hierarchy("boss", [ref]), TypeError, "supervisor must be an Agent"),
            (lambda: Hierarchy(Agent("boss", ScriptedProvider(), "m"), []), ValueError, "one"),
            (lambda: Debate([ref], other), ValueError, "two debaters"),
            (lambda: Debate([ref, other], "judge"), TypeError, "team member"),
            (lambda: Debate([ref, other], ref, rounds=0), ValueError, "rounds"),
            (lambda: Debate([ref, other], ref, rounds=1.5), TypeError, "rounds"),
        ]
        for make, error, match in bad:
            with pytest.raises(error, match=match):
                make()
        assert Pipeline({"first": ref, "second": other}).members[1].name == "second"
