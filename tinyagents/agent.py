"""Agents: actors that answer a :class:`Prompt` with a :class:`Response` from an LLM.

::

    bot = await system.spawn(
        Agent("bot", provider, "gpt-4o-mini", system="Be brief.", tools=[get_weather]),
        name="bot",
    )
    response = await bot.ask(Prompt("Weather in Paris?"), timeout=30)
    print(response.text)

An agent owns its provider (any :class:`~tinyagents.llm.Provider`), so agents on
different services run side by side with no global state. It handles one prompt at a
time (its memory is one conversation), running the tool-call loop: the model's tool
calls of one round run concurrently, their results go back to the model, until it
answers without calling tools or ``max_tool_rounds`` is exceeded.

The asker's deadline (``ctx.deadline``, from the ask's timeout) bounds the whole turn.
A failure of the turn that the library knows (a :class:`~tinyagents.errors.ProviderError`,
:class:`~tinyagents.errors.ToolRoundsExceeded`, :class:`~tinyagents.errors.BudgetExceeded`)
ends the ask with that very error and does not restart the agent; anything else is a
failure of the actor, supervised as usual.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import trio

from .actor import Actor, Context
from .errors import BudgetExceeded, TinyAgentsError, ToolRoundsExceeded, TurnDeadlineExceeded
from .llm._forward import ForwardingChannel
from .llm._http import close_stream
from .llm._types import ChatRequest, Chunk, Message, Provider, ToolCall, Usage
from .memory import Memory
from .tool import Tool, ToolRegistry, run_tool_call

__all__ = [
    "Agent",
    "Budget",
    "MemberReply",
    "Prompt",
    "Response",
    "report_usage",
]

logger = logging.getLogger("tinyagents.agent")

_turn_usage: contextvars.ContextVar[list[Usage] | None] = contextvars.ContextVar(
    "tinyagents_turn_usage", default=None
)


def report_usage(usage: Usage) -> None:
    """Add ``usage`` to the agent turn this code runs in (a tool that calls models —
    another agent, say — reports their tokens so that the turn's usage includes them).
    Outside an agent turn it does nothing."""
    tally = _turn_usage.get()
    if tally is not None:
        tally.append(usage)


@attrs.frozen(eq=False)
class Prompt:
    """Ask an agent (or a team) something.

    With ``stream``, the answer's chunks (text deltas, completed tool calls, and each
    model call's final chunk) are sent there while the ask waits; the channel is closed
    exactly once when the turn ends, however it ends.
    """

    text: str
    stream: trio.abc.SendChannel[Chunk] | None = None


@attrs.frozen
class MemberReply:
    """One member's part of a team's answer: its ``response``, or the ``error`` it
    failed with."""

    member: str
    response: Response | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the member answered."""
        return self.error is None


@attrs.frozen
class Response:
    """An agent's (or a team's) answer.

    ``usage`` sums every model call of the turn, including those of team members and of
    tools that report theirs. ``rounds`` counts model calls, ``tool_calls`` the tool
    calls run. Teams fill ``parts`` (Broadcast), ``transcript`` (Debate: (speaker,
    text) pairs) and ``routed_to`` (Router).
    """

    message: Message
    usage: Usage = attrs.field(factory=Usage)
    agent: str = ""
    rounds: int = 1
    tool_calls: int = 0
    parts: tuple[MemberReply, ...] = ()
    transcript: tuple[tuple[str, str], ...] = ()
    routed_to: str | None = None

    @property
    def text(self) -> str:
        """The answer's text."""
        return self.message.content


class Budget:
    """A token budget shared by any number of agents.

    Each model call is charged its reported usage; once ``spent`` reaches ``tokens``,
    further calls raise :class:`~tinyagents.errors.BudgetExceeded` before reaching the
    provider. (A call in flight when the budget runs out is still charged.)
    """

    __slots__ = ("spent", "tokens")

    def __init__(self, tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"a budget needs tokens >= 0, not {tokens}")
        self.tokens = tokens
        self.spent = 0

    def __repr__(self) -> str:
        return f"<Budget {self.spent}/{self.tokens} tokens spent>"

    @property
    def remaining(self) -> int:
        """Tokens left (never negative)."""
        return max(0, self.tokens - self.spent)

    def check(self, who: str) -> None:
        """Raise :class:`BudgetExceeded` if nothing is left."""
        if self.spent >= self.tokens:
            raise BudgetExceeded(who, self.tokens, self.spent)

    def charge(self, usage: Usage) -> None:
        """Count ``usage`` against the budget."""
        self.spent += usage.total_tokens


def _registry(value: ToolRegistry | Iterable[Any]) -> ToolRegistry:
    return value if isinstance(value, ToolRegistry) else ToolRegistry(value)


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value}")


