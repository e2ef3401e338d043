"""The Anthropic adapter against the Anthropic stub server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import functools
import gc
import itertools
import json
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tinyagents.errors import (
    AuthenticationError,
    BadRequest,
    Overloaded,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from tinyagents.llm._types import (
    ChatRequest,
    ChatResponse,
    Chunk,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from tinyagents.llm.anthropic import Anthropic
from tinyagents.testing import Fault, RecordedRequest, StubReply, StubResponse, StubServer
from tinyagents.testing._anthropic_stub import AnthropicStub

KEY = "sk-ant-test-0123456789-secret"

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def ask(text: str = "Hello?", **kwargs: Any) -> ChatRequest:
    return ChatRequest("claude-test", [Message.user(text)], **kwargs)


def channel() -> tuple[trio.MemorySendChannel[Chunk], trio.MemoryReceiveChannel[Chunk]]:
    return trio.open_memory_channel[Chunk](math.inf)


async def drain(receive: trio.MemoryReceiveChannel[Chunk]) -> list[Chunk]:
    """Every chunk sent; ends only because the adapter closed the channel."""
    with trio.fail_after(10):  # a guard against a hang, not a timing assertion
        return [chunk async for chunk in receive]


async def stream_chat(
    provider: Anthropic, request: ChatRequest
) -> tuple[ChatResponse, list[Chunk]]:
    send, receive = channel()
    response = await provider.chat(request, stream=send)
    return response, await drain(receive)


def provider_for(stub: StubServer, **kwargs: Any) -> Anthropic:
    return Anthropic(api_key=KEY, base_url=stub.base_url, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a stub serving hand-written bytes (golden fixtures, odd events) ------------------------


class RawStub(StubServer):
    """Serves queued raw responses, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: deque[StubResponse] = deque()

    async def __aenter__(self) -> RawStub:
        await super().__aenter__()
        return self

    def queue(self, *responses: StubResponse) -> None:
        self.replies.extend(responses)

    async def respond(self, request: RecordedRequest) -> StubResponse:
        return self.replies.popleft()


def sse(*events: tuple[str, Mapping[str, Any]]) -> StubResponse:
    async def body() -> AsyncIterator[bytes]:
        for name, payload in events:
            yield f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

    return StubResponse(200, [("content-type", "text/event-stream")], body())


def message_start(input_tokens: int = 10, **usage: int) -> tuple[str, dict[str, Any]]:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_golden",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-golden",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
            },
        },
    )


def message_end(stop_reason: str = "end_turn", output_tokens: int = 5) -> list[Any]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def text_block(index: int, *pieces: str) -> list[Any]:
    return [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
            for p in pieces
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def error_event(kind: str, message: str = "boom") -> tuple[str, dict[str, Any]]:
    return ("error", {"type": "error", "error": {"type": kind, "message": message}})


# -- construction, key handling ---------------------------------------------------------------


async def test_defaults_and_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    async with AnthropicStub() as stub:
        provider = Anthropic(base_url=stub.base_url)
        async with provider:
            assert KEY not in repr(provider)
            assert "key set" in repr(provider)
            response = await provider.chat(ask())
        assert response.message.content == "You said: Hello?"
        assert stub.requests[0].headers["x-api-key"] == KEY
    assert Anthropic(api_key="x").base_url == "https://api.anthropic.com"
    assert Anthropic(api_key="x").name == "anthropic"


async def test_missing_key_raises_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    async with AnthropicStub() as stub, Anthropic(base_url=stub.base_url) as provider:
        assert "key unset" in repr(provider)
        with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
            await provider.chat(ask())
        assert stub.requests == []


async def test_key_never_in_error_messages() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(fault=Fault.status_code(401, "invalid x-api-key")))
        with pytest.raises(AuthenticationError) as info:
            await provider.chat(ask())
        assert KEY not in str(info.value)
        assert KEY not in repr(info.value)
        assert info.value.status == 401
        assert "authentication_error: invalid x-api-key" in str(info.value)


def test_bad_default_max_tokens() -> None:
    with pytest.raises(ValueError, match="default_max_tokens"):
        Anthropic(api_key="x", default_max_tokens=0)


# -- what is sent ------------------------------------------------------------------------------


