"""Human approval of tool calls: approve, deny, edit, time out, suspend and resume
(across a restart with SQLiteMemory)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents import approval
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.approval import ApprovalRequested, Approve, Deny, Resume
from tinyagents.errors import AskTimeout, NoSuspendedTurn, TurnSuspended
from tinyagents.llm import ChatResponse, Chunk, Message, ToolCall, Usage
from tinyagents.memory import BufferMemory, SQLiteMemory
from tinyagents.testing import ScriptedProvider
from tinyagents.tool import tool


def calls(*pairs: tuple[str, dict[str, Any]]) -> ChatResponse:
    return ChatResponse(
        Message.assistant(
            tool_calls=[ToolCall(f"call-{i}", name, args) for i, (name, args) in enumerate(pairs)]
        ),
        Usage(10, 5),
        "tool_calls",
    )


def text(answer: str) -> ChatResponse:
    return ChatResponse(Message.assistant(answer), Usage(10, 5), "stop")


class World:
    """Tools with side effects that count how often they ran."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.looked_up: list[str] = []

        @tool(requires_approval=True)
        async def send_email(to: str, body: str) -> str:
            """Send an email."""
            self.sent.append((to, body))
            return f"sent to {to}"

        @tool
        async def lookup(name: str) -> str:
            """Look up an address."""
            self.looked_up.append(name)
            return f"{name}@example.org"

        self.tools = [send_email, lookup]


def tool_results(request: Any) -> dict[str, str]:
    return {m.tool_call_id: m.content for m in request.messages if m.role == "tool"}


def approve_all(seen: list[ApprovalRequested]) -> Any:
    async def approver(request: ApprovalRequested) -> approval.Decision:
        seen.append(request)
        return Approve()

    return approver


async def test_an_approved_call_runs_and_the_turn_goes_on() -> None:
    world = World()
    provider = ScriptedProvider(
        [calls(("send_email", {"to": "ann", "body": "hi"}), ("lookup", {"name": "bob"})), "done"]
    )
    seen: list[ApprovalRequested] = []
    async with ta.ActorSystem("approve") as system:
        bot = await system.spawn(
            Agent("bot", provider, "m", tools=world.tools, approver=approve_all(seen)), name="b1"
        )
        response: Response = await bot.ask(Prompt("mail ann"))
    assert response.text == "done"
    assert response.tool_calls == 2
    assert world.sent == [("ann", "hi")]
    assert world.looked_up == ["bob"]
    # only the call that needs approval was asked for
    assert [(r.agent, r.call.name, r.deadline, r.resumed) for r in seen] == [
        ("b1", "send_email", math.inf, False)
    ]
    assert isinstance(seen[0].decision, Approve)
    assert tool_results(provider.requests[1]) == {
        "call-0": "sent to ann",
        "call-1": "bob@example.org",
    }


async def test_a_denied_call_does_not_run_and_the_model_reads_why() -> None:
    world = World()
    provider = ScriptedProvider([calls(("send_email", {"to": "ann", "body": "hi"})), "ok"])

    async def approver(request: ApprovalRequested) -> approval.Decision:
        return Deny("ann is on holiday")

    async with ta.ActorSystem("deny") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools, approver=approver))
        assert (await bot.ask("mail ann")).text == "ok"
    assert world.sent == []
    assert tool_results(provider.requests[1]) == {
        "call-0": "error: the call was not approved: ann is on holiday"
    }


async def test_edited_arguments_run_and_the_conversation_shows_the_edit() -> None:
    world = World()
    provider = ScriptedProvider([calls(("send_email", {"to": "ann", "body": "hi"})), "ok"])
    memory = BufferMemory(20)

    async def approver(request: ApprovalRequested) -> approval.Decision:
        return Approve(arguments={**request.call.arguments, "body": "Hello Ann,"})

    async with ta.ActorSystem("edit") as system:
        bot = await system.spawn(
            Agent("bot", provider, "m", tools=world.tools, approver=approver, memory=memory)
        )
        await bot.ask("mail ann")
    assert world.sent == [("ann", "Hello Ann,")]
    kept = await memory.messages()
    assert kept[1].tool_calls[0].arguments == {"to": "ann", "body": "Hello Ann,"}
    assert kept[2] == Message("tool", "sent to ann", tool_call_id="call-0", name="send_email")


async def test_edited_arguments_are_checked_like_the_models() -> None:
    world = World()
    provider = ScriptedProvider([calls(("send_email", {"to": "ann", "body": "hi"})), "ok"])

    async def approver(request: ApprovalRequested) -> approval.Decision:
        return Approve(arguments={"to": "ann"})

    async with ta.ActorSystem("edit-bad") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools, approver=approver))
        await bot.ask("mail ann")
    assert world.sent == []
    assert "missing" in tool_results(provider.requests[1])["call-0"]


