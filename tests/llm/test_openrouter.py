"""The OpenRouter adapter against OpenRouterStub: attribution, SSE comments, errors."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from tinyagents.errors import (
    AuthenticationError,
    BadRequest,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, ToolCall, ToolSpec, Usage
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.testing import Fault, FaultKind, StubReply
from tinyagents.testing._openai_stub import OpenRouterStub, _sse

KEY = "sk-or-v1-0123456789secret"
APP_URL = "https://example.org/my-agent"
APP_NAME = "My Agent"


@pytest.fixture
async def stub() -> AsyncIterator[OpenRouterStub]:
    async with OpenRouterStub() as server:
        yield server


@pytest.fixture
async def provider(stub: OpenRouterStub) -> AsyncIterator[OpenRouter]:
    async with OpenRouter(
        api_key=KEY, base_url=stub.base_url, app_url=APP_URL, app_name=APP_NAME
    ) as adapter:
        yield adapter


def ask(text: str = "hello there", **kwargs: Any) -> ChatRequest:
    return ChatRequest("openai/gpt-4o-mini", [Message.user(text)], **kwargs)


async def collect(provider: OpenRouter, request: ChatRequest) -> tuple[ChatResponse, list[Chunk]]:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    response = await provider.chat(request, stream=send)
    return response, [chunk async for chunk in receive]


async def failing(
    provider: OpenRouter, request: ChatRequest, *, streaming: bool = True
) -> tuple[ProviderError, list[Chunk]]:
    if not streaming:
        with pytest.raises(ProviderError) as caught:
            await provider.chat(request)
        return caught.value, []
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    with pytest.raises(ProviderError) as caught:
        await provider.chat(request, stream=send)
    return caught.value, [chunk async for chunk in receive]


async def test_non_stream_with_attribution(stub: OpenRouterStub, provider: OpenRouter) -> None:
    stub.script(StubReply(text="Hello!", usage=Usage(10, 2)))
    response = await provider.chat(ask(max_tokens=30, options={"models": ["a/b", "c/d"]}))
    assert response.message.content == "Hello!"
    assert response.usage == Usage(10, 2)  # usage.cost is ignored
    assert response.id is not None
    assert response.id.startswith("gen-")
    [request] = stub.requests
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert stub.attribution() == (APP_URL, APP_NAME)
    assert request.json == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_completion_tokens": 30,
        "models": ["a/b", "c/d"],
    }


async def test_no_attribution_unless_given(stub: OpenRouterStub) -> None:
    async with OpenRouter(api_key=KEY, base_url=stub.base_url, headers={"X-Extra": "1"}) as p:
        await p.chat(ask())
    assert stub.attribution() == (None, None)
    assert stub.requests[-1].headers["x-extra"] == "1"


async def test_stream_skips_comments_and_assembles_tool_calls(
    stub: OpenRouterStub, provider: OpenRouter
) -> None:
    calls = [ToolCall("", "search", {"query": "trio nurseries", "limit": 3})]
    stub.script(StubReply(text="Searching.", tool_calls=calls, chunk_size=3, usage=Usage(8, 5)))
    response, chunks = await collect(provider, ask(tools=[ToolSpec("search")]))
    assert "".join(chunk.delta for chunk in chunks) == "Searching."
    [tool_chunk] = [chunk for chunk in chunks if chunk.tool_call]
    assert tool_chunk.tool_call is not None
    assert tool_chunk.tool_call.name == "search"
    assert dict(tool_chunk.tool_call.arguments) == {"query": "trio nurseries", "limit": 3}
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(8, 5))
    assert response.message.tool_calls == (tool_chunk.tool_call,)
    body = stub.requests[-1].json
    assert body["stream_options"] == {"include_usage": True}
    assert stub.attribution() == (APP_URL, APP_NAME)


async def test_error_event_inside_the_stream(stub: OpenRouterStub, provider: OpenRouter) -> None:
    stub.script(StubReply(text="abcdefgh", fault=Fault.error_in_stream(1, "Provider disconnected")))
    error, chunks = await failing(provider, ask())
    assert type(error) is ServerError
    assert error.status == 200
    assert "Provider disconnected" in str(error)
    assert "502" in str(error)
    assert chunks == [Chunk(delta="abcd")]
    # the provider is usable afterwards
    assert (await provider.chat(ask("again"))).message.content == "You said: again"


@pytest.mark.parametrize(
    ("code", "expected", "quota"),
    [
        (400, BadRequest, False),
        (401, AuthenticationError, False),
        (402, RateLimited, True),
        (403, AuthenticationError, False),
        (408, ProviderTimeout, False),
        (429, RateLimited, False),
        (502, ServerError, False),
        (503, ServerError, False),
    ],
)
@pytest.mark.parametrize("streaming", [True, False])
async def test_reported_error_codes_are_typed(
    stub: OpenRouterStub,
    provider: OpenRouter,
    code: int,
    expected: type[ProviderError],
    quota: bool,
    streaming: bool,
) -> None:
    fault = Fault(FaultKind.ERROR_IN_STREAM, code, f"failure {code}", after=0)
    stub.script(StubReply(text="abc", fault=fault))
    error, chunks = await failing(provider, ask(), streaming=streaming)
    assert type(error) is expected
    assert error.status == 200
    assert f"failure {code}" in str(error)
    assert getattr(error, "quota_exhausted", False) is quota
    assert chunks == []


class _WordCodeStub(OpenRouterStub):
    """The in-stream error with a word code, as in OpenRouter's streaming docs."""

    def stream_error_frames(self, fault: Fault, chunk: dict[str, Any]) -> list[bytes]:
        event = {
            **chunk,
            "error": {"code": "server_error", "message": fault.message},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        }
        return [_sse(event)]


