"""End to end: the HTTP adapters against a real model (SmolLM2-135M-Instruct served by
llama.cpp's ``llama-server`` on 127.0.0.1).

Skipped unless ``TINYAGENTS_E2E=1``; ``nox -s e2e`` installs the model, builds the server
once (a few minutes, then cached) and runs them. With ``TINYAGENTS_E2E=1`` a missing
server or model FAILS the run rather than skipping it.

The 135M model writes text but does not make tool calls, so tools are not tested here
(the stub servers cover them).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import AsyncIterator, Callable, Iterator

import attrs
import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent
from tinyagents.llm._http import HTTPProvider
from tinyagents.llm._types import ChatRequest, ChatResponse, Chunk, Message
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.openai import OpenAI
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.testing._llama import LlamaServer, llama_server_binary, smollm2_model_path

pytestmark = pytest.mark.skipif(
    os.environ.get("TINYAGENTS_E2E") != "1",
    reason="end-to-end tests against a real local model: run them with `nox -s e2e` "
    "(or set TINYAGENTS_E2E=1)",
)

MODEL = "SmolLM2-135M-Instruct"
MAX_TOKENS = 32
CALL_TIMEOUT = 120.0  # a stuck server fails the test instead of hanging the run

ADAPTERS: dict[str, Callable[[LlamaServer], HTTPProvider]] = {
    "openai": lambda server: OpenAI(
        api_key="local", base_url=server.openai_base_url, call_timeout=CALL_TIMEOUT
    ),
    "anthropic": lambda server: Anthropic(
        api_key="local", base_url=server.anthropic_base_url, call_timeout=CALL_TIMEOUT
    ),
    "mistral": lambda server: Mistral(
        api_key="local", base_url=server.openai_base_url, call_timeout=CALL_TIMEOUT
    ),
    "openrouter": lambda server: OpenRouter(
        api_key="local", base_url=server.openai_base_url, call_timeout=CALL_TIMEOUT
    ),
}


@pytest.fixture(scope="session")
def server() -> Iterator[LlamaServer]:
    """One llama-server for the whole run (blocking start, so it can be session-scoped).

    Anything missing is an error of the run, never a skip: the tests were asked for."""
    try:
        binary = llama_server_binary()
        model = smollm2_model_path()
    except RuntimeError as exc:
        pytest.fail(f"TINYAGENTS_E2E=1 but the local model cannot be provided:\n{exc}")
    with LlamaServer(binary, model) as running:
        yield running


@pytest.fixture(params=sorted(ADAPTERS))
async def provider(
    request: pytest.FixtureRequest, server: LlamaServer
) -> AsyncIterator[HTTPProvider]:
    async with ADAPTERS[request.param](server) as adapter:
        yield adapter


def ask(
    text: str = "What is the capital of France? Answer in one sentence.",
    *,
    streamed_by: HTTPProvider | None = None,
) -> ChatRequest:
    """A short, deterministic request; ``streamed_by`` names the provider that will
    stream it."""
    options = {}
    if isinstance(streamed_by, Mistral):
        # The Mistral API sends usage at the end of a stream unasked and rejects
        # stream_options, so the adapter does not send it; llama-server only reports
        # streamed usage when asked, so ask through the options passthrough.
        options = {"stream_options": {"include_usage": True}}
    return ChatRequest(
        model=MODEL,
        messages=[Message.user(text)],
        max_tokens=MAX_TOKENS,
        temperature=0.0,
        options=options,
    )


def assert_answer(response: ChatResponse) -> None:
    """A complete text answer within the token budget, with usage."""
    assert response.message.role == "assistant"
    assert response.message.content.strip()
    assert response.message.tool_calls == ()
    assert response.finish_reason in ("stop", "length")
    assert response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= MAX_TOKENS
    if response.finish_reason == "length":
        assert response.usage.output_tokens == MAX_TOKENS


async def test_chat(provider: HTTPProvider) -> None:
    response = await provider.chat(ask())
    assert_answer(response)


async def test_stream(provider: HTTPProvider) -> None:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    response = await provider.chat(ask(streamed_by=provider), stream=send)
    chunks = [chunk async for chunk in receive]  # ends only because chat closed the channel

    assert_answer(response)
    texts = [chunk.delta for chunk in chunks if chunk.delta]
    assert len(texts) >= 2
    assert "".join(texts) == response.message.content
    final = chunks[-1]
    assert final.finish_reason == response.finish_reason
    assert final.usage == response.usage
    assert [chunk for chunk in chunks if chunk.finish_reason or chunk.usage] == [final]
    assert all(chunk.tool_call is None for chunk in chunks)


async def test_cancel_mid_stream_then_reuse(provider: HTTPProvider) -> None:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    first: Chunk | None = None
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(provider.chat, ask(streamed_by=provider), stream=send)
            )
            async for chunk in receive:
                if chunk.delta:
                    first = chunk
                    scope.cancel()
                    break
    assert scope.cancelled_caught
    assert first is not None
    with trio.fail_after(10):
        rest = [chunk async for chunk in receive]  # the cancelled chat closed the channel
    assert all(chunk.finish_reason is None for chunk in rest)

    response = await provider.chat(ask())  # the same provider still works
    assert_answer(response)


async def test_usage_counts_the_prompt(provider: HTTPProvider) -> None:
    """Usage is the server's own count: a longer prompt costs more input tokens, and the
    output never exceeds the requested budget (max_tokens reached the server)."""
    short = await provider.chat(ask("Say hello."))
    long = await provider.chat(
        ask("Say hello. " + "Please be brief and polite in your answer. " * 8)
    )
    assert_answer(short)
    assert_answer(long)
    assert long.usage.input_tokens > short.usage.input_tokens + 40


@attrs.frozen
class Capital:
    country: str
    city: str


@pytest.mark.parametrize("dialect", ["openai", "mistral", "openrouter"])
async def test_structured_output_under_the_json_schema_grammar(
    server: LlamaServer, dialect: str
) -> None:
    """llama-server turns ``response_format``'s schema into a grammar, so even the 135M
    model answers JSON of the schema, which the agent structures into the type."""
    async with ADAPTERS[dialect](server) as provider, ActorSystem("e2e") as system:
        agent = Agent(
            "geographer", provider, MODEL, output_type=Capital, max_tokens=64, temperature=0.0
        )
        ref = await system.spawn(agent)
        response = await ref.ask("What is the capital of France? Answer as JSON.", timeout=300)
    assert isinstance(response.output, Capital)
    assert response.output.country
    assert response.output.city
