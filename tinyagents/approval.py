"""Human approval of tool calls: a tool that acts on the world waits for a person.

::

    @tool(requires_approval=True)
    async def send_email(to: str, body: str) -> str:
        ...

    async def ask_a_person(request: ApprovalRequested) -> Decision:
        answer = await ui.confirm(f"{request.call.name}({dict(request.call.arguments)})?")
        return Approve() if answer else Deny("not now")

    bot = await system.spawn(
        Agent("bot", provider, model, tools=[send_email], approver=ask_a_person,
              approval_timeout=300, memory=SQLiteMemory("bot.db", "user-42")),
    )

When the model calls a tool marked ``requires_approval`` (a :func:`~tinyagents.tool.tool`
option; any :class:`~tinyagents.tool.Tool` with a true ``requires_approval`` attribute),
the agent's turn pauses on that call and emits an :class:`ApprovalRequested`:

* to the agent's ``approver`` (``async def (ApprovalRequested) -> Decision``), when it
  has one;
* otherwise to the asker's stream (``Prompt(stream=...)``), between the chunks; whoever
  reads the stream decides with :meth:`ApprovalRequested.approve` /
  :meth:`ApprovalRequested.deny`;
* otherwise nobody can be asked: the turn is suspended at once and the ask fails with
  :class:`~tinyagents.errors.TurnSuspended`.

The other calls of the same round run meanwhile. :class:`Approve` runs the call, with
the model's arguments or edited ones (``Approve(arguments={...})``; the conversation
then shows the edited call); :class:`Deny` does not run it, and the model reads
``"error: the call was not approved: <reason>"`` as its result and goes on. With the
agent's ``approval_timeout``, a call not decided in that many seconds is denied.

**Suspended turns.** From the first request until the turn ends, the turn's state (its
messages, the results of the calls already run, the decisions taken) is saved, after
every change, in the agent's memory when it is a :class:`~tinyagents.memory.TurnStore`
(:class:`~tinyagents.memory.SQLiteMemory` is one), or else on the agent's actor. If
the turn stops before it ends (the asker's deadline passed, the process was killed, or
nobody could decide), it stays suspended: the agent answers new prompts with
:class:`~tinyagents.errors.TurnSuspended`, and the message :class:`Resume` continues
it where it stopped, in this process or, with an ``SQLiteMemory``, in a new one. The
calls that completed are not run again; their saved results are used. (A call that
was running when the process died has no saved result and runs again.) A ``Resume``
may carry decisions by call id, so that a suspended turn can be decided without an
approver; the undecided calls are asked for again (``ApprovalRequested.resumed``).
The deadline of a resumed call still counts from when it was first asked (in wall
clock time, across restarts).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs
import trio

from ._validate import check_stream
from .llm._types import Chunk, Message, ToolCall, Usage
from .memory._sqlite import message_from_json, message_to_json

__all__ = [
    "ApprovalRequested",
    "Approve",
    "Approver",
    "Decision",
    "Deny",
    "Resume",
]


def _arguments(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"Approve(arguments=...) takes a mapping of arguments, not {value!r:.80}")
    return dict(value)


def _reason(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"a denial's reason must be a str, not {value!r:.80}")


@attrs.frozen
class Approve:
    """Run the call: with the model's arguments, or with ``arguments`` instead (an
    edit; they are checked against the tool's schema like the model's would be)."""

    arguments: Mapping[str, Any] | None = attrs.field(default=None, converter=_arguments)


@attrs.frozen
class Deny:
    """Do not run the call; the model reads ``reason`` in its result."""

    reason: str = attrs.field(default="denied", validator=_reason)


Decision = Approve | Deny
"""What a person decided about one tool call."""

Approver = Callable[["ApprovalRequested"], Awaitable[Decision]]
"""An agent's ``approver``: asked once per call that needs approval (concurrently for
the calls of one round); returns its :data:`Decision`. Raising, or returning anything
else, denies the call (the error in the reason)."""


def _check_decision(decision: object) -> Decision:
    if not isinstance(decision, Approve | Deny):
        raise TypeError(f"a decision is Approve(...) or Deny(...), not {decision!r:.80}")
    return decision


@attrs.define(eq=False)
class ApprovalRequested:
    """A tool call that waits for a person's decision.

    ``agent`` is the agent's name, ``call`` the model's :class:`~tinyagents.llm.ToolCall`
    (its ``id`` is the key of :attr:`Resume.decisions`), ``deadline`` the trio time
    at which the call is denied (``math.inf``: no ``approval_timeout``), and ``resumed``
    whether the turn was suspended and resumed since the call was first asked for.

    Whoever reads it from a stream decides with :meth:`approve`, :meth:`deny` or
    :meth:`decide`; an approver returns its decision instead.
    """

    agent: str
    call: ToolCall
    deadline: float = math.inf
    resumed: bool = False
    _decision: Decision | None = attrs.field(default=None, init=False, repr=False)
    _decided: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)

    @property
    def decision(self) -> Decision | None:
        """The decision taken, or ``None`` while the call waits."""
        return self._decision

    def decide(self, decision: Decision) -> None:
        """Take ``decision`` (never blocks). A decision after the first, or after the
        deadline denied the call, is ignored.

        Raises:
            TypeError: ``decision`` is not an :class:`Approve` or a :class:`Deny`.
        """
        decision = _check_decision(decision)
        if self._decision is None:
            self._decision = decision
            self._decided.set()

    def approve(self, arguments: Mapping[str, Any] | None = None) -> None:
        """Approve the call, with edited ``arguments`` if given (see :class:`Approve`)."""
        self.decide(Approve(arguments))

    def deny(self, reason: str = "denied") -> None:
        """Deny the call; the model reads ``reason``."""
        self.decide(Deny(reason))

    async def wait(self) -> Decision:
        """Wait until a decision is taken and return it."""
        await self._decided.wait()
        assert self._decision is not None
        return self._decision


def _decisions(value: Mapping[str, Decision] | None) -> Mapping[str, Decision]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"Resume(decisions=...) maps call ids to decisions, not {value!r:.80}")
    for key, decision in value.items():
        if not isinstance(key, str):
            raise TypeError(f"Resume(decisions=...) is keyed by call id (a str), not {key!r}")
        _check_decision(decision)
    return dict(value)


def _stream(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_stream(value, "Resume stream")


@attrs.frozen(eq=False)
class Resume:
    """Ask an agent to continue its suspended turn; the ask's answer is that turn's
    :class:`~tinyagents.agent.Response` (or its failure).

    ``decisions`` maps call ids (``ApprovalRequested.call.id``, or
    ``TurnSuspended.waiting[i].id``) to the decisions already taken; calls without one
    are asked for again. ``stream`` plays the part of ``Prompt.stream`` for the rest
    of the turn (and is closed exactly once when it ends). An agent with no suspended
    turn fails the ask with :class:`~tinyagents.errors.NoSuspendedTurn`.
    """

    decisions: Mapping[str, Decision] = attrs.field(factory=dict, converter=_decisions)
    stream: trio.abc.SendChannel[Chunk] | None = attrs.field(default=None, validator=_stream)


# -- the saved state of a suspended turn ------------------------------------------------

_wall_clock = time.time  # the clock of approval timeouts (tests replace it)


def _decision_to_json(decision: Decision) -> dict[str, Any]:
    if isinstance(decision, Approve):
        arguments = None if decision.arguments is None else dict(decision.arguments)
        return {"approve": True, "arguments": arguments}
    return {"approve": False, "reason": decision.reason}


def _decision_from_json(data: dict[str, Any]) -> Decision:
    if data["approve"]:
        return Approve(data.get("arguments"))
    return Deny(data.get("reason", "denied"))


@attrs.define
class _SavedTurn:
    """What an agent saves of a turn while tool calls wait for approval (private to
    the library: stored as the text of :meth:`dumps`)."""

    prompt: str
    messages: list[Message]  # the turn's new messages, up to this round's assistant one
    rounds: int = 0
    tool_calls: int = 0
    usage: Usage = attrs.field(factory=Usage)
    attempts: int = 0
    results: dict[str, Message] = attrs.field(factory=dict)  # call id -> its tool message
    decisions: dict[str, Decision] = attrs.field(factory=dict)  # taken, not yet run
    expires: dict[str, float] = attrs.field(factory=dict)  # call id -> wall clock time
    asked: list[str] = attrs.field(factory=list)  # call ids asked for so far

    @property
    def round(self) -> tuple[ToolCall, ...]:
        """The calls of the round under way (the last message's, until their results
        follow it); empty between rounds."""
        if not self.messages or self.messages[-1].role != "assistant":
            return ()
        return self.messages[-1].tool_calls

    @property
    def waiting(self) -> tuple[ToolCall, ...]:
        """The calls of the round under way that have no result yet."""
        return tuple(call for call in self.round if call.id not in self.results)

    def undecided(self, needs_approval: Callable[[ToolCall], bool]) -> tuple[ToolCall, ...]:
        """The waiting calls that need a decision still."""
        return tuple(
            call for call in self.waiting if needs_approval(call) and call.id not in self.decisions
        )

    def start_timeouts(self, call_ids: Iterable[str], timeout: float) -> list[str]:
        """Start the approval timeout of the calls ``call_ids`` whose timeout has not
        started yet; those calls' ids."""
        expires = _wall_clock() + timeout
        started = [call_id for call_id in call_ids if call_id not in self.expires]
        for call_id in started:
            self.expires[call_id] = expires
        return started

    def deadline(self, call_id: str) -> float:
        """The trio time at which the call ``call_id`` is denied (its timeout counts in
        wall clock time, so that it runs on across a restart)."""
        expires = self.expires.get(call_id)
        if expires is None:
            return math.inf
        return trio.current_time() + max(0.0, expires - _wall_clock())

    def dumps(self) -> str:
        usage = self.usage
        return json.dumps(
            {
                "version": 1,
                "prompt": self.prompt,
                "messages": [message_to_json(message) for message in self.messages],
                "rounds": self.rounds,
                "tool_calls": self.tool_calls,
                "usage": [usage.input_tokens, usage.output_tokens, usage.unreported],
                "attempts": self.attempts,
                "results": {key: message_to_json(m) for key, m in self.results.items()},
                "decisions": {key: _decision_to_json(d) for key, d in self.decisions.items()},
                "expires": self.expires,
                "asked": self.asked,
            },
            ensure_ascii=False,
        )

    @classmethod
    def loads(cls, text: str) -> _SavedTurn:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a suspended turn this version of tinyagents saved")
        input_tokens, output_tokens, unreported = data["usage"]
        return cls(
            prompt=data["prompt"],
            messages=[message_from_json(item) for item in data["messages"]],
            rounds=data["rounds"],
            tool_calls=data["tool_calls"],
            usage=Usage(input_tokens, output_tokens, unreported),
            attempts=data["attempts"],
            results={key: message_from_json(m) for key, m in data["results"].items()},
            decisions={key: _decision_from_json(d) for key, d in data["decisions"].items()},
            expires={key: float(value) for key, value in data["expires"].items()},
            asked=list(data["asked"]),
        )