async def test_request_path_headers_and_body() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        await provider.chat(ask())
        request = stub.requests[0]
        assert request.method == "POST"
        assert request.path == "/v1/messages"
        assert request.headers["x-api-key"] == KEY
        assert "authorization" not in request.headers
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.headers["content-type"] == "application/json"
        assert AnthropicStub.api_key(request) == KEY
        assert AnthropicStub.version(request) == "2023-06-01"
        assert request.json == {
            "model": "claude-test",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hello?"}],
        }


async def test_version_max_tokens_temperature_stop_and_options() -> None:
    async with AnthropicStub() as stub:
        async with provider_for(
            stub, version="2099-01-01", default_max_tokens=77, headers={"anthropic-beta": "b1"}
        ) as provider:
            await provider.chat(ask())
            await provider.chat(
                ask(
                    temperature=0.25,
                    max_tokens=9,
                    stop=["\n\nHuman:", "END"],
                    options={"top_k": 5, "metadata": {"user_id": "u1"}},
                )
            )
        first, second = stub.requests
        assert first.headers["anthropic-version"] == "2099-01-01"
        assert first.headers["anthropic-beta"] == "b1"
        assert first.json["max_tokens"] == 77
        assert "temperature" not in first.json
        assert "stop_sequences" not in first.json
        assert "stream" not in first.json
        assert second.json["max_tokens"] == 9
        assert second.json["temperature"] == 0.25
        assert second.json["stop_sequences"] == ["\n\nHuman:", "END"]
        assert second.json["top_k"] == 5
        assert second.json["metadata"] == {"user_id": "u1"}


async def test_conversation_mapping() -> None:
    call_a = ToolCall("toolu_a", "get_weather", {"city": "Paris"})
    call_b = ToolCall("toolu_b", "get_weather", {"city": "Rome"})
    request = ChatRequest(
        "claude-test",
        [
            Message.system("You are terse."),
            Message.user("Hi."),
            Message.system("Answer in English."),
            Message.user("Weather in Paris and Rome?"),
            Message.assistant("Let me look.", [call_a, call_b]),
            Message.tool(call_a, "sunny"),
            Message.tool(call_b, "rainy"),
            Message.user("And tomorrow?"),
            Message.assistant("", [ToolCall("toolu_c", "get_weather", {})]),
            Message.tool(ToolCall("toolu_c", "get_weather"), "unknown"),
        ],
        tools=[WEATHER, ToolSpec("noop")],
    )
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        await provider.chat(request)
    body = stub.requests[0].json
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi."},
                {"type": "text", "text": "Weather in Paris and Rome?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "rainy"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_c", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_c", "content": "unknown"}],
        },
    ]
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))


async def test_tool_results_open_the_user_turn() -> None:
    call = ToolCall("toolu_x", "f")
    request = ChatRequest(
        "claude-test",
        [
            Message.assistant(""),
            Message.assistant("", [call]),
            Message.user("note first"),
            Message.tool(call, "42"),
        ],
    )
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        await provider.chat(request)
    assert stub.requests[0].json["messages"][0] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}}],
    }
    assert stub.requests[0].json["messages"][1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "42"},
        {"type": "text", "text": "note first"},
    ]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_tool_call_round_trip(streaming: bool) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(
            StubReply(
                text="Checking.",
                tool_calls=[ToolCall("", "get_weather", {"city": "Paris", "days": [1, 2]})],
            ),
            StubReply(text="It is sunny."),
        )
        history = [Message.user("Weather in Paris?")]
        request = ChatRequest("claude-test", history, tools=[WEATHER])
        if streaming:
            first, chunks = await stream_chat(provider, request)
            assert [c.tool_call for c in chunks if c.tool_call] == list(first.message.tool_calls)
        else:
            first = await provider.chat(request)
        assert first.finish_reason == "tool_calls"
        (call,) = first.message.tool_calls
        assert call.id.startswith("toolu_")
        assert call.name == "get_weather"
        assert call.arguments == {"city": "Paris", "days": [1, 2]}
        assert first.message.content == "Checking."
        history += [first.message, Message.tool(call, "sunny, 24C")]
        second = await provider.chat(ChatRequest("claude-test", history, tools=[WEATHER]))
        assert second.message.content == "It is sunny."
        assert second.finish_reason == "stop"
        sent = stub.requests[1].json["messages"]
        assert sent[1] == {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": "get_weather",
                    "input": {"city": "Paris", "days": [1, 2]},
                },
            ],
        }
        assert sent[2] == {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 24C"}],
        }