async def test_without_an_approver_the_askers_stream_decides() -> None:
    world = World()
    provider = ScriptedProvider(
        [calls(("send_email", {"to": "ann", "body": "hi"})), "sent it"], chunk_size=100
    )
    async with ta.ActorSystem("stream") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools))
        send, receive = trio.open_memory_channel[Any](0)
        items: list[Any] = []

        async def read() -> None:
            async with receive:
                async for item in receive:
                    items.append(item)
                    if isinstance(item, ApprovalRequested):
                        assert world.sent == []  # the call waits for this decision
                        item.approve()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            response = await bot.ask(Prompt("mail ann", stream=send))
    assert response.text == "sent it"
    assert world.sent == [("ann", "hi")]
    requests = [item for item in items if isinstance(item, ApprovalRequested)]
    assert [r.call.name for r in requests] == ["send_email"]
    # the request came after the first call's chunks and before the answer's
    position = items.index(requests[0])
    assert all(isinstance(item, Chunk) for item in items[:position] + items[position + 1 :])
    assert "".join(item.delta for item in items[position + 1 :]) == "sent it"


async def test_an_undecided_call_is_denied_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World()
    provider = ScriptedProvider([calls(("send_email", {"to": "ann", "body": "hi"})), "ok"])
    asked: list[float] = []

    async def slow_person(request: ApprovalRequested) -> approval.Decision:
        asked.append(trio.current_time())
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with ta.ActorSystem("timeout") as system:
        bot = await system.spawn(
            Agent(
                "bot", provider, "m", tools=world.tools, approver=slow_person, approval_timeout=30
            )
        )
        start = trio.current_time()
        assert (await bot.ask("mail ann", timeout=100)).text == "ok"
        assert trio.current_time() - start == pytest.approx(30)
    assert asked == [pytest.approx(start)]
    assert world.sent == []
    assert tool_results(provider.requests[1]) == {
        "call-0": "error: the call was not approved: no decision within the approval timeout (30 s)"
    }


async def test_an_approver_that_fails_or_answers_nonsense_denies() -> None:
    world = World()
    provider = ScriptedProvider(
        [
            calls(("send_email", {"to": "ann", "body": "a"})),
            calls(("send_email", {"to": "bob", "body": "b"})),
            "ok",
        ]
    )
    answers: list[Any] = [ValueError("no screen"), "yes"]

    async def approver(request: ApprovalRequested) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with ta.ActorSystem("broken") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools, approver=approver))
        assert (await bot.ask("mail", timeout=10)).text == "ok"
    assert world.sent == []
    assert tool_results(provider.requests[1])["call-0"] == (
        "error: the call was not approved: the approver failed: ValueError: no screen"
    )
    assert "Approve(...) or Deny(...)" in tool_results(provider.requests[2])["call-0"]


async def test_with_nobody_to_ask_the_turn_suspends_and_resumes_without_replay() -> None:
    world = World()
    provider = ScriptedProvider(
        [
            calls(("lookup", {"name": "ann"}), ("send_email", {"to": "ann", "body": "hi"})),
            text("done"),
        ]
    )
    memory = BufferMemory(20)
    async with ta.ActorSystem("suspend") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools, memory=memory))
        with pytest.raises(TurnSuspended) as info:
            await bot.ask("mail ann")
        assert [call.name for call in info.value.waiting] == ["send_email"]
        assert "nobody to ask" in str(info.value)
        assert world.looked_up == ["ann"]  # the call that needs no approval ran
        # a new prompt is refused while the turn waits; nothing is lost
        with pytest.raises(TurnSuspended) as again:
            await bot.ask("something else")
        assert [call.id for call in again.value.waiting] == ["call-1"]
        assert len(provider.requests) == 1
        assert await memory.messages() == []
        response = await bot.ask(Resume({"call-1": Approve()}))
        assert response.text == "done"
        assert response.tool_calls == 2
        assert response.rounds == 2
        assert response.usage == Usage(20, 10)
        # resumed where it stopped: lookup did not run again
        assert world.looked_up == ["ann"]
        assert world.sent == [("ann", "hi")]
        kept = await memory.messages()
        assert [m.role for m in kept] == ["user", "assistant", "tool", "tool", "assistant"]
        assert kept[0].content == "mail ann"
        with pytest.raises(NoSuspendedTurn):
            await bot.ask(Resume())
        # and the agent takes prompts again
        provider.add("hello")
        assert (await bot.ask("hi")).text == "hello"


