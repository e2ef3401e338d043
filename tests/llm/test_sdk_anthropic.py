"""The Anthropic stub is faithful: the official SDK (anthropic 2.13.0), run under trio,
parses what the stub sends and its requests reach the stub as the real API expects."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
import trio
from anthropic._constants import ANTHROPIC_API_VERSION

from tinyagents.llm._types import ToolCall, Usage
from tinyagents.testing import Fault, StubReply
from tinyagents.testing._anthropic_stub import ANTHROPIC_QUOTA_MESSAGE, AnthropicStub

KEY = "sk-ant-sdk-test"
MODEL = "claude-stub-1"
MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris and Rome?"}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
CALLS = [
    ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "Paris", "unit": "celsius"}),
    ToolCall("", "get_weather", {"city": "Rome", "details": {"hourly": [1, 2, 3], "wind": True}}),
]


def client(stub: AnthropicStub, max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stub.base_url, api_key=KEY, max_retries=max_retries)


def check_request_sent(stub: AnthropicStub, *, stream: bool) -> None:
    """What the SDK sent: the path, its auth and version headers, the body."""
    request = stub.requests[-1]
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    # 2.13.0 sends the key as a Bearer token, not x-api-key, and its own version date
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in request.headers
    assert request.headers["anthropic-version"] == ANTHROPIC_API_VERSION == "2026-10-21"
    assert AnthropicStub.api_key(request) == KEY
    assert AnthropicStub.version(request) == ANTHROPIC_API_VERSION
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert body["model"] == MODEL
    assert body["max_tokens"] == 256
    assert body["messages"] == MESSAGES
    assert body["tools"] == TOOLS
    assert body["system"] == "Be brief."
    if stream:
        assert body["stream"] is True
    else:
        assert "stream" not in body
    assert set(body) <= {"model", "max_tokens", "messages", "tools", "system", "stream"}


async def test_non_stream_with_tool_use() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(text="Let me check.", tool_calls=CALLS, usage=Usage(57, 41)))
        message = await sdk.messages.create(
            model=MODEL, max_tokens=256, system="Be brief.", messages=MESSAGES, tools=TOOLS
        )
        check_request_sent(stub, stream=False)
    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None
    text, first, second = message.content
    assert text.type == "text"
    assert text.text == "Let me check."
    assert first.type == "tool_use"
    assert first.id == "toolu_01A09q90qw90lq917835lq9"
    assert first.name == "get_weather"
    assert first.input == {"city": "Paris", "unit": "celsius"}
    assert second.type == "tool_use"
    assert second.id.startswith("toolu_")
    assert second.id != first.id
    assert second.input == {"city": "Rome", "details": {"hourly": [1, 2, 3], "wind": True}}
    assert message.usage.input_tokens == 57
    assert message.usage.output_tokens == 41
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.service_tier == "standard"
    # the block carries exactly the API's fields
    assert first.to_dict() == {
        "type": "tool_use",
        "id": "toolu_01A09q90qw90lq917835lq9",
        "name": "get_weather",
        "input": {"city": "Paris", "unit": "celsius"},
    }


@pytest.mark.parametrize(
    ("neutral", "stop_reason", "stop_sequence"),
    [
        ("stop", "end_turn", None),
        ("length", "max_tokens", None),
        ("stop_sequence", "stop_sequence", "END"),
        ("content_filter", "refusal", None),
    ],
)
async def test_stop_reasons(neutral: str, stop_reason: str, stop_sequence: str | None) -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(text="abc", finish_reason=neutral))
        message = await sdk.messages.create(
            model=MODEL, max_tokens=8, messages=MESSAGES, stop_sequences=["END"]
        )
    assert message.stop_reason == stop_reason
    assert message.stop_sequence == stop_sequence
    assert stub.requests[0].json["stop_sequences"] == ["END"]


async def test_raw_stream_events() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(
            StubReply(text="Let me check.", tool_calls=CALLS, usage=Usage(57, 41), chunk_size=5)
        )
        events = await sdk.messages.create(
            model=MODEL,
            max_tokens=256,
            system="Be brief.",
            messages=MESSAGES,
            tools=TOOLS,
            stream=True,
        )
        received = [event async for event in events]
        check_request_sent(stub, stream=True)

    kinds = [event.type for event in received]
    # the SDK drops `ping` itself
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 3

    start = received[0]
    assert start.type == "message_start"
    assert start.message.id.startswith("msg_")
    assert start.message.model == MODEL
    assert start.message.content == []
    assert start.message.stop_reason is None
    assert start.message.usage.input_tokens == 57

    texts: list[str] = []
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    for event in received:
        if event.type == "content_block_start":
            blocks[event.index] = event.content_block.to_dict()
        elif event.type == "content_block_delta":
            if event.delta.type == "text_delta":
                assert blocks[event.index]["type"] == "text"
                texts.append(event.delta.text)
            elif event.delta.type == "input_json_delta":
                partial.setdefault(event.index, []).append(event.delta.partial_json)
    assert "".join(texts) == "Let me check."
    assert len(texts) == 3
    assert blocks[0] == {"type": "text", "text": ""}
    for index, call in zip((1, 2), CALLS, strict=True):
        assert blocks[index]["type"] == "tool_use"
        assert blocks[index]["name"] == call.name
        assert blocks[index]["input"] == {}
        assert blocks[index]["id"].startswith("toolu_")
        pieces = partial[index]
        assert pieces[0] == ""  # as the API does, the first fragment is empty
        assert len([p for p in pieces if p]) > 2  # the input really is fragmented
        assert json.loads("".join(pieces)) == call.arguments
    assert blocks[1]["id"] == CALLS[0].id

    delta = received[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "tool_use"
    assert delta.delta.stop_sequence is None
    assert delta.usage.output_tokens == 41


async def test_stream_helper_final_message() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(
            StubReply(text="Let me check.", tool_calls=CALLS, usage=Usage(57, 41), chunk_size=3)
        )
        text: list[str] = []
        json_pieces: list[str] = []
        async with sdk.messages.stream(
            model=MODEL, max_tokens=256, system="Be brief.", messages=MESSAGES, tools=TOOLS
        ) as stream:
            async for event in stream:
                if event.type == "text":
                    text.append(event.text)
                elif event.type == "input_json":
                    json_pieces.append(event.partial_json)
            message = await stream.get_final_message()
        check_request_sent(stub, stream=True)
    assert "".join(text) == "Let me check."
    assert json_pieces  # the helper saw the fragments, and accumulated them:
    assert message.id.startswith("msg_")
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me check."  # type: ignore[union-attr]
    first, second = message.content[1:]
    assert first.id == CALLS[0].id  # type: ignore[union-attr]
    assert first.input == CALLS[0].arguments  # type: ignore[union-attr]
    assert second.name == "get_weather"  # type: ignore[union-attr]
    assert second.input == CALLS[1].arguments  # type: ignore[union-attr]
    assert message.usage.input_tokens == 57
    assert message.usage.output_tokens == 41


async def test_stream_helper_text_only() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script("Hello from the stub.")
        async with sdk.messages.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream:
            pieces = [piece async for piece in stream.text_stream]
            final = await stream.get_final_text()
    assert "".join(pieces) == final == "Hello from the stub."
    assert len(pieces) > 1


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault.overloaded(retry_after=0.05), 529), (Fault.rate_limited(0.05), 429)],
    ids=["529", "429"],
)
async def test_sdk_retries_with_retry_after(fault: Fault, status: int) -> None:
    async with AnthropicStub() as stub, client(stub, max_retries=2) as sdk:
        stub.script(StubReply(fault=fault), StubReply(fault=fault), "Finally.")
        message = await sdk.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.content[0].text == "Finally."  # type: ignore[union-attr]
    assert len(stub.requests) == 3
    assert [r.headers["x-stainless-retry-count"] for r in stub.requests] == ["0", "1", "2"]
    assert all(r.json == stub.requests[0].json for r in stub.requests)


async def test_overloaded_error_without_retries() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(fault=Fault.overloaded(retry_after=0.05)))
        with pytest.raises(anthropic.OverloadedError) as info:
            await sdk.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    error = info.value
    assert isinstance(error, anthropic.InternalServerError)
    assert error.status_code == 529
    assert error.type == "overloaded_error"
    assert error.api_message == "Overloaded"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.response.headers["retry-after"] == "0.05"
    assert error.response.headers["retry-after-ms"] == "50"
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error"
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("fault", "error_class", "error_type"),
    [
        (Fault.rate_limited(0.05), anthropic.RateLimitError, "rate_limit_error"),
        (Fault.server_error(), anthropic.InternalServerError, "api_error"),
        (Fault.status_code(400, "bad"), anthropic.BadRequestError, "invalid_request_error"),
        (Fault.status_code(401, "bad key"), anthropic.AuthenticationError, "authentication_error"),
        (Fault.status_code(403, "no"), anthropic.PermissionDeniedError, "permission_error"),
        (Fault.status_code(404, "no model"), anthropic.NotFoundError, "not_found_error"),
        (Fault.status_code(413, "too big"), anthropic.ContentTooLargeError, "request_too_large"),
    ],
)
async def test_error_statuses(
    fault: Fault, error_class: type[anthropic.APIStatusError], error_type: str
) -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(fault=fault))
        with pytest.raises(error_class) as info:
            await sdk.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert info.value.status_code == fault.status
    assert info.value.type == error_type
    assert info.value.api_message == fault.message


async def test_a_spent_quota_is_the_sdks_rate_limit_error() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
        with pytest.raises(anthropic.RateLimitError) as info:
            await sdk.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    error = info.value
    assert error.status_code == 429
    assert error.type == "rate_limit_error"
    assert error.api_message == ANTHROPIC_QUOTA_MESSAGE
    assert isinstance(error.body, dict)
    assert error.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert "retry-after" not in error.response.headers
    assert "retry-after-ms" not in error.response.headers
    assert error.request_id is not None
    assert error.request_id.startswith("req_")


@pytest.mark.parametrize("helper", [False, True], ids=["raw", "helper"])
async def test_error_event_in_stream(helper: bool) -> None:
    async with AnthropicStub() as stub, client(stub, max_retries=2) as sdk:
        stub.script(
            StubReply(text="Hello there, friend.", fault=Fault.error_in_stream(2, "Overloaded"))
        )
        texts: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as info:
            if helper:
                async with sdk.messages.stream(
                    model=MODEL, max_tokens=16, messages=MESSAGES
                ) as stream:
                    async for text in stream.text_stream:
                        texts.append(text)
            else:
                events = await sdk.messages.create(
                    model=MODEL, max_tokens=16, messages=MESSAGES, stream=True
                )
                async for event in events:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        texts.append(event.delta.text)
    error = info.value
    # the status of the HTTP response, already 200: not an OverloadedError, not retried
    assert type(error) is anthropic.APIStatusError
    assert error.status_code == 200
    assert error.type == "overloaded_error"
    assert error.api_message == "Overloaded"
    assert texts == ["Hell", "o th"]
    assert len(stub.requests) == 1


async def test_truncated_stream_is_not_noticed_by_the_sdk() -> None:
    """The SDK ends quietly when a stream stops without ``message_stop`` (the adapter
    raises ProtocolError): what the stub sends is a plausible cut stream."""
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(text="Hello there, friend.", fault=Fault.truncated(2)))
        events = await sdk.messages.create(
            model=MODEL, max_tokens=16, messages=MESSAGES, stream=True
        )
        kinds = [event.type async for event in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]


async def test_cut_connection_is_a_connection_error() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(text="Hello there.", fault=Fault.truncated(1, cut_connection=True)))
        with pytest.raises(anthropic.APIConnectionError):
            await sdk.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)


async def test_temperature_is_not_a_create_argument_in_2_13() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        with pytest.raises(TypeError, match="temperature"):
            await sdk.messages.create(  # type: ignore[call-overload]
                model=MODEL, max_tokens=16, messages=MESSAGES, temperature=0.5
            )
        assert stub.requests == []
        await sdk.messages.create(
            model=MODEL, max_tokens=16, messages=MESSAGES, extra_body={"temperature": 0.5}
        )
    assert stub.requests[0].json["temperature"] == 0.5


async def test_sdk_stream_cancelled_then_reused() -> None:
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(text="word " * 200, chunk_size=5, delay=0.01))
        first: list[str] = []
        with trio.CancelScope() as scope:
            events = await sdk.messages.create(
                model=MODEL, max_tokens=512, messages=MESSAGES, stream=True
            )
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    first.append(event.delta.text)
                    scope.cancel()
        assert scope.cancelled_caught
        assert first == ["word "]
        message = await sdk.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.content[0].text == "You said: What is the weather in Paris and Rome?"  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_forced_tool_answers_with_a_call_of_it(stream: bool) -> None:
    # tool_choice {"type": "tool"}: the stub turns a scripted JSON answer into the call
    # of that tool, as the API does; the SDK reads it as a tool_use block
    tools = [*TOOLS, {"name": "City", "input_schema": {"type": "object"}}]
    async with AnthropicStub() as stub, client(stub) as sdk:
        stub.script(StubReply(text='{"name": "Paris", "population": 2100000}'))
        choice: Any = {"type": "tool", "name": "City"}
        if stream:
            async with sdk.messages.stream(
                model=MODEL, max_tokens=256, messages=MESSAGES, tools=tools, tool_choice=choice
            ) as events:
                message = await events.get_final_message()
        else:
            message = await sdk.messages.create(
                model=MODEL, max_tokens=256, messages=MESSAGES, tools=tools, tool_choice=choice
            )
        assert stub.requests[-1].json["tool_choice"] == choice
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert block.name == "City"
    assert block.input == {"name": "Paris", "population": 2100000}