# -- replies -----------------------------------------------------------------------------------


async def test_complete_text_reply() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="Hello there, friend.", usage=Usage(12, 4)))
        response = await provider.chat(ask())
    assert response.message == Message.assistant("Hello there, friend.")
    assert response.usage == Usage(12, 4)
    assert response.finish_reason == "stop"
    assert response.model == "claude-test"
    assert response.id is not None
    assert response.id.startswith("msg_")


async def test_stream_text_reply() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="Hello there, friend.", usage=Usage(12, 4), chunk_size=3))
        response, chunks = await stream_chat(provider, ask())
    assert stub.requests[0].json["stream"] is True
    deltas = [c.delta for c in chunks[:-1]]
    assert deltas == ["Hel", "lo ", "the", "re,", " fr", "ien", "d."]
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(12, 4))
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert response.message == Message.assistant("Hello there, friend.")
    assert response.usage == Usage(12, 4)
    assert response.id is not None
    assert response.id.startswith("msg_")
    assert response.model == "claude-test"


async def test_stream_parallel_tool_calls() -> None:
    calls = [
        ToolCall("toolu_given", "get_weather", {"city": "Paris", "unit": "C"}),
        ToolCall("", "lookup", {"q": 'a "quoted" ünïcode string', "n": {"deep": [1, None, True]}}),
        ToolCall("", "noop", {}),
    ]
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="On it.", tool_calls=calls, chunk_size=2, usage=Usage(3, 30)))
        response, chunks = await stream_chat(provider, ask())
    got = [c.tool_call for c in chunks if c.tool_call is not None]
    assert [(c.name, dict(c.arguments)) for c in got] == [
        (c.name, dict(c.arguments)) for c in calls
    ]
    assert got[0].id == "toolu_given"
    assert all(c.id.startswith("toolu_") for c in got)
    assert len({c.id for c in got}) == 3
    assert list(response.message.tool_calls) == got
    assert response.message.content == "On it."
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(3, 30))
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(
    ("neutral", "expected"),
    [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("stop_sequence", "stop"),
        ("pause_turn", "pause_turn"),
    ],
)
async def test_finish_reasons(streaming: bool, neutral: str, expected: str) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="abc", finish_reason=neutral))
        if streaming:
            response, chunks = await stream_chat(provider, ask(stop=["X"]))
            assert chunks[-1].finish_reason == expected
        else:
            response = await provider.chat(ask(stop=["X"]))
    assert response.finish_reason == expected


async def test_default_usage_counts_words() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="one two three"), StubReply(text="one two three"))
        complete = await provider.chat(ask("four words right here"))
        streamed, chunks = await stream_chat(provider, ask("four words right here"))
    assert complete.usage == streamed.usage == Usage(4, 3)
    assert chunks[-1].usage == Usage(4, 3)


async def test_concurrent_calls_on_one_provider() -> None:
    results: dict[int, str] = {}
    async with AnthropicStub() as stub, provider_for(stub) as provider:

        async def one(i: int) -> None:
            if i % 2:
                results[i] = (await provider.chat(ask(f"n{i}"))).message.content
            else:
                results[i] = (await stream_chat(provider, ask(f"n{i}")))[0].message.content

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, i)
    assert results == {i: f"You said: n{i}" for i in range(8)}


# -- golden fixtures and odd streams -------------------------------------------------------------


