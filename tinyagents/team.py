"""Teams: actors that answer a Prompt by asking their members, and nest freely.

Every team speaks the same protocol as an agent: it takes a
:class:`~tinyagents.agent.Prompt` and answers with a :class:`~tinyagents.agent.Response`,
so a team can be a member of another team. Members are refs to agents or teams.

* :class:`Pipeline` — each member's answer is the next member's prompt.
* :class:`Broadcast` — every member at once; every answer (or failure) is kept.
* :class:`Router` — one member, picked by a function or by a classifier agent.
* :class:`Hierarchy` — a supervisor agent delegates to workers through a generated
  ``delegate`` tool; several delegations of one round run concurrently.
* :class:`Debate` — debaters take turns for n rounds, then an arbiter decides.

A team serves concurrent prompts concurrently, each in its own task under the team's
nursery (the team's mailbox never waits for a member). The asker's deadline
(``ctx.deadline``) bounds the whole answer and is passed down: every member is asked
with the time that remains. A member's failure ends the team's answer with that error
(a note names the member), except in Broadcast, where failures are reported per member.
The response describes the whole team: its ``agent`` is the name the team was spawned
under, ``usage``, ``rounds`` and ``tool_calls`` are summed over everything the members
did, and ``steps`` holds the members' responses in the order they happened (see
:class:`~tinyagents.agent.Response`). Only the member that produces the final answer
streams to ``prompt.stream``; the stream is closed exactly once.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from . import _tracing
from ._nursery import open_service_nursery
from ._validate import check_int
from .actor import Actor, ActorRef, Context
from .agent import Agent, MemberReply, Prompt, Response, report_response
from .errors import TinyAgentsError
from .llm._forward import ForwardingChannel
from .llm._http import close_stream
from .llm._types import Chunk, Message, ToolSpec, Usage

__all__ = [
    "Broadcast",
    "Debate",
    "DelegateTool",
    "Hierarchy",
    "Member",
    "Pipeline",
    "Router",
    "ask_member",
]

logger = logging.getLogger("tinyagents.team")


def _member_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"a team member's name must be a string, not {value!r:.80}")
    if not value:
        raise ValueError("a team member's name must not be empty")


def _member_ref(instance: object, attribute: attrs.Attribute[ActorRef], value: object) -> None:
    if not isinstance(value, ActorRef):
        raise TypeError(
            f"a team member's ref must be an ActorRef (what spawn returns), not {value!r:.80}"
        )


def _description(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"a team member's description must be a string, not {value!r:.80}")


@attrs.frozen
class Member:
    """A team member: its ``name``, the ``ref`` to ask, and a ``description`` (used by a
    Router's classifier and by a Hierarchy's delegate tool)."""

    name: str = attrs.field(validator=_member_name)
    ref: ActorRef = attrs.field(validator=_member_ref)
    description: str = attrs.field(default="", validator=_description)


MemberLike = ActorRef | Member | tuple[str, ActorRef] | tuple[str, ActorRef, str]


def _member(value: MemberLike) -> Member:
    if isinstance(value, Member):
        return value
    if isinstance(value, ActorRef):
        return Member(value.name, value)
    if isinstance(value, tuple) and len(value) in (2, 3):
        return Member(*value)
    raise TypeError(f"a team member is an ActorRef, a Member or a (name, ref) tuple: {value!r}")


def _members(values: Iterable[MemberLike] | Mapping[str, ActorRef]) -> tuple[Member, ...]:
    if isinstance(values, Mapping):
        members = tuple(Member(name, ref) for name, ref in values.items())
    elif isinstance(values, str | ActorRef | Member) or not isinstance(values, Iterable):
        raise TypeError(
            "team members are given as a list (of ActorRef, Member or (name, ref) tuples) "
            f"or a mapping of names to refs, not {values!r:.80}"
        )
    else:
        members = tuple(_member(value) for value in values)
    if not members:
        raise ValueError("a team needs at least one member")
    names = [member.name for member in members]
    if len(set(names)) != len(names):
        raise ValueError(f"team member names must be unique: {names}")
    return members


def _timeout() -> float | None:
    """The time left before the current deadline, for a member's ask."""
    deadline = trio.current_effective_deadline()
    if deadline == math.inf:
        return None
    return max(deadline - trio.current_time(), 1e-9)


