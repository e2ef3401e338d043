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
import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any, cast

import attrs
import trio

from . import _tracing
from ._nursery import open_service_nursery
from ._output import OutputSpec
from ._validate import check_int, check_number, check_seconds, check_stream
from .actor import Actor, Context
from .approval import (
    ApprovalRequested,
    Approve,
    Approver,
    Decision,
    Deny,
    Resume,
    _check_decision,
    _SavedTurn,
)
from .errors import (
    BudgetExceeded,
    NoSuspendedTurn,
    OutputValidationError,
    TinyAgentsError,
    ToolRoundsExceeded,
    TurnDeadlineExceeded,
    TurnSuspended,
)
from .llm._forward import ForwardingChannel
from .llm._http import close_stream
from .llm._types import ChatRequest, ChatResponse, Chunk, Message, Provider, ToolCall, Usage
from .llm.middleware import estimate_tokens
from .memory import Memory, TurnStore
from .tool import Tool, ToolRegistry, run_tool_call

__all__ = [
    "Agent",
    "Budget",
    "MemberReply",
    "Prompt",
    "Response",
    "report_response",
    "report_usage",
]

logger = logging.getLogger("tinyagents.agent")


@attrs.define
class _Tally:
    """What the tools of one turn reported."""

    usage: list[Usage] = attrs.field(factory=list)
    steps: list[Response] = attrs.field(factory=list)


_turn_tally: contextvars.ContextVar[_Tally | None] = contextvars.ContextVar(
    "tinyagents_turn_tally", default=None
)


def report_usage(usage: Usage) -> None:
    """Add ``usage`` to the agent turn this code runs in (a tool that calls models
    itself reports their tokens so that the turn's usage includes them). Outside an
    agent turn it does nothing. A tool that asked an agent or a team should rather
    call :func:`report_response`, which also keeps that response as a step."""
    if not isinstance(usage, Usage):
        raise TypeError(f"report_usage takes a Usage, not {usage!r:.80}")
    tally = _turn_tally.get()
    if tally is not None:
        tally.usage.append(usage)


def report_response(response: Response) -> None:
    """Add an agent's or a team's ``response`` to the agent turn this code runs in:
    it becomes one of the turn's :attr:`Response.steps` (in the order reported), and
    its ``usage``, ``rounds`` and ``tool_calls`` count toward the turn's. A tool that
    asks other agents calls it (``Hierarchy``'s delegate tool does). Outside an agent
    turn it does nothing."""
    if not isinstance(response, Response):
        raise TypeError(f"report_response takes a Response, not {response!r:.80}")
    tally = _turn_tally.get()
    if tally is not None:
        tally.steps.append(response)