async def test_error_event_with_a_word_code() -> None:
    async with _WordCodeStub() as stub, OpenRouter(api_key=KEY, base_url=stub.base_url) as p:
        stub.script(StubReply(text="abcdef", fault=Fault.error_in_stream(1, "gone")))
        error, chunks = await failing(p, ask())
    assert type(error) is ServerError
    assert "gone" in str(error)
    assert chunks == [Chunk(delta="abcd")]


@pytest.mark.parametrize("streaming", [False, True])
async def test_402_without_retry_after_is_a_spent_quota(
    stub: OpenRouterStub, provider: OpenRouter, streaming: bool
) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
    error, chunks = await failing(provider, ask(), streaming=streaming)
    assert isinstance(error, RateLimited)
    assert error.status == 402
    assert error.quota_exhausted
    assert not error.retryable
    assert "Insufficient credits" in str(error)
    assert chunks == []


async def test_402_with_retry_after_is_retryable(
    stub: OpenRouterStub, provider: OpenRouter
) -> None:
    stub.script(StubReply(fault=Fault(FaultKind.STATUS, 402, "budget in flight", retry_after=0.5)))
    error, _ = await failing(provider, ask(), streaming=False)
    assert isinstance(error, RateLimited)
    assert error.status == 402
    assert not error.quota_exhausted
    assert error.retryable
    assert error.retry_after == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        (Fault.rate_limited(0.2), RateLimited, 429),
        (Fault.overloaded(), ServerError, 503),
        (Fault.server_error(), ServerError, 500),
        (Fault.status_code(401, "No auth credentials found"), AuthenticationError, 401),
        (Fault.status_code(400, "bad model"), BadRequest, 400),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_errors(
    stub: OpenRouterStub,
    provider: OpenRouter,
    fault: Fault,
    expected: type[ProviderError],
    status: int,
    streaming: bool,
) -> None:
    stub.script(StubReply(fault=fault))
    error, chunks = await failing(provider, ask(), streaming=streaming)
    assert type(error) is expected
    assert error.status == status
    assert fault.message in str(error)
    assert KEY not in str(error)
    assert chunks == []


async def test_malformed_and_truncated(stub: OpenRouterStub, provider: OpenRouter) -> None:
    stub.script(StubReply(text="x", fault=Fault.malformed()))
    error, _ = await failing(provider, ask(), streaming=False)
    assert isinstance(error, ProtocolError)
    stub.script(StubReply(text="x", fault=Fault.malformed()))
    error, _ = await failing(provider, ask())
    assert isinstance(error, ProtocolError)
    stub.script(StubReply(text="abcdefgh", fault=Fault.truncated(1)))
    error, chunks = await failing(provider, ask())
    assert isinstance(error, ProtocolError)
    assert chunks == [Chunk(delta="abcd")]


async def test_cancellation_then_reuse(stub: OpenRouterStub, provider: OpenRouter) -> None:
    stub.script(StubReply(text="token " * 100, chunk_size=6, delay=0.05))
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: provider.chat(ask(), stream=send))
            async for chunk in receive:
                assert chunk.delta == "token "
                scope.cancel()
    assert scope.cancelled_caught
    assert [chunk async for chunk in receive] == []
    response, chunks = await collect(provider, ask("more"))
    assert response.message.content == "You said: more"
    assert chunks[-1].finish_reason == "stop"


async def test_key_from_environment(stub: OpenRouterStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    async with OpenRouter(base_url=stub.base_url) as provider:
        assert KEY not in repr(provider)
        await provider.chat(ask())
    assert stub.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    monkeypatch.delenv("OPENROUTER_API_KEY")
    async with OpenRouter(base_url=stub.base_url) as provider:
        with pytest.raises(AuthenticationError, match="OPENROUTER_API_KEY"):
            await provider.chat(ask())


async def test_defaults() -> None:
    async with OpenRouter(api_key=KEY) as provider:
        assert provider.base_url == "https://openrouter.ai/api/v1"
        assert provider.name == "openrouter"