async def ask_member(
    member: Member, text: str, stream: trio.abc.SendChannel[Chunk] | None = None
) -> Response:
    """Ask ``member`` with the time left before the current deadline.

    ``stream``, if given, receives the member's chunks but is not closed by it.
    Raises what the member's ask raised, with a note naming the member.
    """
    forward = ForwardingChannel(stream) if stream is not None else None
    try:
        response = await member.ref.ask(Prompt(text, forward), timeout=_timeout())
    except TinyAgentsError as error:
        error.add_note(f"from team member {member.name!r} ({member.ref.path})")
        raise
    if not isinstance(response, Response):
        raise TypeError(
            f"team member {member.name!r} answered a {type(response).__name__}, not a Response"
        )
    return response


def _combine(message: Message, steps: Sequence[Response], **fields: Any) -> Response:
    """A team's response: ``message``, with ``usage``, ``rounds`` and ``tool_calls``
    summed over ``steps`` (its ``agent`` is filled in by the team actor), and the
    ``output`` of the step whose message it is, if any."""
    usage = Usage()
    for step in steps:
        usage = usage + step.usage
    fields.setdefault(
        "output", next((step.output for step in reversed(steps) if step.message is message), None)
    )
    return Response(
        message,
        usage,
        rounds=sum(step.rounds for step in steps),
        tool_calls=sum(step.tool_calls for step in steps),
        steps=tuple(steps),
        **fields,
    )


def _team_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"a team's name must be a string, not {value!r:.80}")