async def test_documented_stream_with_tool_use_and_unknown_events() -> None:
    """The tool-use stream of the Messages streaming docs, plus events a newer API may add."""
    tool_start = {
        "type": "content_block_start",
        "index": 1,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {},
        },
    }
    pieces = ["", '{"location":', ' "San Fra', 'ncisco, CA"', ', "unit": "fah', 'renheit"}']
    async with RawStub() as stub, provider_for(stub) as provider:
        stub.queue(
            sse(
                message_start(472, cache_read_input_tokens=100, cache_creation_input_tokens=20),
                ("ping", {"type": "ping"}),
                *text_block(0, "Okay", ", let me check."),
                ("some_future_event", {"type": "some_future_event", "x": 1}),
                ("content_block_start", tool_start),
                *(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 1,
                            "delta": {"type": "input_json_delta", "partial_json": p},
                        },
                    )
                    for p in pieces
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 1}),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 2,
                        "content_block": {
                            "type": "tool_use",
                            "id": "toolu_empty",
                            "name": "now",
                            "input": {},
                        },
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 2,
                        "delta": {"type": "input_json_delta", "partial_json": ""},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 2}),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "future_delta", "z": 1},
                    },
                ),
                *message_end("tool_use", 89),
            )
        )
        response, chunks = await stream_chat(provider, ask())
    assert [c.delta for c in chunks if c.delta] == ["Okay", ", let me check."]
    assert [c.tool_call for c in chunks if c.tool_call] == [
        ToolCall(
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "get_weather",
            {"location": "San Francisco, CA", "unit": "fahrenheit"},
        ),
        ToolCall("toolu_empty", "now", {}),
    ]
    assert chunks[-1] == Chunk(finish_reason="tool_calls", usage=Usage(592, 89))
    assert response.usage == Usage(592, 89)
    assert response.id == "msg_golden"
    assert response.model == "claude-golden"
    assert response.message.content == "Okay, let me check."


async def test_documented_message_with_cache_usage() -> None:
    body = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "I'll check."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"location": "San Francisco, CA"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 100,
            "output_tokens": 25,
        },
    }
    async with RawStub() as stub, provider_for(stub) as provider:
        stub.queue(
            StubResponse(200, [("content-type", "application/json")], json.dumps(body).encode())
        )
        response = await provider.chat(ask())
    assert response.message.tool_calls == (
        ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "San Francisco, CA"}),
    )
    assert response.usage == Usage(115, 25)
    assert response.model == "claude-sonnet-4-5"
    assert response.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("overloaded_error", Overloaded, True),
        ("rate_limit_error", RateLimited, True),
        ("api_error", ServerError, True),
        ("invalid_request_error", BadRequest, False),
        ("authentication_error", AuthenticationError, False),
        ("timeout_error", ProviderTimeout, True),
        ("brand_new_error", ServerError, True),
    ],
)
async def test_error_event_types(kind: str, error: type[ProviderError], retryable: bool) -> None:
    async with RawStub() as stub, provider_for(stub) as provider:
        stub.queue(sse(message_start(), *text_block(0, "partial"), error_event(kind, "it broke")))
        send, receive = channel()
        with pytest.raises(error) as info:
            await provider.chat(ask(), stream=send)
        chunks = await drain(receive)
    assert type(info.value) is error
    assert info.value.status == 200
    assert info.value.retryable is retryable
    assert f"{kind}: it broke" in str(info.value)
    assert [c.delta for c in chunks] == ["partial"]  # never a final chunk: no silent end


async def test_error_body_with_status_200() -> None:
    async with RawStub() as stub, provider_for(stub) as provider:
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        stub.queue(
            StubResponse(200, [("content-type", "application/json")], json.dumps(body).encode())
        )
        with pytest.raises(Overloaded) as info:
            await provider.chat(ask())
    assert info.value.status == 200


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2]",
        b'{"type": "message", "content": "not a list"}',
        b'{"type": "message", "content": [{"type": "tool_use", "id": "t", "name": "f", '
        b'"input": [1]}]}',
    ],
)
async def test_complete_reply_of_the_wrong_shape(payload: bytes) -> None:
    async with RawStub() as stub, provider_for(stub) as provider:
        stub.queue(StubResponse(200, [("content-type", "application/json")], payload))
        with pytest.raises(ProtocolError):
            await provider.chat(ask())


async def test_stream_tool_input_not_json() -> None:
    async with RawStub() as stub, provider_for(stub) as provider:
        start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        }
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
        }
        stub.queue(
            sse(
                message_start(),
                ("content_block_start", start),
                ("content_block_delta", delta),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                *message_end(),
            )
        )
        send, receive = channel()
        with pytest.raises(ProtocolError):
            await provider.chat(ask(), stream=send)
        assert await drain(receive) == []