def _stream(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_stream(value, "Prompt stream")


def _text(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"{type(instance).__name__} {attribute.name} must be a string, not {value!r:.80}"
        )


@attrs.frozen(eq=False)
class Prompt:
    """Ask an agent (or a team) something.

    With ``stream``, the answer's chunks (text deltas, completed tool calls, and each
    model call's final chunk) are sent there while the ask waits; the channel is closed
    exactly once when the turn ends, however it ends.
    """

    text: str = attrs.field(validator=_text)
    stream: trio.abc.SendChannel[Chunk] | None = attrs.field(default=None, validator=_stream)


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


def _steps(value: Iterable[Response]) -> tuple[Response, ...]:
    return tuple(value)


@attrs.frozen
class Response:
    """An agent's (or a team's) answer, and an account of everything done to produce it.

    * ``message`` — the final assistant message; :attr:`text` is its content.
    * ``agent`` — the name the agent or team was spawned under (its actor's name,
      ``ref.name``; ``$1``-style for an actor spawned without a name).
    * ``usage``, ``rounds``, ``tool_calls`` — totals over everything the answer took:
      tokens (a :class:`~tinyagents.llm.Usage`, marked when some call did not report
      its usage), model calls, and tool calls run.
    * ``steps`` — the responses of the agents and teams that took part, in the order
      they happened, each a ``Response`` with its own steps (so nested teams form a
      tree). The totals are always consistent with them: a team's ``usage``,
      ``rounds`` and ``tool_calls`` are the sums over its steps; an agent's are its
      own model calls and tool calls plus the sums over its steps.

    What ``steps`` holds, by who answered:

    * an **agent**: the responses its tools reported with :func:`report_response`
      (for instance the workers a Hierarchy's supervisor delegated to), in the order
      they were reported; empty for most agents. Usage that tools reported with
      :func:`report_usage` counts in ``usage`` without a step.
    * **Pipeline**: each stage's response, first to last.
    * **Broadcast**: the response of each member that answered, in member order;
      ``parts`` also has one :class:`MemberReply` per member, failures included.
    * **Router**: the classifier's response (when a classifier chose), then the chosen
      member's; ``routed_to`` names the member.
    * **Hierarchy**: one step, the supervisor's turn, whose steps are the responses of
      the workers it delegated to (in the order they finished).
    * **Debate**: every speech in order, then the arbiter's decision; ``transcript``
      keeps the same turns as ``(member name, text)`` pairs.

    ``parts``, ``transcript`` and ``routed_to`` are empty (``None``) for the other
    kinds.

    ``output`` is the typed value of an agent with an ``output_type`` (its ``text`` the
    JSON it came from); ``None`` otherwise. A team's ``output`` is the ``output`` of
    the step whose text is its answer (a Pipeline's last stage, a Router's chosen
    member, a Debate's arbiter, a Hierarchy's supervisor), when that one has one.
    """

    message: Message
    usage: Usage = attrs.field(factory=Usage)
    agent: str = ""
    rounds: int = 1
    tool_calls: int = 0
    parts: tuple[MemberReply, ...] = ()
    transcript: tuple[tuple[str, str], ...] = ()
    routed_to: str | None = None
    steps: tuple[Response, ...] = attrs.field(default=(), converter=_steps)
    output: Any = None

    @property
    def text(self) -> str:
        """The answer's text."""
        return self.message.content


class Budget:
    """A token budget shared by any number of agents.

    Each model call is charged its reported usage; once ``spent`` reaches ``tokens``,
    further calls raise :class:`~tinyagents.errors.BudgetExceeded` before reaching the
    provider. (A call in flight when the budget runs out is still charged.)

    A call whose provider did not report its usage (``usage.known`` false) is charged
    an estimate instead, never nothing: the agent passes its estimate of the call
    (:func:`~tinyagents.llm.estimate_tokens` of the request without ``max_tokens``,
    plus the answer's characters / 4), and the charge is the larger of that and the
    tokens that were reported. ``estimated`` counts the calls charged that way, so a
    budget can tell how exact ``spent`` is.
    """

    __slots__ = ("estimated", "spent", "tokens")

    def __init__(self, tokens: int) -> None:
        self.tokens = check_int(tokens, "Budget tokens (an int >= 0)", minimum=0)
        self.spent = 0
        self.estimated = 0

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

    def charge(self, usage: Usage, *, estimate: int = 0) -> None:
        """Count ``usage`` against the budget: its ``total_tokens`` when it is known,
        else ``max(usage.total_tokens, estimate)`` (see the class docstring)."""
        if usage.known:
            self.spent += usage.total_tokens
        else:
            self.spent += max(usage.total_tokens, estimate)
            self.estimated += 1


def _registry(value: ToolRegistry | Iterable[Any]) -> ToolRegistry:
    if isinstance(value, ToolRegistry):
        return value
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(
            "Agent tools must be a ToolRegistry or an iterable of tools and functions, "
            f"not {value!r:.80}"
        )
    return ToolRegistry(value)


def _max_tool_rounds(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_int(value, "Agent max_tool_rounds (an int >= 0)", minimum=0)


def _agent_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Agent {attribute.name} must be a non-empty string, not {value!r:.80}")
    if not value:
        raise ValueError(f"Agent {attribute.name} must be a non-empty string")


def _provider(instance: object, attribute: attrs.Attribute[Provider], value: object) -> None:
    if not isinstance(value, Provider):
        raise TypeError(
            "Agent provider must be a Provider (an object with a name and an async "
            f"chat(request, *, stream=None)), not {value!r:.80}"
        )


def _system_prompt(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"Agent system must be None or a string, not {value!r:.80}")


def _memory(instance: object, attribute: attrs.Attribute[Memory | None], value: object) -> None:
    if value is not None and not isinstance(value, Memory):
        raise TypeError(
            f"Agent memory must be None or a Memory (append, messages, clear), not {value!r:.80}"
        )


def _temperature(instance: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        check_number(value, "Agent temperature (None or a number >= 0)", minimum=0.0)


def _max_tokens(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None:
        check_int(value, "Agent max_tokens (None or an int >= 1)", minimum=1)


def _options(
    instance: object, attribute: attrs.Attribute[Mapping[str, Any]], value: object
) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"Agent options must be a mapping, not {value!r:.80}")


def _output_retries(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_int(value, "Agent output_retries (an int >= 0)", minimum=0)


def _output_spec(agent: Agent) -> OutputSpec | None:
    if agent.output_type is None:
        return None
    spec = OutputSpec(agent.output_type)
    if spec.name in agent.tools:
        raise ValueError(
            f"Agent output_type is sent as {spec.name!r}, the name of one of its tools: "
            "rename the tool or the type"
        )
    return spec


def _approver(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            "Agent approver must be None or an async function of an ApprovalRequested "
            f"returning Approve(...) or Deny(...), not {value!r:.80}"
        )


def _approval_timeout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_seconds(value, "Agent approval_timeout (None or seconds > 0)", zero=False)


def _budget(instance: object, attribute: attrs.Attribute[Budget | None], value: object) -> None:
    if value is not None and not isinstance(value, Budget):
        raise TypeError(f"Agent budget must be None or a Budget, not {value!r:.80}")


@attrs.frozen(eq=False)
class Agent:
    """An LLM agent: an actor spec, spawned with ``system.spawn(Agent(...))``.

    **Parameters:**

    * ``id`` — names the agent in logs and errors (its responses carry the name it was
      spawned under, usually the same).
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
    * ``output_type`` — the type of the answer: an attrs class, a dataclass, a
      TypedDict, ``list[...]``, a scalar, a ``Literal`` or a union of those. Its JSON
      Schema goes to the provider (see :class:`~tinyagents.llm.OutputFormat` for how
      each takes it), the answer is checked against it and structured with cattrs into
      :attr:`Response.output`. An answer that does not fit is sent back to the model
      with what is wrong, up to ``output_retries`` times (default 2); then the turn
      fails with :class:`~tinyagents.errors.OutputValidationError`, which keeps the
      last answer's text.
    * ``approver``, ``approval_timeout`` — for tools made with
      ``requires_approval=True``: the async function asked to decide each such call
      (else the asker's stream is, see :mod:`tinyagents.approval`), and the seconds
      after which an undecided call is denied (``None``: no limit but the ask's).

    Each is checked here: a wrong type raises ``TypeError`` and a value out of range
    (an empty ``id``, a negative ``max_tool_rounds``) ``ValueError``, naming it.
    """

    id: str = attrs.field(validator=_agent_name)
    provider: Provider = attrs.field(validator=_provider)
    model: str = attrs.field(validator=_agent_name)
    system: str | None = attrs.field(default=None, validator=_system_prompt)
    memory: Memory | None = attrs.field(default=None, validator=_memory)
    tools: ToolRegistry = attrs.field(factory=ToolRegistry, converter=_registry)
    max_tool_rounds: int = attrs.field(default=8, validator=_max_tool_rounds)
    temperature: float | None = attrs.field(default=None, validator=_temperature)
    max_tokens: int | None = attrs.field(default=None, validator=_max_tokens)
    options: Mapping[str, Any] = attrs.field(factory=dict, validator=_options)
    budget: Budget | None = attrs.field(default=None, validator=_budget)
    output_type: Any = None
    output_retries: int = attrs.field(default=2, validator=_output_retries)
    approver: Approver | None = attrs.field(default=None, validator=_approver)
    approval_timeout: float | None = attrs.field(default=None, validator=_approval_timeout)
    _output: OutputSpec | None = attrs.field(
        init=False, default=attrs.Factory(_output_spec, takes_self=True), repr=False
    )

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
        self.suspended = _TurnKeeper(spec.memory)

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, str):
            message = Prompt(message)
        if not isinstance(message, Prompt | Resume):
            raise TypeError(
                f"agent {self.spec.id!r} answers Prompt (and Resume) messages, "
                f"not {type(message).__name__}"
            )
        try:
            return await run_turn(
                self.spec, message, ctx.deadline, name=ctx.self.name, suspended=self.suspended
            )
        except TinyAgentsError as error:
            if ctx.asked:
                ctx.detach_reply().fail(error)
            else:
                logger.warning("agent %s: a told prompt failed: %s", self.spec.id, error)
            return None


class _TurnKeeper:
    """Where an agent keeps its suspended turn: its memory when that is a
    :class:`~tinyagents.memory.TurnStore`, else here (on the actor)."""

    def __init__(self, memory: Memory | None) -> None:
        self.store = memory if isinstance(memory, TurnStore) else None
        self.text: str | None = None
        self.lock = trio.Lock()  # saves land in the order they were made

    async def load(self) -> _SavedTurn | None:
        text = await self.store.suspended_turn() if self.store is not None else self.text
        return None if text is None else _SavedTurn.loads(text)

    async def save(self, turn: _SavedTurn) -> None:
        async with self.lock:
            text = turn.dumps()
            if self.store is not None:
                await self.store.save_suspended_turn(text)
            else:
                self.text = text

    async def clear(self) -> None:
        async with self.lock:
            if self.store is not None:
                await self.store.clear_suspended_turn()
            self.text = None


def _requires_approval(tool: Tool | None) -> bool:
    return bool(getattr(tool, "requires_approval", False))


def _needs_approval(tools: ToolRegistry, call: ToolCall) -> bool:
    return _requires_approval(tools.get(call.name))


async def run_turn(
    spec: Agent,
    prompt: Prompt | Resume,
    deadline: float,
    *,
    name: str | None = None,
    suspended: _TurnKeeper | None = None,
) -> Response:
    """One turn of ``spec`` on ``prompt`` (or the continuation of its suspended turn,
    for a :class:`~tinyagents.approval.Resume`), bounded by ``deadline`` (trio time);
    the response's ``agent`` is ``name`` (by default the spec's ``id``).

    Closes ``prompt.stream`` exactly once. Raises what the turn failed with;
    :class:`~tinyagents.errors.TurnDeadlineExceeded` when the deadline passed,
    :class:`~tinyagents.errors.TurnSuspended` when it waits for decisions nobody can
    take. While tracing is on, the turn is an ``invoke_agent`` span, parent of its
    model calls' and tool calls' spans.
    """
    agent = spec.id if name is None else name
    keeper = suspended if suspended is not None else _TurnKeeper(spec.memory)
    try:
        with trio.CancelScope(deadline=deadline) as scope:
            saved = None
            if isinstance(prompt, Resume) or any(map(_requires_approval, spec.tools)):
                saved = await keeper.load()
            if isinstance(prompt, Resume):
                if saved is None:
                    raise NoSuspendedTurn(agent)
                text = saved.prompt
            elif saved is not None:
                waiting = saved.undecided(lambda call: _needs_approval(spec.tools, call))
                raise TurnSuspended(agent, waiting, "a new prompt came while a turn waits")
            else:
                text = prompt.text
            with _tracing.AgentTurn(
                agent,
                text,
                agent_id=spec.id,
                model=spec.model,
                provider=getattr(spec.provider, "gen_ai_provider", None),
            ) as turn:
                decisions = prompt.decisions if isinstance(prompt, Resume) else {}
                run = _Turn(spec, agent, text, prompt.stream, keeper, saved, decisions)
                return turn.done(await run.run())
        assert scope.cancelled_caught
        raise TurnDeadlineExceeded(spec.id, deadline)
    finally:
        await close_stream(prompt.stream)


def _estimate(request: ChatRequest, answer: ChatResponse) -> int:
    """A rough token count of one call: the request without its ``max_tokens`` plus
    the answer (what a budget charges for a call that reported no usage)."""
    asked = estimate_tokens(attrs.evolve(request, max_tokens=None))
    return asked + estimate_tokens(ChatRequest(request.model, [answer.message]))


class _Turn:
    """One turn's tool-call loop; its state is a :class:`_SavedTurn`, saved while
    calls wait for approval."""

    def __init__(
        self,
        spec: Agent,
        name: str,
        text: str,
        stream: trio.abc.SendChannel[Chunk] | None,
        keeper: _TurnKeeper,
        saved: _SavedTurn | None,
        decisions: Mapping[str, Decision],
    ) -> None:
        self.spec = spec
        self.name = name
        self.stream = stream
        self.keeper = keeper
        self.state = saved if saved is not None else _SavedTurn(text, [Message.user(text)])
        self.saving = saved is not None  # whether the state is kept (a call needed approval)
        self.asked_before = set(self.state.asked)
        self.deadlines: dict[str, float] = {}  # trio time, of timeouts started in this run
        waiting = {call.id for call in self.state.waiting}
        self.state.decisions.update(
            (key, decision) for key, decision in decisions.items() if key in waiting
        )

    async def save(self) -> None:
        self.saving = True
        await self.keeper.save(self.state)

    async def run(self) -> Response:
        try:
            response = await self._loop(self.state)
        except TurnSuspended:
            raise
        except TinyAgentsError:
            if self.saving:  # the turn ended: nothing is left to resume
                await self.keeper.clear()
            raise
        if self.saving:
            await self.keeper.clear()
        return response

    async def _loop(self, state: _SavedTurn) -> Response:
        spec = self.spec
        tally = _Tally()
        _turn_tally.set(tally)
        history = await spec.memory.messages() if spec.memory is not None else []
        base = [Message.system(spec.system)] if spec.system else []
        specs = spec.tools.specs()
        output = spec._output
        value: Any = None
        while True:
            calls = state.round  # a round under way when resumed
            if not calls:
                if spec.budget is not None:
                    spec.budget.check(spec.id)
                request = ChatRequest(
                    model=spec.model,
                    messages=[*base, *history, *state.messages],
                    tools=specs,
                    temperature=spec.temperature,
                    max_tokens=spec.max_tokens,
                    options=spec.options,
                    output=None if output is None else output.format,
                )
                forward = ForwardingChannel(self.stream) if self.stream is not None else None
                answer = await spec.provider.chat(request, stream=forward)
                state.rounds += 1
                state.usage = state.usage + answer.usage
                if spec.budget is not None:
                    estimate = 0 if answer.usage.known else _estimate(request, answer)
                    spec.budget.charge(answer.usage, estimate=estimate)
                state.messages.append(answer.message)
                calls = answer.message.tool_calls
                answer_call = None if output is None else output.answer_call(answer.message)
                if output is not None and (answer_call is not None or not calls):
                    state.attempts += 1
                    raw = answer.message.content
                    if answer_call is not None:
                        raw = _json(answer_call.arguments)
                    try:
                        value = output.parse(raw)
                    except ValueError as error:
                        if state.attempts > spec.output_retries:
                            raise OutputValidationError(
                                spec.id, raw, str(error), state.attempts
                            ) from None
                        state.messages.extend(_retry(calls, answer_call, str(error)))
                        continue
                    if answer_call is not None:  # the history keeps the answer as text
                        state.messages[-1] = Message.assistant(raw)
                    break
                if not calls:
                    break
                if state.rounds > spec.max_tool_rounds:
                    raise ToolRoundsExceeded(spec.id, spec.max_tool_rounds)
            await self._round(state, calls)
        if spec.memory is not None:
            await spec.memory.append(*state.messages)
        usage, rounds, calls_run = state.usage, state.rounds, state.tool_calls
        for extra in tally.usage:
            usage = usage + extra
        steps = tuple(tally.steps)
        for step in steps:
            usage = usage + step.usage
            rounds += step.rounds
            calls_run += step.tool_calls
        message = state.messages[-1]
        return Response(message, usage, self.name, rounds, calls_run, steps=steps, output=value)

    async def _round(self, state: _SavedTurn, calls: tuple[ToolCall, ...]) -> None:
        """Run this round's calls that have no result yet, concurrently (asking for
        the decisions those that need approval wait for), then add every result to
        the turn's messages in the calls' order.

        Raises:
            TurnSuspended: some call needs a decision and nobody can be asked; the
                others ran, and the state is saved.
        """
        spec = self.spec
        todo = [call for call in calls if call.id not in state.results]
        approval = {call.id for call in todo if _needs_approval(spec.tools, call)}
        unasked: list[ToolCall] = []
        if approval:
            timeout = spec.approval_timeout
            if timeout is not None:
                # kept as wall clock time for after a restart; as trio time here
                deadline = trio.current_time() + timeout
                for call_id in state.start_timeouts(approval, timeout):
                    self.deadlines[call_id] = deadline
            await self.save()

        async def run(call: ToolCall) -> None:
            decision = state.decisions.get(call.id) if call.id in approval else Approve()
            if decision is None:
                if spec.approver is None and self.stream is None:
                    unasked.append(call)
                    return
                decision = await self._ask(state, call)
                state.decisions[call.id] = decision
                await self.save()
            if isinstance(decision, Deny):
                result = Message.tool(call, f"error: the call was not approved: {decision.reason}")
            else:
                edited = call
                if decision.arguments is not None:
                    edited = attrs.evolve(call, arguments=decision.arguments)
                result = (await run_tool_call(spec.tools, edited)).message
            state.results[call.id] = result
            if self.saving:
                await self.save()

        async with open_service_nursery() as nursery:
            for call in todo:
                nursery.start_soon(run, call)
        if unasked:
            raise TurnSuspended(
                self.name,
                tuple(call for call in calls if call in unasked),
                "nobody to ask: the agent has no approver and the ask no stream",
            )
        edits = {
            key: decision.arguments
            for key, decision in state.decisions.items()
            if isinstance(decision, Approve) and decision.arguments is not None
        }
        if edits:  # the conversation shows the calls as they were run
            assistant = state.messages[-1]
            state.messages[-1] = attrs.evolve(
                assistant,
                tool_calls=tuple(
                    attrs.evolve(call, arguments=edits[call.id]) if call.id in edits else call
                    for call in assistant.tool_calls
                ),
            )
        state.messages.extend(state.results[call.id] for call in calls)
        state.tool_calls += len(calls)
        state.results.clear()
        state.decisions.clear()
        state.expires.clear()
        if self.saving:
            await self.save()

    async def _ask(self, state: _SavedTurn, call: ToolCall) -> Decision:
        """Ask the approver, or the stream's reader, to decide ``call``; a deny when the
        deadline passes first."""
        spec = self.spec
        deadline = self.deadlines.get(call.id)
        if deadline is None:
            deadline = state.deadline(call.id)
        request = ApprovalRequested(self.name, call, deadline, resumed=call.id in self.asked_before)
        if call.id not in state.asked:
            state.asked.append(call.id)
        with trio.move_on_at(request.deadline):
            if spec.approver is not None:
                try:
                    decision = _check_decision(await spec.approver(request))
                except Exception as error:  # the call is denied, the turn goes on
                    logger.warning("agent %s: the approver failed: %r", spec.id, error)
                    decision = Deny(f"the approver failed: {type(error).__name__}: {error}")
                request.decide(decision)
                return decision
            assert self.stream is not None
            await cast("trio.abc.SendChannel[Any]", self.stream).send(request)
            return await request.wait()
        timeout = spec.approval_timeout if spec.approval_timeout is not None else math.inf
        denial = Deny(f"no decision within the approval timeout ({timeout:g} s)")
        request.decide(denial)
        return denial


def _json(arguments: Mapping[str, Any]) -> str:
    return json.dumps(dict(arguments), ensure_ascii=False)


def _retry(
    calls: tuple[ToolCall, ...], answer_call: ToolCall | None, problems: str
) -> list[Message]:
    """What the model is told when its answer does not fit its output type."""
    feedback = (
        f"The answer does not match the required schema: {problems}. "
        "Answer again, with only JSON that matches the schema."
    )
    if answer_call is None:
        return [Message.user(feedback)]
    # every call of the message needs its result; only the answer was looked at
    return [
        Message.tool(call, feedback if call is answer_call else "not run: the answer came first")
        for call in calls
    ]