@attrs.frozen(eq=False)
class Agent:
    """An LLM agent: an actor spec, spawned with ``system.spawn(Agent(...))``.

    **Parameters:**

    * ``id`` — names the agent in responses, logs and errors.
    * ``provider``, ``model`` — where and which model to ask.
    * ``system`` — the system prompt, sent first on every call.
    * ``memory`` — a :class:`~tinyagents.memory.Memory` keeping the conversation across
      prompts (``None``: every prompt stands alone). A turn is added to it only when it
      succeeds, whole (so a tool call is never stored without its results).
    * ``tools`` — a :class:`~tinyagents.tool.ToolRegistry` or an iterable of tools and
      plain functions.
    * ``max_tool_rounds`` — how many rounds of tool calls one turn may run; a model that
      still calls tools after that ends the turn with
      :class:`~tinyagents.errors.ToolRoundsExceeded`.
    * ``temperature``, ``max_tokens``, ``options`` — passed into every
      :class:`~tinyagents.llm.ChatRequest`.
    * ``budget`` — a shared :class:`Budget`.
    """

    id: str
    provider: Provider
    model: str
    system: str | None = None
    memory: Memory | None = None
    tools: ToolRegistry = attrs.field(factory=ToolRegistry, converter=_registry)
    max_tool_rounds: int = attrs.field(default=8, validator=_non_negative)
    temperature: float | None = None
    max_tokens: int | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    budget: Budget | None = None

    def create_actor(self) -> Actor:
        """A fresh agent actor (the spec is what ``spawn`` takes)."""
        return _AgentActor(self)

    def with_tools(self, *tools: Tool) -> Agent:
        """A copy of this spec with ``tools`` added."""
        registry = ToolRegistry([*self.tools, *tools])
        return attrs.evolve(self, tools=registry)


class _AgentActor(Actor):
    def __init__(self, spec: Agent) -> None:
        self.spec = spec

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, str):
            message = Prompt(message)
        if not isinstance(message, Prompt):
            raise TypeError(
                f"agent {self.spec.id!r} answers Prompt messages, not {type(message).__name__}"
            )
        try:
            return await run_turn(self.spec, message, ctx.deadline)
        except TinyAgentsError as error:
            if ctx.asked:
                ctx.detach_reply().fail(error)
            else:
                logger.warning("agent %s: a told prompt failed: %s", self.spec.id, error)
            return None


async def run_turn(spec: Agent, prompt: Prompt, deadline: float) -> Response:
    """One turn of ``spec`` on ``prompt``, bounded by ``deadline`` (trio time).

    Closes ``prompt.stream`` exactly once. Raises what the turn failed with;
    :class:`~tinyagents.errors.TurnDeadlineExceeded` when the deadline passed.
    """
    try:
        with trio.CancelScope(deadline=deadline) as scope:
            return await _turn(spec, prompt)
        assert scope.cancelled_caught
        raise TurnDeadlineExceeded(spec.id, deadline)
    finally:
        await close_stream(prompt.stream)


async def _turn(spec: Agent, prompt: Prompt) -> Response:
    tally: list[Usage] = []
    _turn_usage.set(tally)
    history = await spec.memory.messages() if spec.memory is not None else []
    user = Message.user(prompt.text)
    new: list[Message] = [user]
    base = [Message.system(spec.system)] if spec.system else []
    specs = spec.tools.specs()
    rounds = 0
    calls_run = 0
    usage = Usage()
    while True:
        if spec.budget is not None:
            spec.budget.check(spec.id)
        request = ChatRequest(
            model=spec.model,
            messages=[*base, *history, *new],
            tools=specs,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            options=spec.options,
        )
        forward = ForwardingChannel(prompt.stream) if prompt.stream is not None else None
        answer = await spec.provider.chat(request, stream=forward)
        rounds += 1
        usage = usage + answer.usage
        if spec.budget is not None:
            spec.budget.charge(answer.usage)
        new.append(answer.message)
        calls = answer.message.tool_calls
        if not calls:
            break
        if rounds > spec.max_tool_rounds:
            raise ToolRoundsExceeded(spec.id, spec.max_tool_rounds)
        new.extend(await _run_calls(spec.tools, calls))
        calls_run += len(calls)
    if spec.memory is not None:
        await spec.memory.append(*new)
    for extra in tally:
        usage = usage + extra
    return Response(new[-1], usage, spec.id, rounds, calls_run)


async def _run_calls(tools: ToolRegistry, calls: tuple[ToolCall, ...]) -> list[Message]:
    """Run one round's tool calls concurrently; their results in the calls' order."""
    results: list[Message | None] = [None] * len(calls)

    async def run(index: int, call: ToolCall) -> None:
        results[index] = (await run_tool_call(tools, call)).message

    async with trio.open_nursery() as nursery:
        for index, call in enumerate(calls):
            nursery.start_soon(run, index, call)
    return [result for result in results if result is not None]