# -- faults -------------------------------------------------------------------------------------


async def run_both(provider: Anthropic, streaming: bool) -> tuple[BaseException, list[Chunk]]:
    """Make one call that must fail; return its error and the chunks streamed before."""
    send, receive = channel()
    with pytest.raises(ProviderError) as info:
        if streaming:
            await provider.chat(ask(), stream=send)
        else:
            await provider.chat(ask())
    if not streaming:
        send.close()
    return info.value, await drain(receive)


modes = pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])


@modes
async def test_rate_limited(streaming: bool) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(fault=Fault.rate_limited(0.05)))
        error, chunks = await run_both(provider, streaming)
        assert chunks == []
        assert isinstance(error, RateLimited)
        assert error.status == 429
        assert error.retry_after == pytest.approx(0.05)
        assert error.retryable
        assert not error.quota_exhausted
        assert "rate_limit_error" in str(error)
        # the provider is fine afterwards
        assert (await provider.chat(ask())).message.content == "You said: Hello?"


@modes
async def test_overloaded_529(streaming: bool) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(
            StubReply(fault=Fault.overloaded(retry_after=2)), StubReply(fault=Fault.overloaded())
        )
        error, _ = await run_both(provider, streaming)
        assert type(error) is Overloaded
        assert error.status == 529
        assert error.retry_after == 2
        assert "overloaded_error" in str(error)
        error, _ = await run_both(provider, streaming)
        assert isinstance(error, Overloaded)
        assert error.retry_after is None


@modes
@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (400, BadRequest, "invalid_request_error"),
        (401, AuthenticationError, "authentication_error"),
        (403, AuthenticationError, "permission_error"),
        (404, BadRequest, "not_found_error"),
        (413, BadRequest, "request_too_large"),
        (500, ServerError, "api_error"),
        (503, ServerError, "api_error"),
        (529, Overloaded, "overloaded_error"),
    ],
)
async def test_status_errors(
    streaming: bool, status: int, error_type: type[ProviderError], kind: str
) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(fault=Fault.status_code(status, "nope")))
        error, chunks = await run_both(provider, streaming)
    assert chunks == []
    assert type(error) is error_type
    assert error.status == status
    assert str(error) == f"anthropic (HTTP {status}): {kind}: nope"


@modes
async def test_server_error(streaming: bool) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(fault=Fault.server_error()))
        error, _ = await run_both(provider, streaming)
    assert type(error) is ServerError
    assert error.status == 500
    assert error.retryable
    assert "api_error" in str(error)


@modes
async def test_malformed(streaming: bool) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="hi", fault=Fault.malformed()))
        error, chunks = await run_both(provider, streaming)
        assert chunks == []
        assert type(error) is ProtocolError
        assert "malformed JSON" in str(error)
        assert (await provider.chat(ask())).message.content == "You said: Hello?"


@modes
@pytest.mark.parametrize("cut", [False, True], ids=["clean-end", "cut-connection"])
async def test_truncated(streaming: bool, cut: bool) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(
            StubReply(text="Hello there, friend.", fault=Fault.truncated(2, cut_connection=cut))
        )
        error, chunks = await run_both(provider, streaming)
        assert type(error) is ProtocolError
        if streaming:
            # what arrived was delivered, then the error: never a final chunk
            assert [c.delta for c in chunks] == ["Hell", "o th"]
            if not cut:
                assert "without message_stop" in str(error)
        assert (await provider.chat(ask())).message.content == "You said: Hello?"


async def test_truncated_stream_inside_a_tool_call() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(tool_calls=[ToolCall("", "f", {"a": 1})], fault=Fault.truncated(3)))
        error, chunks = await run_both(provider, True)
    assert type(error) is ProtocolError
    assert chunks == []  # an incomplete tool call is never sent


@pytest.mark.parametrize("after", [0, 2, 100])
async def test_error_in_stream(after: int) -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(
            StubReply(text="Hello there, friend.", fault=Fault.error_in_stream(after, "Overloaded"))
        )
        error, chunks = await run_both(provider, True)
        assert type(error) is Overloaded
        assert error.status == 200
        assert error.retryable
        assert "overloaded_error: Overloaded" in str(error)
        assert all(c.finish_reason is None for c in chunks)
        assert "".join(c.delta for c in chunks) == "Hello there, friend."[: 4 * after]
        assert (await provider.chat(ask())).message.content == "You said: Hello?"


