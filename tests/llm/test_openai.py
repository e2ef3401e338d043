"""The OpenAI adapter against OpenAIStub: request mapping, answers, streams, faults."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from tinyagents.errors import (
    AuthenticationError,
    BadRequest,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    RateLimited,
    ServerError,
)
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, ToolCall, ToolSpec, Usage
from tinyagents.llm.openai import OpenAI
from tinyagents.testing import Fault, StubReply
from tinyagents.testing._openai_stub import OpenAIStub, _sse

KEY = "sk-test-0123456789secret"
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")


@pytest.fixture
async def stub() -> AsyncIterator[OpenAIStub]:
    async with OpenAIStub() as server:
        yield server


@pytest.fixture
async def provider(stub: OpenAIStub) -> AsyncIterator[OpenAI]:
    async with OpenAI(api_key=KEY, base_url=stub.base_url) as adapter:
        yield adapter


def ask(text: str = "hello there", **kwargs: Any) -> ChatRequest:
    return ChatRequest("gpt-test", [Message.user(text)], **kwargs)


async def collect(provider: OpenAI, request: ChatRequest) -> tuple[ChatResponse, list[Chunk]]:
    """Stream ``request``; the chunks are read after ``chat`` returned, which only ends
    because the adapter closed the channel."""
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    response = await provider.chat(request, stream=send)
    return response, [chunk async for chunk in receive]


async def failing_stream(
    provider: OpenAI, request: ChatRequest
) -> tuple[ProviderError, list[Chunk]]:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    with pytest.raises(ProviderError) as caught:
        await provider.chat(request, stream=send)
    return caught.value, [chunk async for chunk in receive]  # ends: the channel is closed


async def failing(
    provider: OpenAI, request: ChatRequest, *, streaming: bool
) -> tuple[ProviderError, list[Chunk]]:
    """The error of a call, streamed or not (then no chunks)."""
    if streaming:
        return await failing_stream(provider, request)
    with pytest.raises(ProviderError) as caught:
        await provider.chat(request)
    return caught.value, []


# -- requests --------------------------------------------------------------------------


async def test_non_stream_text_and_what_was_sent(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="Hi! How can I help?", usage=Usage(12, 6)))
    response = await provider.chat(ask())
    assert response.message == Message.assistant("Hi! How can I help?")
    assert response.usage == Usage(12, 6)
    assert response.finish_reason == "stop"
    assert response.model == "gpt-test"
    assert response.id is not None
    assert response.id.startswith("chatcmpl-")
    [request] = stub.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hello there"}],
    }


async def test_request_fields_are_mapped(stub: OpenAIStub, provider: OpenAI) -> None:
    request = ChatRequest(
        "gpt-test",
        [Message.system("Be brief."), Message.user("Weather in Paris?")],
        tools=[WEATHER, ToolSpec("noop")],
        temperature=0.2,
        max_tokens=50,
        stop=["\n\n", "END"],
        options={"seed": 7, "top_p": 0.9, "tool_choice": "auto"},
    )
    await provider.chat(request)
    body = stub.requests[-1].json
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": dict(WEATHER.parameters),
            },
        },
        {
            "type": "function",
            "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert body["temperature"] == 0.2
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body
    assert body["stop"] == ["\n\n", "END"]
    assert (body["seed"], body["top_p"], body["tool_choice"]) == (7, 0.9, "auto")
    assert "stream" not in body


async def test_max_tokens_can_be_sent_as_max_tokens_through_options(
    stub: OpenAIStub, provider: OpenAI
) -> None:
    await provider.chat(ask(max_tokens=100, options={"max_tokens": 20}))
    body = stub.requests[-1].json
    assert body["max_tokens"] == 20
    assert "max_completion_tokens" not in body


async def test_non_stream_tool_calls(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(
        StubReply(
            tool_calls=[
                ToolCall("", "get_weather", {"city": "Paris"}),
                ToolCall("", "get_weather", {"city": "Oslo", "units": {"temp": "C"}}),
            ],
            usage=Usage(30, 20),
        )
    )
    response = await provider.chat(ask(tools=[WEATHER]))
    first, second = response.message.tool_calls
    assert CALL_ID.fullmatch(first.id)
    assert CALL_ID.fullmatch(second.id)
    assert first.id != second.id
    assert (first.name, dict(first.arguments)) == ("get_weather", {"city": "Paris"})
    assert dict(second.arguments) == {"city": "Oslo", "units": {"temp": "C"}}
    assert response.message.content == ""
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(30, 20)


async def test_tool_call_round_trip(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(tool_calls=[ToolCall("", "get_weather", {"city": "Paris"})]))
    first = await provider.chat(ask("Weather in Paris?", tools=[WEATHER]))
    [call] = first.message.tool_calls
    stub.script(StubReply(text="Sunny, 21 C."))
    follow_up = ChatRequest(
        "gpt-test",
        [Message.user("Weather in Paris?"), first.message, Message.tool(call, '{"temp": 21}')],
        tools=[WEATHER],
    )
    second = await provider.chat(follow_up)
    assert second.message.content == "Sunny, 21 C."
    messages = stub.requests[-1].json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}


async def test_a_tool_result_for_an_unknown_call_is_refused_by_the_stub(
    provider: OpenAI,
) -> None:
    orphan = Message("tool", "42", tool_call_id="call_nowhere", name="f")
    with pytest.raises(BadRequest) as caught:
        await provider.chat(ChatRequest("gpt-test", [Message.user("hi"), orphan]))
    assert caught.value.status == 400
    assert "preceeding message with 'tool_calls'" in str(caught.value)


# -- streaming --------------------------------------------------------------------------


async def test_stream_text(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="The quick brown fox", chunk_size=5, usage=Usage(9, 4)))
    response, chunks = await collect(provider, ask())
    assert [chunk.delta for chunk in chunks[:-1]] == ["The q", "uick ", "brown", " fox"]
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(9, 4))
    assert response.message == Message.assistant("The quick brown fox")
    assert response.usage == Usage(9, 4)
    assert response.finish_reason == "stop"
    assert response.model == "gpt-test"
    body = stub.requests[-1].json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_assembles_fragmented_tool_calls(stub: OpenAIStub, provider: OpenAI) -> None:
    calls = [
        ToolCall("", "get_weather", {"city": "Paris", "days": [1, 2, 3]}),
        ToolCall("", "noop", {}),
    ]
    stub.script(StubReply(text="Let me check.", tool_calls=calls, chunk_size=3, usage=Usage(5, 7)))
    response, chunks = await collect(provider, ask(tools=[WEATHER]))
    text = [chunk.delta for chunk in chunks if chunk.delta]
    tool_chunks = [chunk.tool_call for chunk in chunks if chunk.tool_call is not None]
    assert "".join(text) == "Let me check."
    assert [(call.name, dict(call.arguments)) for call in tool_chunks] == [
        ("get_weather", {"city": "Paris", "days": [1, 2, 3]}),
        ("noop", {}),
    ]
    assert all(CALL_ID.fullmatch(call.id) for call in tool_chunks)
    # complete calls, each sent once, after the text and before the final chunk
    assert chunks.index(next(c for c in chunks if c.tool_call)) > len(text) - 1
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(5, 7))
    assert response.message.tool_calls == tuple(tool_chunks)
    assert response.finish_reason == "tool_calls"


async def test_stream_without_usage_reports_unknown_usage(
    stub: OpenAIStub, provider: OpenAI
) -> None:
    stub.script(StubReply(text="ok"))
    response, chunks = await collect(provider, ask(options={"stream_options": None}))
    assert stub.requests[-1].json["stream_options"] is None
    assert response.usage == Usage.unknown()
    assert not response.usage.known
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage.unknown())


async def test_length_finish_reason(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="cut sho", finish_reason="length"))
    assert (await provider.chat(ask())).finish_reason == "length"
    stub.script(StubReply(text="cut sho", finish_reason="length"))
    response, chunks = await collect(provider, ask())
    assert response.finish_reason == chunks[-1].finish_reason == "length"


async def test_concurrent_calls_on_one_provider(stub: OpenAIStub, provider: OpenAI) -> None:
    answers: dict[int, str] = {}

    async def one(number: int) -> None:
        answers[number] = (await provider.chat(ask(f"number {number}"))).message.content

    async with trio.open_nursery() as nursery:
        for number in range(8):
            nursery.start_soon(one, number)
    assert answers == {number: f"You said: number {number}" for number in range(8)}


async def test_cancellation_mid_stream_then_reuse(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="word " * 200, chunk_size=5, delay=0.05), "after")
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    received: list[Chunk] = []
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: provider.chat(ask(), stream=send))
            async for chunk in receive:
                received.append(chunk)
                scope.cancel()
    assert scope.cancelled_caught
    assert received[0] == Chunk(delta="word ")
    assert [chunk async for chunk in receive] == []  # closed by the cancelled chat
    response, chunks = await collect(provider, ask())
    assert response.message.content == "after"
    assert chunks[-1].finish_reason == "stop"


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_rate_limited_with_retry_after(
    stub: OpenAIStub, provider: OpenAI, streaming: bool
) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(0.25)))
    error, chunks = await failing(provider, ask(), streaming=streaming)
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.retry_after == pytest.approx(0.25)
    assert not error.quota_exhausted
    assert error.retryable
    assert "rate limit exceeded" in str(error)
    assert chunks == []


@pytest.mark.parametrize("streaming", [False, True])
async def test_insufficient_quota_is_not_retryable(
    stub: OpenAIStub, provider: OpenAI, streaming: bool
) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
    error, _ = await failing(provider, ask(), streaming=streaming)
    assert isinstance(error, RateLimited)
    assert error.quota_exhausted
    assert not error.retryable
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("fault", "error_type", "status"),
    [
        (Fault.overloaded(), ServerError, 503),
        (Fault.server_error(), ServerError, 500),
        (Fault.server_error(502), ServerError, 502),
        (Fault.status_code(400, "bad things"), BadRequest, 400),
        (Fault.status_code(401, "Incorrect API key provided"), AuthenticationError, 401),
        (Fault.status_code(404, "The model does not exist"), BadRequest, 404),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_errors_are_typed(
    stub: OpenAIStub,
    provider: OpenAI,
    fault: Fault,
    error_type: type[ProviderError],
    status: int,
    streaming: bool,
) -> None:
    stub.script(StubReply(fault=fault))
    error, chunks = await failing(provider, ask(), streaming=streaming)
    assert type(error) is error_type
    assert error.status == status
    assert fault.message in str(error)
    assert KEY not in str(error)
    assert chunks == []


async def test_malformed_body(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="x", fault=Fault.malformed()))
    with pytest.raises(ProtocolError, match="malformed JSON"):
        await provider.chat(ask())


async def test_malformed_stream_event(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="x", fault=Fault.malformed()))
    error, chunks = await failing_stream(provider, ask())
    assert isinstance(error, ProtocolError)
    assert chunks == []


async def test_stream_ending_without_done(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="abcdefgh", fault=Fault.truncated(after=1)))
    error, chunks = await failing_stream(provider, ask())
    assert isinstance(error, ProtocolError)
    assert "[DONE]" in str(error)
    assert chunks == [Chunk(delta="abcd")]


async def test_stream_cut_connection(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="abcdefgh", fault=Fault.truncated(after=1, cut_connection=True)))
    error, chunks = await failing_stream(provider, ask())
    assert isinstance(error, ProtocolError | ProviderConnectionError)
    assert chunks == [Chunk(delta="abcd")]
    assert (await provider.chat(ask("again"))).message.content == "You said: again"


async def test_non_stream_cut_connection(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="x", fault=Fault.truncated(cut_connection=True)))
    with pytest.raises((ProtocolError, ProviderConnectionError)):
        await provider.chat(ask())


async def test_error_inside_the_stream(stub: OpenAIStub, provider: OpenAI) -> None:
    stub.script(StubReply(text="abcdefgh", fault=Fault.error_in_stream(after=1, message="boom")))
    error, chunks = await failing_stream(provider, ask())
    assert isinstance(error, ServerError)
    assert error.status == 200
    assert "boom" in str(error)
    assert chunks == [Chunk(delta="abcd")]


class _ErrorEventStub(OpenAIStub):
    """Sends a given error object as the in-stream error."""

    error: dict[str, Any] | None = None

    def stream_error_frames(self, fault: Fault, chunk: dict[str, Any]) -> list[bytes]:
        return [_sse({"error": self.error})]


@pytest.mark.parametrize(
    ("error", "expected", "quota"),
    [
        ({"message": "m", "type": "server_error"}, ServerError, False),
        ({"message": "m", "type": "requests", "code": "rate_limit_exceeded"}, RateLimited, False),
        ({"message": "m", "type": "insufficient_quota"}, RateLimited, True),
        ({"message": "m", "type": "invalid_request_error"}, BadRequest, False),
        ({"message": "m"}, ServerError, False),
    ],
)
async def test_in_stream_error_types(
    error: dict[str, Any], expected: type[ProviderError], quota: bool
) -> None:
    async with _ErrorEventStub() as stub, OpenAI(api_key=KEY, base_url=stub.base_url) as provider:
        stub.error = error
        stub.script(StubReply(text="abc", fault=Fault.error_in_stream(after=0)))
        caught, _ = await failing_stream(provider, ask())
    assert type(caught) is expected
    assert caught.status == 200
    assert getattr(caught, "quota_exhausted", False) is quota


# -- keys and construction ----------------------------------------------------------------


async def test_key_from_environment_never_shown(
    stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    async with OpenAI(base_url=stub.base_url) as provider:
        assert KEY not in repr(provider)
        assert "key set" in repr(provider)
        await provider.chat(ask())
        assert stub.requests[-1].headers["authorization"] == f"Bearer {KEY}"
        stub.script(StubReply(fault=Fault.status_code(401, "Incorrect API key provided")))
        with pytest.raises(AuthenticationError) as caught:
            await provider.chat(ask())
        assert KEY not in str(caught.value)
        assert KEY not in repr(caught.value)


async def test_missing_key(stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with OpenAI(base_url=stub.base_url) as provider:
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
            await provider.chat(ask(), stream=send)
        assert [chunk async for chunk in receive] == []
    assert stub.requests == []


async def test_defaults() -> None:
    async with OpenAI(api_key=KEY) as provider:
        assert provider.base_url == "https://api.openai.com/v1"
        assert provider.name == "openai"
    async with OpenAI(api_key=KEY, base_url="http://host/v1/", name="local") as provider:
        assert provider.base_url == "http://host/v1"
        assert provider.name == "local"


class CountingChannel(trio.abc.SendChannel[Chunk]):
    """A send channel that counts how often it is closed."""

    def __init__(self, on_send: Any = None) -> None:
        self.chunks: list[Chunk] = []
        self.closes = 0
        self.on_send = on_send

    async def send(self, value: Chunk) -> None:
        self.chunks.append(value)
        if self.on_send is not None:
            self.on_send()

    async def aclose(self) -> None:
        self.closes += 1


async def test_the_stream_channel_is_closed_exactly_once(
    stub: OpenAIStub, provider: OpenAI
) -> None:
    ok = CountingChannel()
    await provider.chat(ask(), stream=ok)
    assert ok.closes == 1
    assert ok.chunks[-1].finish_reason == "stop"

    stub.script(StubReply(text="abcdefgh", fault=Fault.error_in_stream(1)))
    failed = CountingChannel()
    with pytest.raises(ServerError):
        await provider.chat(ask(), stream=failed)
    assert failed.closes == 1

    stub.script(StubReply(fault=Fault.server_error()))
    refused = CountingChannel()
    with pytest.raises(ServerError):
        await provider.chat(ask(), stream=refused)
    assert refused.closes == 1

    stub.script(StubReply(text="word " * 100, chunk_size=5, delay=0.05))
    with trio.CancelScope() as scope:
        cancelled = CountingChannel(on_send=scope.cancel)
        await provider.chat(ask(), stream=cancelled)
    assert scope.cancelled_caught
    assert cancelled.chunks == [Chunk(delta="word ")]
    assert cancelled.closes == 1


class _NoisyStub(OpenAIStub):
    """Adds frames an adapter must ignore: a named event, an unknown object, a second
    choice, extra fields, a null ``usage`` and a ``null`` content."""

    def envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload = super().envelope(payload)
        payload["x_unknown"] = {"nested": [1, 2]}
        return payload

    async def respond(self, request: Any) -> Any:
        response = await super().respond(request)
        if isinstance(response.body, bytes):
            return response
        inner = response.body
        noise = [
            b'event: ping\ndata: {"type": "ping"}\n\n',
            b'data: {"object": "chat.completion.chunk", "choices": [{"index": 1, '
            b'"delta": {"content": "other choice"}, "finish_reason": null}]}\n\n',
            b'data: {"choices": [{"index": 0, "delta": {"content": null}}], "usage": null}\n\n',
            b": a comment\n\n",
        ]

        async def noisy() -> AsyncIterator[bytes]:
            async for frame in inner:
                if noise:
                    yield noise.pop(0)
                yield frame

        response.body = noisy()
        return response


async def test_unknown_frames_and_fields_are_ignored() -> None:
    async with _NoisyStub() as stub, OpenAI(api_key=KEY, base_url=stub.base_url) as provider:
        stub.script(
            StubReply(
                text="Just this.",
                tool_calls=[ToolCall("", "f", {"x": 1})],
                chunk_size=3,
                usage=Usage(2, 3),
            )
        )
        response, chunks = await collect(provider, ask())
    assert "".join(chunk.delta for chunk in chunks) == "Just this."
    assert response.message.content == "Just this."
    assert [(c.name, dict(c.arguments)) for c in response.message.tool_calls] == [("f", {"x": 1})]
    assert response.usage == Usage(2, 3)