async def test_resume_asks_again_for_the_calls_it_does_not_decide() -> None:
    world = World()
    provider = ScriptedProvider(
        [
            calls(
                ("send_email", {"to": "ann", "body": "1"}),
                ("send_email", {"to": "bob", "body": "2"}),
            ),
            "done",
        ]
    )
    async with ta.ActorSystem("partial") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools))
        with pytest.raises(TurnSuspended) as info:
            await bot.ask("mail both")
        assert [call.id for call in info.value.waiting] == ["call-0", "call-1"]
        send, receive = trio.open_memory_channel[Any](0)
        requests: list[ApprovalRequested] = []

        async def read() -> None:
            async with receive:
                async for item in receive:
                    if isinstance(item, ApprovalRequested):
                        requests.append(item)
                        item.approve()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            response = await bot.ask(Resume({"call-0": Deny("not ann")}, stream=send))
    assert response.text == "done"
    assert [(r.call.id, r.resumed) for r in requests] == [("call-1", False)]
    assert world.sent == [("bob", "2")]


async def saved_until(memory: SQLiteMemory, needle: str) -> None:
    """Wait until the suspended turn saved in ``memory`` contains ``needle``."""
    while needle not in (await memory.suspended_turn() or ""):
        await trio.lowlevel.checkpoint()


async def ask_until_timeout(
    clock: trio.testing.MockClock, bot: ta.ActorRef, prompt: Any, ready: Any
) -> None:
    """Ask ``bot`` with a 5 s timeout, wait for ``ready()``, then let the 5 s pass:
    the ask times out and the agent's turn is cancelled (as if the process died)."""
    async with trio.open_nursery() as nursery:

        async def ask() -> None:
            with pytest.raises(AskTimeout):
                await bot.ask(prompt, timeout=5)

        nursery.start_soon(ask)
        await ready()
        clock.jump(5)


async def test_a_stopped_turn_survives_a_restart_with_sqlite_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mock_clock: trio.testing.MockClock
) -> None:
    # a mock clock that only moves when told (SQLite works in threads)
    wall = [1_000_000.0]
    monkeypatch.setattr(approval, "_wall_clock", lambda: wall[0])
    database = tmp_path / "chats.db"
    world = World()
    first = ScriptedProvider(
        [calls(("lookup", {"name": "ann"}), ("send_email", {"to": "ann", "body": "hi"}))]
    )
    asked: list[ApprovalRequested] = []
    asked_event = trio.Event()

    async def away(request: ApprovalRequested) -> approval.Decision:
        asked.append(request)
        asked_event.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    # the first process: the person does not answer before the ask's deadline
    async with SQLiteMemory(database, "user-1") as memory, ta.ActorSystem("one") as system:
        bot = await system.spawn(
            Agent(
                "bot",
                first,
                "m",
                tools=world.tools,
                memory=memory,
                approver=away,
                approval_timeout=600,
            ),
            name="bot",
        )

        async def ready() -> None:
            await asked_event.wait()
            await saved_until(memory, "ann@example.org")  # lookup's result

        await ask_until_timeout(mock_clock, bot, "mail ann", ready)
    assert world.looked_up == ["ann"]
    assert world.sent == []
    assert [(r.call.id, r.resumed) for r in asked] == [("call-1", False)]

    # 100 s later, a new process with the same database resumes the turn
    wall[0] += 100
    second = ScriptedProvider(["mailed ann"])
    resumed: list[ApprovalRequested] = []
    async with SQLiteMemory(database, "user-1") as memory, ta.ActorSystem("two") as system:
        assert await memory.suspended_turn() is not None
        bot = await system.spawn(
            Agent(
                "bot",
                second,
                "m",
                tools=world.tools,
                memory=memory,
                approver=approve_all(resumed),
                approval_timeout=600,
            ),
            name="bot",
        )
        with pytest.raises(TurnSuspended):
            await bot.ask("another question")
        now = trio.current_time()
        response = await bot.ask(Resume(), timeout=10)
        assert response.text == "mailed ann"
        assert response.tool_calls == 2
        assert await memory.suspended_turn() is None
        kept = await memory.messages()
    # asked again, with what is left of its timeout
    assert [(r.call.id, r.resumed) for r in resumed] == [("call-1", True)]
    assert resumed[0].deadline == pytest.approx(now + 500)
    # nothing ran twice; the model saw both results in one conversation
    assert world.looked_up == ["ann"]
    assert world.sent == [("ann", "hi")]
    assert tool_results(second.requests[0]) == {
        "call-0": "ann@example.org",
        "call-1": "sent to ann",
    }
    assert [m.role for m in kept] == ["user", "assistant", "tool", "tool", "assistant"]


