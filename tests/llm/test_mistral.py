"""The Mistral adapter against MistralStub: its dialect, tool-call id mapping, faults."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import httpx
import pytest
import trio

from tinyagents.errors import (
    AuthenticationError,
    BadRequest,
    ProtocolError,
    ProviderError,
    RateLimited,
    ServerError,
)
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, ToolCall, ToolSpec, Usage
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.openai import OpenAI
from tinyagents.testing import Fault, StubReply
from tinyagents.testing._openai_stub import MistralStub, _sse

KEY = "mistral-0123456789secret"
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
WEATHER = ToolSpec(
    "get_weather", "Weather.", {"type": "object", "properties": {"city": {"type": "string"}}}
)


@pytest.fixture
async def stub() -> AsyncIterator[MistralStub]:
    async with MistralStub() as server:
        yield server


@pytest.fixture
async def provider(stub: MistralStub) -> AsyncIterator[Mistral]:
    async with Mistral(api_key=KEY, base_url=stub.base_url) as adapter:
        yield adapter


def ask(text: str = "hello there", **kwargs: Any) -> ChatRequest:
    return ChatRequest("mistral-small-latest", [Message.user(text)], **kwargs)


async def collect(provider: Mistral, request: ChatRequest) -> tuple[ChatResponse, list[Chunk]]:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    response = await provider.chat(request, stream=send)
    return response, [chunk async for chunk in receive]


async def failing(
    provider: Mistral | OpenAI, request: ChatRequest, *, streaming: bool = True
) -> tuple[ProviderError, list[Chunk]]:
    if not streaming:
        with pytest.raises(ProviderError) as caught:
            await provider.chat(request)
        return caught.value, []
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    with pytest.raises(ProviderError) as caught:
        await provider.chat(request, stream=send)
    return caught.value, [chunk async for chunk in receive]


# -- the dialect --------------------------------------------------------------------------


async def test_non_stream_and_request_fields(stub: MistralStub, provider: Mistral) -> None:
    stub.script(StubReply(text="Bonjour !", usage=Usage(7, 3)))
    request = ask(
        temperature=0.3, max_tokens=64, stop=["###"], options={"seed": 42, "safe_prompt": True}
    )
    response = await provider.chat(request)
    assert response.message == Message.assistant("Bonjour !")
    assert response.usage == Usage(7, 3)
    assert response.finish_reason == "stop"
    assert response.model == "mistral-small-latest"
    [sent] = stub.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "hello there"}],
        "temperature": 0.3,
        "max_tokens": 64,
        "stop": ["###"],
        "random_seed": 42,
        "safe_prompt": True,
    }


async def test_stream_sends_no_stream_options_and_gets_usage(
    stub: MistralStub, provider: Mistral
) -> None:
    stub.script(StubReply(text="Salut tout le monde", chunk_size=6, usage=Usage(4, 5)))
    response, chunks = await collect(provider, ask(max_tokens=10))
    assert "".join(chunk.delta for chunk in chunks) == "Salut tout le monde"
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(4, 5))
    assert response.usage == Usage(4, 5)
    body = stub.requests[-1].json
    assert body["stream"] is True
    assert "stream_options" not in body
    assert body["max_tokens"] == 10


def usage_less(request: httpx.Request) -> httpx.Response:
    """What llama-server answers the Mistral dialect (no ``stream_options``): no usage."""
    body = json.loads(request.content)
    frame = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "smol"}
    if not body.get("stream"):
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "smol",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Salut"}}],
        }
        return httpx.Response(200, json=reply)
    frames = [
        {**frame, "choices": [{"index": 0, "delta": {"content": "Sal"}}]},
        {**frame, "choices": [{"index": 0, "delta": {"content": "ut"}, "finish_reason": "stop"}]},
    ]
    content = b"".join(_sse(f) for f in frames) + b"data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


async def test_a_stream_or_reply_without_usage_reports_unknown_usage() -> None:
    transport = httpx.MockTransport(usage_less)
    async with Mistral(api_key=KEY, base_url="http://llama.test/v1", transport=transport) as p:
        response, chunks = await collect(p, ask())
        complete = await p.chat(ask())
    assert response.message.content == complete.message.content == "Salut"
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage.unknown())
    assert response.usage == complete.usage == Usage.unknown()
    assert not response.usage.known
    assert response.usage + Usage(4, 5) == Usage(4, 5, unreported=1)


async def test_fields_mistral_does_not_know_are_refused(
    stub: MistralStub, provider: Mistral
) -> None:
    error, _ = await failing(provider, ask(options={"frobnicate": 1}), streaming=False)
    assert type(error) is BadRequest
    assert error.status == 422
    assert "body.frobnicate: Extra inputs are not permitted" in str(error)
    # what the OpenAI dialect would send is refused, field by field
    async with OpenAI(api_key=KEY, base_url=stub.base_url) as openai_dialect:
        error, _ = await failing(openai_dialect, ask(max_tokens=5))
    assert error.status == 422
    assert "max_completion_tokens" in str(error)
    assert "stream_options" in str(error)


async def test_non_stream_tool_calls(stub: MistralStub, provider: Mistral) -> None:
    stub.script(
        StubReply(
            tool_calls=[ToolCall("", "get_weather", {"city": "Lyon"}), ToolCall("", "noop", {})],
            usage=Usage(20, 9),
        )
    )
    response = await provider.chat(ask(tools=[WEATHER]))
    first, second = response.message.tool_calls
    assert MISTRAL_ID.fullmatch(first.id)
    assert MISTRAL_ID.fullmatch(second.id)
    assert (first.name, dict(first.arguments)) == ("get_weather", {"city": "Lyon"})
    assert (second.name, dict(second.arguments)) == ("noop", {})
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(20, 9)


async def test_stream_whole_tool_calls(stub: MistralStub, provider: Mistral) -> None:
    calls = [ToolCall("", "get_weather", {"city": "Lyon"}), ToolCall("", "get_weather", {})]
    stub.script(StubReply(tool_calls=calls, usage=Usage(11, 6)))
    response, chunks = await collect(provider, ask(tools=[WEATHER]))
    tool_calls = [chunk.tool_call for chunk in chunks if chunk.tool_call]
    assert [(call.name, dict(call.arguments)) for call in tool_calls] == [
        ("get_weather", {"city": "Lyon"}),
        ("get_weather", {}),
    ]
    assert all(MISTRAL_ID.fullmatch(call.id) for call in tool_calls)
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(11, 6))
    assert response.message.tool_calls == tuple(tool_calls)


class _FragmentingStub(MistralStub):
    """Streams tool calls in OpenAI-style fragments."""

    whole_tool_calls: ClassVar[bool] = False


class _ObjectArgumentsStub(MistralStub):
    """Sends tool-call arguments as JSON objects rather than strings."""

    def tool_call_payload(self, call: ToolCall, index: int | None = None) -> dict[str, Any]:
        payload = super().tool_call_payload(call, index)
        payload["function"]["arguments"] = dict(call.arguments)
        return payload


@pytest.mark.parametrize("stub_type", [_FragmentingStub, _ObjectArgumentsStub])
async def test_fragments_and_object_arguments(stub_type: type[MistralStub]) -> None:
    calls = [ToolCall("", "get_weather", {"city": "Nice", "days": 2}), ToolCall("", "noop", {})]
    async with stub_type() as stub, Mistral(api_key=KEY, base_url=stub.base_url) as provider:
        stub.script(StubReply(tool_calls=calls, chunk_size=4), StubReply(tool_calls=calls))
        streamed, _ = await collect(provider, ask())
        whole = await provider.chat(ask())
    for response in (streamed, whole):
        assert [(call.name, dict(call.arguments)) for call in response.message.tool_calls] == [
            ("get_weather", {"city": "Nice", "days": 2}),
            ("noop", {}),
        ]


class _ContentPartsStub(MistralStub):
    """Answers with ``content`` as a list of parts, as reasoning models may."""

    def message_payload(self, text: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
        message = super().message_payload(text, calls)
        message["content"] = [
            {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
            {"type": "text", "text": text},
        ]
        return message


async def test_content_as_a_list_of_parts() -> None:
    async with _ContentPartsStub() as stub, Mistral(api_key=KEY, base_url=stub.base_url) as p:
        stub.script("the answer")
        response = await p.chat(ask())
    assert response.message.content == "the answer"


async def test_model_length_is_length(stub: MistralStub, provider: Mistral) -> None:
    stub.script(StubReply(text="abc", finish_reason="model_length"))
    assert (await provider.chat(ask())).finish_reason == "length"
    stub.script(StubReply(text="abc", finish_reason="model_length"))
    response, chunks = await collect(provider, ask())
    assert response.finish_reason == chunks[-1].finish_reason == "length"


# -- tool-call ids ------------------------------------------------------------------------


def conversation(*ids: str) -> list[Message]:
    calls = [ToolCall(call_id, "get_weather", {"city": f"C{n}"}) for n, call_id in enumerate(ids)]
    return [
        Message.user("Weather?"),
        Message.assistant("", calls),
        *(Message.tool(call, f"sunny {n}") for n, call in enumerate(calls)),
    ]


async def test_foreign_tool_call_ids_are_mapped_consistently(
    stub: MistralStub, provider: Mistral
) -> None:
    openai_id = "call_Xk3BqYw9ZmP0aLr7TtQe2Vnc"
    made_up = "0f8e2c1a-9b7d-4e5f-a3c2-1d0e9f8a7b6c"
    messages = conversation(openai_id, made_up, "abcDEF123")
    # Message.tool sets name; a result without one gets it from its call
    messages[-1] = Message("tool", "sunny 2", tool_call_id="abcDEF123")
    stub.script("Sunny everywhere.", "Again.")
    response = await provider.chat(ChatRequest("mistral-small-latest", messages, tools=[WEATHER]))
    assert response.message.content == "Sunny everywhere."  # the stub accepted the ids
    sent = stub.requests[-1].json["messages"]
    mapped = [call["id"] for call in sent[1]["tool_calls"]]
    assert all(MISTRAL_ID.fullmatch(call_id) for call_id in mapped)
    assert mapped[2] == "abcDEF123"  # a valid id is kept
    assert mapped[0] != openai_id
    assert mapped[1] != made_up
    assert len(set(mapped)) == 3
    assert [message["tool_call_id"] for message in sent[2:]] == mapped
    assert [message["name"] for message in sent[2:]] == ["get_weather"] * 3
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": mapped[0],
        "content": "sunny 0",
        "name": "get_weather",
    }
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "C0"}
    # deterministic: the same ids map the same way in a later request
    await provider.chat(ChatRequest("mistral-small-latest", messages, tools=[WEATHER]))
    again = stub.requests[-1].json["messages"]
    assert [call["id"] for call in again[1]["tool_calls"]] == mapped
    # and by another provider instance (a pure function of the id)
    async with Mistral(api_key=KEY, base_url=stub.base_url) as other:
        await other.chat(ChatRequest("mistral-small-latest", messages))
    assert [call["id"] for call in stub.requests[-1].json["messages"][1]["tool_calls"]] == mapped


async def test_the_stub_refuses_ids_that_are_not_mapped(stub: MistralStub) -> None:
    messages = conversation("call_Xk3BqYw9ZmP0aLr7TtQe2Vnc")
    async with OpenAI(api_key=KEY, base_url=stub.base_url) as unmapped:
        error, _ = await failing(
            unmapped, ChatRequest("mistral-small-latest", messages), streaming=False
        )
    assert type(error) is BadRequest
    assert "Tool call id was call_Xk3BqYw9ZmP0aLr7TtQe2Vnc but must be a-z, A-Z, 0-9" in str(error)


async def test_a_full_tool_round_trip_in_stream_mode(stub: MistralStub, provider: Mistral) -> None:
    stub.script(StubReply(tool_calls=[ToolCall("", "get_weather", {"city": "Paris"})]))
    first, _ = await collect(provider, ask("Weather in Paris?", tools=[WEATHER]))
    [call] = first.message.tool_calls
    follow_up = ChatRequest(
        "mistral-small-latest",
        [Message.user("Weather in Paris?"), first.message, Message.tool(call, "21 C")],
        tools=[WEATHER],
    )
    stub.script("It is 21 C.")
    second, _ = await collect(provider, follow_up)
    assert second.message.content == "It is 21 C."
    sent = stub.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id  # Mistral's own id, unchanged
    assert sent[2]["tool_call_id"] == call.id


# -- faults -------------------------------------------------------------------------------


async def test_error_inside_the_stream(stub: MistralStub, provider: Mistral) -> None:
    stub.script(StubReply(text="abcdefgh", fault=Fault.error_in_stream(1)))
    error, chunks = await failing(provider, ask())
    assert type(error) is ServerError
    assert error.status == 200
    assert chunks == [Chunk(delta="abcd")]


class _ErrorObjectStub(MistralStub):
    """Sends Mistral's error object as a stream event."""

    def stream_error_frames(self, fault: Fault, chunk: dict[str, Any]) -> list[bytes]:
        return [_sse(self.error_payload(429, fault.message))]