async def test_error_in_stream_without_streaming_is_a_529() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="x", fault=Fault.error_in_stream(1)))
        error, _ = await run_both(provider, False)
    assert type(error) is Overloaded
    assert error.status == 529


async def test_connection_refused() -> None:
    provider = Anthropic(api_key=KEY, base_url=f"http://127.0.0.1:{free_port()}")
    async with provider:
        error, _ = await run_both(provider, True)
    assert type(error) is ProviderConnectionError
    assert KEY not in str(error)


async def test_call_timeout() -> None:
    async with AnthropicStub() as stub, provider_for(stub, call_timeout=0.2) as provider:
        stub.script(StubReply(text="slow", delay=30))
        error, chunks = await run_both(provider, True)
    assert type(error) is ProviderTimeout
    assert chunks == []


async def test_stub_rejects_what_the_api_rejects() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        with pytest.raises(BadRequest, match=r"messages\.0\.role"):
            await provider.chat(ask(options={"messages": [{"role": "system", "content": "x"}]}))
        with pytest.raises(BadRequest, match="max_tokens"):
            await provider.chat(ask(options={"max_tokens": None}))


# -- cancellation ---------------------------------------------------------------------------------


async def test_cancel_mid_stream_then_reuse() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="word " * 200, chunk_size=5, delay=0.01))
        send, receive = channel()
        received: list[Chunk] = []
        finished: list[ChatResponse] = []

        async def call() -> None:
            finished.append(await provider.chat(ask(), stream=send))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            received.append(await receive.receive())
            nursery.cancel_scope.cancel()
        assert received[0].delta == "word "
        assert finished == []
        rest = await drain(receive)  # the channel was closed on cancellation
        assert all(c.finish_reason is None for c in rest)

        stub.script(StubReply(text="Complete answer.", usage=Usage(2, 2)))
        response, chunks = await stream_chat(provider, ask())
        assert response.message.content == "Complete answer."
        assert "".join(c.delta for c in chunks) == "Complete answer."
        assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(2, 2))
        assert (await provider.chat(ask())).message.content == "You said: Hello?"


# httpx 0.28 reads a body through nested async generators (encode/httpx#3686); when a
# cancellation lands while the adapter waits on the caller's channel rather than on the
# socket, they are left suspended and trio warns when they are collected. They are still
# closed by trio, and the provider stays usable, which is what this test checks.
@pytest.mark.filterwarnings(r"ignore:Async generator 'http(x|core)\.:ResourceWarning")
async def test_cancel_while_blocked_on_a_full_channel_then_reuse() -> None:
    async with AnthropicStub() as stub, provider_for(stub) as provider:
        stub.script(StubReply(text="word " * 50, chunk_size=5))
        send, receive = trio.open_memory_channel[Chunk](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(provider.chat, ask(), stream=send))
            first = await receive.receive()
            await trio.testing.wait_all_tasks_blocked()
            assert send.statistics().tasks_waiting_send == 1  # blocked on the channel
            nursery.cancel_scope.cancel()
        assert first.delta == "word "
        assert await drain(receive) == []  # closed
        gc.collect()  # collect the abandoned generators while the warning is ignored
        response, chunks = await stream_chat(provider, ask())
        assert response.message.content == "You said: Hello?"
        assert chunks[-1].finish_reason == "stop"


async def test_stub_accepts_bearer_auth_and_answers_unknown_paths_in_kind() -> None:
    async with AnthropicStub() as stub, httpx.AsyncClient(base_url=stub.base_url) as http:
        ok = await http.post(
            "/v1/messages",
            headers={"authorization": "Bearer sk-other", "anthropic-version": "2026-10-21"},
            json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        missing = await http.get("/v1/models")
    assert ok.status_code == 200
    assert ok.headers["request-id"].startswith("req_")
    assert AnthropicStub.api_key(stub.requests[0]) == "sk-other"
    assert AnthropicStub.version(stub.requests[0]) == "2026-10-21"
    assert missing.status_code == 404
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "not_found_error"