async def test_a_decided_call_is_not_asked_again_after_a_restart(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # approved, then the process died while the tool ran: the decision is kept, and
    # the call (which has no result) runs again without asking again
    database = tmp_path / "chats.db"
    started = trio.Event()

    @tool(requires_approval=True)
    async def slow_deploy(version: str) -> str:
        """Deploy a version."""
        started.set()
        await trio.sleep_forever()
        return "unreachable"

    provider = ScriptedProvider([calls(("slow_deploy", {"version": "1.2"}))])
    seen: list[ApprovalRequested] = []
    async with SQLiteMemory(database, "ops") as memory, ta.ActorSystem("one") as system:
        bot = await system.spawn(
            Agent(
                "ops", provider, "m", tools=[slow_deploy], memory=memory, approver=approve_all(seen)
            )
        )
        await ask_until_timeout(mock_clock, bot, "deploy 1.2", started.wait)
    assert started.is_set()
    assert len(seen) == 1

    ran: list[str] = []

    @tool(name="slow_deploy", requires_approval=True)
    async def fast_deploy(version: str) -> str:
        """Deploy a version."""
        ran.append(version)
        return "deployed"

    provider = ScriptedProvider(["deployed 1.2"])

    async def never(request: ApprovalRequested) -> approval.Decision:
        raise AssertionError("the call was decided before the restart")

    async with SQLiteMemory(database, "ops") as memory, ta.ActorSystem("two") as system:
        bot = await system.spawn(
            Agent("ops", provider, "m", tools=[fast_deploy], memory=memory, approver=never)
        )
        assert (await bot.ask(Resume(), timeout=10)).text == "deployed 1.2"
    assert ran == ["1.2"]


async def test_without_a_turn_store_the_suspended_turn_lives_on_the_actor() -> None:
    world = World()
    provider = ScriptedProvider([calls(("send_email", {"to": "ann", "body": "hi"})), "ok"])
    async with ta.ActorSystem("local") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools))
        with pytest.raises(TurnSuspended):
            await bot.ask("mail ann")
        assert (await bot.ask(Resume({"call-0": Deny("no")}))).text == "ok"
    assert world.sent == []


def test_decisions_and_options_are_checked() -> None:
    provider = ScriptedProvider([])
    with pytest.raises(TypeError, match="approver"):
        Agent("bot", provider, "m", approver=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="approval_timeout"):
        Agent("bot", provider, "m", approval_timeout=0)
    with pytest.raises(TypeError, match="requires_approval"):
        tool(name="t", requires_approval="yes")(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="mapping"):
        Approve(arguments=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason"):
        Deny(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a decision is"):
        Resume({"call-0": True})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="call id"):
        Resume({1: Approve()})  # type: ignore[dict-item]
    request = ApprovalRequested("bot", ToolCall("c", "t", {}))
    with pytest.raises(TypeError, match="Approve"):
        request.decide("yes")  # type: ignore[arg-type]
    request.deny("first")
    request.approve()  # a later decision is ignored
    assert request.decision == Deny("first")


async def test_a_stream_reader_that_never_decides_is_denied_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World()
    provider = ScriptedProvider([calls(("send_email", {"to": "ann", "body": "hi"})), "ok"])
    async with ta.ActorSystem("stream-timeout") as system:
        bot = await system.spawn(
            Agent("bot", provider, "m", tools=world.tools, approval_timeout=60)
        )
        send, receive = trio.open_memory_channel[Any](10)
        start = trio.current_time()
        assert (await bot.ask(Prompt("mail ann", stream=send), timeout=100)).text == "ok"
        assert trio.current_time() - start == 60
    requests = [item async for item in receive if isinstance(item, ApprovalRequested)]
    assert len(requests) == 1
    assert isinstance(requests[0].decision, Deny)
    assert "approval timeout (60 s)" in requests[0].decision.reason
    requests[0].approve()  # too late: ignored
    assert isinstance(requests[0].decision, Deny)
    assert world.sent == []


async def test_a_turn_that_fails_for_good_is_no_longer_suspended() -> None:
    world = World()
    provider = ScriptedProvider(
        [
            calls(("send_email", {"to": "ann", "body": "hi"})),
            ta.errors.Overloaded("scripted", "busy"),
        ]
    )
    async with ta.ActorSystem("fails") as system:
        bot = await system.spawn(Agent("bot", provider, "m", tools=world.tools))
        with pytest.raises(TurnSuspended):
            await bot.ask("mail ann")
        with pytest.raises(ta.errors.Overloaded):
            await bot.ask(Resume({"call-0": Approve()}))
        assert world.sent == [("ann", "hi")]
        with pytest.raises(NoSuspendedTurn):
            await bot.ask(Resume())
        provider.add("hello")
        assert (await bot.ask("hi")).text == "hello"