async def test_error_object_inside_the_stream() -> None:
    async with _ErrorObjectStub() as stub, Mistral(api_key=KEY, base_url=stub.base_url) as p:
        stub.script(StubReply(text="abcdefgh", fault=Fault.error_in_stream(2, "slow down")))
        error, chunks = await failing(p, ask())
    assert type(error) is RateLimited
    assert error.status == 200
    assert "slow down" in str(error)
    assert [chunk.delta for chunk in chunks] == ["abcd", "efgh"]


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        (Fault.rate_limited(0.3), RateLimited, 429),
        (Fault.rate_limited(quota=True), RateLimited, 429),
        (Fault.overloaded(), ServerError, 503),
        (Fault.server_error(), ServerError, 500),
        (Fault.status_code(401, "Unauthorized"), AuthenticationError, 401),
        (Fault.status_code(400, "Invalid model: nope"), BadRequest, 400),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_errors(
    stub: MistralStub,
    provider: Mistral,
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
    if fault.retry_after is not None and not fault.quota_exhausted:
        assert isinstance(error, RateLimited)
        assert error.retry_after == pytest.approx(fault.retry_after)


async def test_malformed_and_truncated(stub: MistralStub, provider: Mistral) -> None:
    stub.script(StubReply(text="x", fault=Fault.malformed()))
    error, _ = await failing(provider, ask(), streaming=False)
    assert isinstance(error, ProtocolError)
    stub.script(StubReply(text="abcdefgh", fault=Fault.truncated(1, cut_connection=True)))
    error, chunks = await failing(provider, ask())
    assert isinstance(error, ProtocolError)
    assert chunks == [Chunk(delta="abcd")]
    stub.script(StubReply(text="abcdefgh", fault=Fault.truncated(2)))
    error, chunks = await failing(provider, ask())
    assert isinstance(error, ProtocolError)
    assert "[DONE]" in str(error)


async def test_cancellation_then_reuse(stub: MistralStub, provider: Mistral) -> None:
    stub.script(StubReply(text="mot " * 100, delay=0.05))
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: provider.chat(ask(), stream=send))
            async for chunk in receive:
                assert chunk.delta == "mot "
                scope.cancel()
    assert scope.cancelled_caught
    assert [chunk async for chunk in receive] == []
    response, chunks = await collect(provider, ask("encore"))
    assert response.message.content == "You said: encore"
    assert chunks[-1].usage is not None


async def test_key_from_environment(stub: MistralStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    async with Mistral(base_url=stub.base_url) as provider:
        assert KEY not in repr(provider)
        await provider.chat(ask())
    assert stub.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_defaults() -> None:
    async with Mistral(api_key=KEY) as provider:
        assert provider.base_url == "https://api.mistral.ai/v1"
        assert provider.name == "mistral"