class _TeamActor(Actor):
    """Serves each prompt in a task of its own, bounded by the asker's deadline; the
    response is named after the team's actor. While tracing is on, each prompt is an
    ``invoke_agent`` span, parent of the members' asks."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def receive(self, ctx: Context, message: Any) -> None:
        if isinstance(message, str):
            message = Prompt(message)
        if not isinstance(message, Prompt):
            raise TypeError(f"team {self.name!r} answers Prompt messages, not {message!r}")
        reply = ctx.detach_reply() if ctx.asked else None
        deadline = ctx.deadline
        prompt = message
        spawned_as = ctx.self.name

        async def serve() -> None:
            try:
                with (
                    trio.CancelScope(deadline=deadline),
                    _tracing.AgentTurn(spawned_as, prompt.text, agent_id=self.name) as turn,
                ):
                    try:
                        response = turn.done(await self.answer(prompt))
                    except Exception as error:
                        turn.failed(error)
                        if reply is not None:
                            reply.fail(error)
                        else:
                            logger.warning("team %s: a told prompt failed: %r", self.name, error)
                        if not isinstance(error, TinyAgentsError):
                            raise  # a bug: supervised as a failure of the team
                        return
                    if reply is not None:
                        reply.send(attrs.evolve(response, agent=spawned_as))
            finally:
                await close_stream(prompt.stream)

        ctx.start_soon(serve)

    async def answer(self, prompt: Prompt) -> Response:
        """Answer one prompt (in its own task); ``prompt.stream`` is closed by the caller."""
        raise NotImplementedError


# -- Pipeline ---------------------------------------------------------------------------


@attrs.frozen
class Pipeline:
    """Each member's answer becomes the next member's prompt; the last one's answer is
    the team's (and only the last member streams).

    The response's ``steps`` are the stages' responses, first to last; its ``usage``,
    ``rounds`` and ``tool_calls`` are their sums. ``name`` is used in log messages; the
    response is named after the team's actor.
    """

    members: tuple[Member, ...] = attrs.field(converter=_members)
    name: str = attrs.field(default="pipeline", validator=_team_name)

    def create_actor(self) -> Actor:
        """A fresh team actor (the spec is what ``spawn`` takes)."""
        return _PipelineActor(self)


class _PipelineActor(_TeamActor):
    def __init__(self, spec: Pipeline) -> None:
        super().__init__(spec.name)
        self.spec = spec

    async def answer(self, prompt: Prompt) -> Response:
        text = prompt.text
        steps: list[Response] = []
        last = len(self.spec.members) - 1
        for index, member in enumerate(self.spec.members):
            response = await ask_member(member, text, prompt.stream if index == last else None)
            steps.append(response)
            text = response.text
        return _combine(steps[-1].message, steps)


# -- Broadcast --------------------------------------------------------------------------


@attrs.frozen
class Broadcast:
    """Every member answers the same prompt, all at once; every answer is kept.

    The response's ``parts`` hold each member's reply or error, in member order, and
    its ``steps`` the responses of the members that answered, in member order (the
    totals are their sums); its message joins the answers as ``[name] text``
    paragraphs. If every member failed, the first failure is raised. A stream receives
    the joined text once all answered.
    """

    members: tuple[Member, ...] = attrs.field(converter=_members)
    name: str = attrs.field(default="broadcast", validator=_team_name)

    def create_actor(self) -> Actor:
        """A fresh team actor (the spec is what ``spawn`` takes)."""
        return _BroadcastActor(self)


class _BroadcastActor(_TeamActor):
    def __init__(self, spec: Broadcast) -> None:
        super().__init__(spec.name)
        self.spec = spec

    async def answer(self, prompt: Prompt) -> Response:
        members = self.spec.members
        parts: list[MemberReply] = [MemberReply(member.name) for member in members]

        async def one(index: int, member: Member) -> None:
            try:
                parts[index] = MemberReply(member.name, await ask_member(member, prompt.text))
            except TinyAgentsError as error:
                parts[index] = MemberReply(member.name, error=error)

        # an unexpected error of one member's task (a bug) leaves as itself
        async with open_service_nursery() as nursery:
            for index, member in enumerate(members):
                nursery.start_soon(one, index, member)
        answered = [(part.member, part.response) for part in parts if part.response is not None]
        if not answered:
            first = parts[0].error
            assert first is not None
            raise first
        text = "\n\n".join(f"[{member}] {response.text}" for member, response in answered)
        response = _combine(
            Message.assistant(text), [response for _, response in answered], parts=tuple(parts)
        )
        if prompt.stream is not None:
            await prompt.stream.send(Chunk(delta=text))
            await prompt.stream.send(Chunk(finish_reason="stop", usage=response.usage))
        return response


# -- Router -----------------------------------------------------------------------------


def _pick(answer: str, names: Sequence[str]) -> str | None:
    """The member named by a classifier's answer: an exact name (ignoring case, spaces
    and punctuation around it), else the first name that appears as a word in it."""
    cleaned = answer.strip().strip("`'\".:!*[]()").strip().lower()
    for name in names:
        if cleaned == name.lower():
            return name
    found: list[tuple[int, str]] = []
    for name in names:
        match = re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", answer.lower())
        if match:
            found.append((match.start(), name))
    return min(found)[1] if found else None


def _route(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            f"Router route must be a function from the prompt's text to a member name, "
            f"not {value!r:.80}"
        )


def _classifier(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, ActorRef):
        raise TypeError(f"Router classifier must be an ActorRef of an agent, not {value!r:.80}")


def _fallback(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"Router fallback must be a member name, not {value!r:.80}")


@attrs.frozen
class Router:
    """Answer through one member, chosen per prompt.

    Give either ``route``, a function from the prompt's text to a member name, or
    ``classifier``, a ref to an agent that is shown the members' names and descriptions
    and answers with a name. When the choice is not a member, ``fallback`` (a member
    name; by default the first member) answers. ``routed_to`` in the response names the
    member that answered; its ``steps`` are the classifier's response (when a
    classifier chose) and the chosen member's, and its totals their sums.
    """

    members: tuple[Member, ...] = attrs.field(converter=_members)
    route: Callable[[str], str] | None = attrs.field(default=None, validator=_route)
    classifier: ActorRef | None = attrs.field(default=None, validator=_classifier)
    fallback: str | None = attrs.field(default=None, validator=_fallback)
    name: str = attrs.field(default="router", validator=_team_name)

    def __attrs_post_init__(self) -> None:
        if (self.route is None) == (self.classifier is None):
            raise ValueError("a Router needs exactly one of route= or classifier=")
        names = [member.name for member in self.members]
        if self.fallback is not None and self.fallback not in names:
            raise ValueError(f"the fallback {self.fallback!r} is not a member: {names}")

    def create_actor(self) -> Actor:
        """A fresh team actor (the spec is what ``spawn`` takes)."""
        return _RouterActor(self)


class _RouterActor(_TeamActor):
    def __init__(self, spec: Router) -> None:
        super().__init__(spec.name)
        self.spec = spec

    def classifier_prompt(self, text: str) -> str:
        lines = "\n".join(
            f"- {member.name}: {member.description or 'no description'}"
            for member in self.spec.members
        )
        return (
            "Choose the team member best suited to answer the request below.\n"
            f"Members:\n{lines}\n"
            "Answer with the member's name only.\n\n"
            f"Request: {text}"
        )

    async def answer(self, prompt: Prompt) -> Response:
        spec = self.spec
        names = [member.name for member in spec.members]
        steps: list[Response] = []
        if spec.route is not None:
            choice: str | None = spec.route(prompt.text)
        else:
            assert spec.classifier is not None
            classifier = Member("classifier", spec.classifier)
            verdict = await ask_member(classifier, self.classifier_prompt(prompt.text))
            steps.append(verdict)
            choice = _pick(verdict.text, names)
        if choice not in names:
            choice = spec.fallback or names[0]
        member = next(member for member in spec.members if member.name == choice)
        response = await ask_member(member, prompt.text, prompt.stream)
        steps.append(response)
        return _combine(response.message, steps, routed_to=member.name)


# -- Hierarchy --------------------------------------------------------------------------


class DelegateTool:
    """The ``delegate(worker, task)`` tool a Hierarchy gives its supervisor agent.

    It asks the named worker with the task (with the time left of the supervisor's
    turn) and returns the worker's answer as the tool result; the worker's response is
    reported to the supervisor's turn (:func:`~tinyagents.agent.report_response`), so
    it becomes one of that turn's steps and its usage counts in the turn's.
    """

    def __init__(self, workers: Sequence[Member]) -> None:
        self.workers = {member.name: member for member in workers}
        listing = "; ".join(
            f"{member.name}: {member.description or 'no description'}" for member in workers
        )
        self.spec = ToolSpec(
            name="delegate",
            description=(
                "Give a task to one of your workers and get its answer. "
                f"Workers: {listing}. Several delegations can run at once."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "worker": {
                        "type": "string",
                        "enum": list(self.workers),
                        "description": "The worker's name.",
                    },
                    "task": {
                        "type": "string",
                        "description": "What the worker should do, self-contained.",
                    },
                },
                "required": ["worker", "task"],
                "additionalProperties": False,
            },
        )

    async def call(self, arguments: Mapping[str, Any]) -> str:
        """Ask the worker; raises ``ValueError`` for an unknown worker (which the agent
        reports to the model as the tool's result)."""
        name = arguments.get("worker")
        task = arguments.get("task")
        if not isinstance(name, str) or name not in self.workers:
            raise ValueError(f"unknown worker {name!r}; workers are {sorted(self.workers)}")
        if not isinstance(task, str) or not task:
            raise ValueError("task must be a non-empty string")
        response = await ask_member(self.workers[name], task)
        report_response(response)
        return response.text


def _supervisor(instance: object, attribute: attrs.Attribute[Agent], value: object) -> None:
    if not isinstance(value, Agent):
        raise TypeError(
            f"Hierarchy supervisor must be an Agent spec (the team spawns it), not {value!r:.80}"
        )


@attrs.frozen
class Hierarchy:
    """A supervisor agent that delegates to workers.

    ``supervisor`` is an :class:`~tinyagents.agent.Agent` spec: the team spawns it as its
    child (named ``supervisor``), adding a generated ``delegate(worker, task)`` tool that
    knows the workers (by name and description). Several delegations in one round run
    concurrently (the agent's tool calls do); the workers' answers come back as tool
    results; the supervisor's final answer is the team's. The response has one step,
    the supervisor's turn, whose steps are the workers' responses; the totals include
    the workers'.
    """

    supervisor: Agent = attrs.field(validator=_supervisor)
    workers: tuple[Member, ...] = attrs.field(converter=_members)
    name: str = attrs.field(default="hierarchy", validator=_team_name)

    def create_actor(self) -> Actor:
        """A fresh team actor (the spec is what ``spawn`` takes)."""
        return _HierarchyActor(self)


class _HierarchyActor(_TeamActor):
    def __init__(self, spec: Hierarchy) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self.supervisor: Member | None = None

    async def started(self, ctx: Context) -> None:
        agent = self.spec.supervisor.with_tools(DelegateTool(self.spec.workers))
        ref = await ctx.spawn(agent, name="supervisor")
        self.supervisor = Member(agent.id, ref)

    async def answer(self, prompt: Prompt) -> Response:
        assert self.supervisor is not None
        response = await ask_member(self.supervisor, prompt.text, prompt.stream)
        return _combine(response.message, [response])


# -- Debate -----------------------------------------------------------------------------


def _rounds(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_int(value, "Debate rounds (an int >= 1)", minimum=1)


@attrs.frozen
class Debate:
    """Debaters take turns for ``rounds`` rounds, then the arbiter decides.

    Each debater sees the topic and the transcript so far; the arbiter sees the whole
    transcript and streams its verdict. The response is the arbiter's answer, with the
    ``transcript`` of (speaker, text) pairs, the verdict last, and as ``steps`` every
    speech's response then the arbiter's (the totals are their sums).
    """

    debaters: tuple[Member, ...] = attrs.field(converter=_members)
    arbiter: Member = attrs.field(converter=_member)
    rounds: int = attrs.field(default=2, validator=_rounds)
    name: str = attrs.field(default="debate", validator=_team_name)

    def __attrs_post_init__(self) -> None:
        if len(self.debaters) < 2:
            raise ValueError("a Debate needs at least two debaters")

    def create_actor(self) -> Actor:
        """A fresh team actor (the spec is what ``spawn`` takes)."""
        return _DebateActor(self)


def _render(topic: str, transcript: Sequence[tuple[str, str]]) -> str:
    said = "\n\n".join(f"{speaker}: {text}" for speaker, text in transcript)
    return f"Topic: {topic}\n\nDebate so far:\n{said or '(nothing yet)'}"


class _DebateActor(_TeamActor):
    def __init__(self, spec: Debate) -> None:
        super().__init__(spec.name)
        self.spec = spec

    async def answer(self, prompt: Prompt) -> Response:
        spec = self.spec
        transcript: list[tuple[str, str]] = []
        steps: list[Response] = []
        for round_ in range(1, spec.rounds + 1):
            for debater in spec.debaters:
                text = (
                    f"{_render(prompt.text, transcript)}\n\n"
                    f"You are {debater.name}. Give your argument for round {round_} "
                    f"of {spec.rounds}, answering the others."
                )
                response = await ask_member(debater, text)
                steps.append(response)
                transcript.append((debater.name, response.text))
        verdict_prompt = (
            f"{_render(prompt.text, transcript)}\n\n"
            "You are the arbiter. Weigh the arguments and decide."
        )
        verdict = await ask_member(spec.arbiter, verdict_prompt, prompt.stream)
        steps.append(verdict)
        transcript.append((spec.arbiter.name, verdict.text))
        return _combine(verdict.message, steps, transcript=tuple(transcript))
