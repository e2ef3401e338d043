"""The actor core's constructors refuse wrong arguments at once, naming the argument and
what was expected: TypeError for a wrong type, ValueError for a value out of range."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import tinyagents as ta
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.tool import tool

CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: ta.ActorSystem(""), ValueError, "non-empty name"),
    (lambda: ta.ActorSystem(shutdown_timeout="5"), TypeError, "shutdown_timeout must be a number"),
    (
        lambda: ta.ActorSystem(shutdown_timeout=-1),
        ValueError,
        "shutdown_timeout must be a number of seconds >= 0",
    ),
    (lambda: ta.ActorSystem(ask_timeout=None), TypeError, "ask_timeout must be a number"),
    (
        lambda: ta.ActorSystem(ask_timeout=0),
        ValueError,
        "ask_timeout must be a number of seconds > 0",
    ),
    (lambda: ta.ActorSystem(ask_timeout=math.nan), ValueError, "not NaN"),
    (lambda: ta.ActorSystem(rng=3), TypeError, "rng must be a random.Random"),
    (lambda: ta.Backoff(initial="1"), TypeError, "Backoff initial must be a number"),
    (lambda: ta.Backoff(maximum=math.inf), ValueError, "Backoff maximum must be finite"),
    (lambda: ta.Backoff(multiplier="x"), TypeError, "Backoff multiplier must be a number"),
    (lambda: ta.Backoff(jitter=None), TypeError, "Backoff jitter must be a number"),
    (
        lambda: ta.Backoff(reset_after=-2),
        ValueError,
        "Backoff reset_after must be a number of seconds >= 0",
    ),
    (lambda: ta.OneForOne(max_restarts="3"), TypeError, "max_restarts"),
    (lambda: ta.OneForOne(max_restarts=-1), ValueError, "max_restarts"),
    (lambda: ta.OneForOne(within="1m"), TypeError, "within"),
    (lambda: ta.AllForOne(backoff=1.0), TypeError, "backoff"),
    (lambda: ta.Bounded(3, overflow="drop_oldest"), TypeError, "overflow must be one of"),
    (
        lambda: tool(name="t", timeout=0)(lambda: None),
        ValueError,
        r"a tool's timeout \(None or seconds\) must be a number of seconds > 0",
    ),
    (lambda: tool(name="t", timeout="5s")(lambda: None), TypeError, "a tool's timeout"),
    (
        lambda: OpenAI(api_key="k", call_timeout=-1),
        ValueError,
        r"call_timeout \(None or seconds\) must be a number of seconds > 0",
    ),
    (lambda: Ollama(call_timeout="30"), TypeError, "call_timeout"),
]


@pytest.mark.parametrize(("make", "error", "problem"), CASES)
def test_wrong_arguments_are_refused_at_construction(
    make: Callable[[], Any], error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        make()


def test_right_arguments_are_kept() -> None:
    system = ta.ActorSystem("ok", shutdown_timeout=math.inf, ask_timeout=2)
    assert system.shutdown_timeout == math.inf
    assert system.ask_timeout == 2.0
    assert ta.Backoff(initial=0, maximum=3, reset_after=1).maximum == 3
    assert ta.OneForOne(max_restarts=None, within=None).within is None


@pytest.mark.parametrize("timeout", ["1", True, -1, 0, math.nan])
async def test_a_wrong_ask_timeout_is_refused(timeout: Any) -> None:
    class Echo(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            return message

    async with ta.ActorSystem() as system:
        ref = await system.spawn(Echo)
        with pytest.raises((TypeError, ValueError), match="ask timeout"):
            await ref.ask("x", timeout=timeout)
        assert await ref.ask("x", timeout=1) == "x"
