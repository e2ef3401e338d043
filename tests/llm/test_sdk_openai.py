"""The official ``openai`` SDK against OpenAIStub and OpenRouterStub: the stubs are faithful.

``openai.AsyncOpenAI`` runs under trio directly (it uses anyio). Each test asserts, field
by field, what the SDK parsed and what it sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tinyagents.llm import ToolCall, Usage
from tinyagents.testing import Fault, StubReply
from tinyagents.testing._openai_stub import (
    OPENAI_QUOTA_MESSAGE,
    OPENROUTER_QUOTA_MESSAGE,
    OpenAIStub,
    OpenRouterStub,
)

KEY = "sk-sdk-test"
APP_URL = "https://example.org/agent"
APP_NAME = "Agent Under Test"
CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
]
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
]

# The SDK stops reading a stream at ``data: [DONE]`` or at an error event, leaving its
# own and httpx's async generators unfinished; trio reports each as a ResourceWarning
# when it is collected. That is the SDK's behaviour, not the stub's.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Async generator '(openai|httpx2?|httpcore2?)\.:ResourceWarning"
)


@pytest.fixture(params=[OpenAIStub, OpenRouterStub], ids=["openai", "openrouter"])
async def stub(request: pytest.FixtureRequest) -> AsyncIterator[OpenAIStub]:
    async with request.param() as server:
        yield server


def client(stub: OpenAIStub, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    headers = (
        {"HTTP-Referer": APP_URL, "X-Title": APP_NAME} if isinstance(stub, OpenRouterStub) else None
    )
    return openai.AsyncOpenAI(
        api_key=KEY, base_url=stub.base_url, max_retries=max_retries, default_headers=headers
    )


def check_sent(stub: OpenAIStub, index: int = -1) -> dict[str, Any]:
    """Assert on the request the SDK sent; return its body."""
    request = stub.requests[index]
    assert request.method == "POST"
    assert request.path == stub.base_path + "/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("AsyncOpenAI/Python")
    if isinstance(stub, OpenRouterStub):
        assert stub.attribution(request) == (APP_URL, APP_NAME)
    body: dict[str, Any] = request.json
    return body


async def test_non_stream_with_tools(stub: OpenAIStub) -> None:
    stub.script(
        StubReply(
            tool_calls=[
                ToolCall("", "get_weather", {"city": "Paris"}),
                ToolCall("", "get_weather", {"city": "Lyon"}),
            ],
            usage=Usage(21, 13),
        )
    )
    async with client(stub) as sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice="auto"
        )
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("gen-" if isinstance(stub, OpenRouterStub) else "chatcmpl-")
    assert isinstance(completion.created, int)
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 2
    for call, city in zip(calls, ["Paris", "Lyon"], strict=True):
        assert call.type == "function"
        assert CALL_ID.fullmatch(call.id)
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": city}
    assert calls[0].id != calls[1].id
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 21
    assert completion.usage.completion_tokens == 13
    assert completion.usage.total_tokens == 34
    if isinstance(stub, OpenRouterStub):
        assert completion.usage.model_extra is not None
        assert completion.usage.model_extra["cost"] == pytest.approx(34e-6)
        assert completion.model_extra is not None
        assert completion.model_extra["provider"] == "OpenAI"
    else:
        assert completion.usage.prompt_tokens_details is not None
        assert completion.usage.prompt_tokens_details.cached_tokens == 0
        assert completion.system_fingerprint == "fp_stub0000"
    body = check_sent(stub)
    assert body == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "tools": TOOLS,
        "tool_choice": "auto",
    }


async def test_stream_with_fragmented_tool_arguments_and_usage(stub: OpenAIStub) -> None:
    stub.script(
        StubReply(
            text="Checking.",
            tool_calls=[ToolCall("", "get_weather", {"city": "Paris"})],
            chunk_size=4,
            usage=Usage(15, 9),
        )
    )
    async with client(stub) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Checking."
    fragments = [
        fragment
        for chunk in chunks
        if chunk.choices
        for fragment in chunk.choices[0].delta.tool_calls or ()
    ]
    assert len(fragments) > 2  # really fragmented
    head, *rest = fragments
    assert head.index == 0
    assert head.id is not None
    assert CALL_ID.fullmatch(head.id)
    assert head.type == "function"
    assert head.function is not None
    assert head.function.name == "get_weather"
    assert head.function.arguments == ""
    assert all(f.index == 0 and f.id is None for f in rest)
    assert all(f.function is not None and f.function.name is None for f in rest)
    arguments = "".join(f.function.arguments or "" for f in rest if f.function is not None)
    assert json.loads(arguments) == {"city": "Paris"}
    finishing = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert [chunk.choices[0].finish_reason for chunk in finishing] == ["tool_calls"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (15, 9)
    assert last.usage.total_tokens == 24
    assert all(chunk.usage is None for chunk in chunks[:-1])
    body = check_sent(stub)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_without_include_usage_has_no_usage_chunk(stub: OpenAIStub) -> None:
    stub.script(StubReply(text="Hello there", usage=Usage(3, 2)))
    async with client(stub) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "stream_options" not in check_sent(stub)


async def test_stream_helper_final_message(stub: OpenAIStub) -> None:
    stub.script(
        StubReply(
            text="Let me look.",
            tool_calls=[ToolCall("", "get_weather", {"city": "Oslo"})],
            chunk_size=3,
            usage=Usage(12, 8),
        )
    )
    async with (
        client(stub) as sdk,
        sdk.chat.completions.stream(
            model="gpt-4o-mini",
            messages=MESSAGES,
            tools=TOOLS,
            stream_options={"include_usage": True},
        ) as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_completion()
    kinds = {event.type for event in events}
    assert {"chunk", "content.delta", "content.done"} <= kinds
    assert "tool_calls.function.arguments.delta" in kinds
    [done] = [event for event in events if event.type == "tool_calls.function.arguments.done"]
    assert done.name == "get_weather"
    assert json.loads(done.arguments) == {"city": "Oslo"}
    assert done.parsed_arguments == {"city": "Oslo"}  # a strict tool: the SDK parses it
    [choice] = final.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look."
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert CALL_ID.fullmatch(call.id)
    assert call.function.name == "get_weather"
    assert call.function.parsed_arguments == {"city": "Oslo"}
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (12, 8)
    assert check_sent(stub)["stream"] is True


async def test_sdk_retries_a_429_after_retry_after(stub: OpenAIStub) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(0.05)), StubReply(text="After the wait."))
    async with client(stub, max_retries=1) as sdk:
        completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "After the wait."
    assert len(stub.requests) == 2
    assert check_sent(stub, 0) == check_sent(stub, 1)
    assert stub.requests[0].headers["x-stainless-retry-count"] == "0"
    assert stub.requests[1].headers["x-stainless-retry-count"] == "1"


async def test_sdk_error_for_a_429_without_retries(stub: OpenAIStub) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(0.05)))
    async with client(stub) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after-ms"] == "50"
    assert error.response.headers["retry-after"] == "1"
    if isinstance(stub, OpenRouterStub):
        assert error.body == {"code": 429, "message": "rate limit exceeded"}
    else:
        assert error.code == "rate_limit_exceeded"
        assert error.type == "requests"
        assert error.message.endswith("rate limit exceeded")


async def test_sdk_error_for_a_spent_quota(stub: OpenAIStub) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
    async with client(stub, max_retries=0) as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = caught.value
    assert "retry-after" not in error.response.headers
    assert "retry-after-ms" not in error.response.headers
    if isinstance(stub, OpenRouterStub):
        # the SDK has no class of its own for a 402
        assert type(error) is openai.APIStatusError
        assert error.status_code == 402
        assert error.body == {"code": 402, "message": OPENROUTER_QUOTA_MESSAGE}
    else:
        assert isinstance(error, openai.RateLimitError)
        assert error.status_code == 429
        assert error.code == "insufficient_quota"
        assert error.type == "insufficient_quota"
        assert error.message.endswith(OPENAI_QUOTA_MESSAGE)


async def test_error_event_inside_the_stream_raises_api_error(stub: OpenAIStub) -> None:
    stub.script(
        StubReply(text="abcdefgh", fault=Fault.error_in_stream(after=2, message="Model crashed"))
    )
    received: list[str] = []
    async with client(stub) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert caught.value.message == "Model crashed"
        assert isinstance(caught.value.body, dict)
        if isinstance(stub, OpenRouterStub):
            assert caught.value.body == {"code": 502, "message": "Model crashed"}
        else:
            assert caught.value.body["type"] == "server_error"
        assert "".join(received) == "abcdefgh"
        # the client is still usable
        again = await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert again.choices[0].message.content == "You said: Weather in Paris?"


async def test_openrouter_stream_carries_comment_lines() -> None:
    async with OpenRouterStub() as stub, httpx.AsyncClient() as raw:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        response = await raw.post(stub.base_url + "/chat/completions", json=body)
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-generation-id"].startswith("gen-")
        lines = response.text.split("\n")
        assert lines[0] == ": OPENROUTER PROCESSING"
        assert ": OPENROUTER PROCESSING" in lines[1:]
        assert response.text.endswith("data: [DONE]\n\n")
        async with client(stub) as sdk:  # and the SDK skips them
            stream = await sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "You said: Weather in Paris?"


async def test_structured_output_parses_into_the_sdks_own_model(stub: OpenAIStub) -> None:
    # the SDK's parse() sends response_format json_schema and validates the text with
    # pydantic: the stub's JSON answer is what the real API sends
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    stub.script(StubReply(text='{"name": "Paris", "population": 2100000}'))
    async with client(stub) as sdk:
        completion = await sdk.chat.completions.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=City
        )
    body = check_sent(stub)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "City"
    assert body["response_format"]["json_schema"]["strict"] is True
    [choice] = completion.choices
    assert choice.message.parsed == City(name="Paris", population=2100000)
    assert choice.message.refusal is None
