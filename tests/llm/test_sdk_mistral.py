"""The official ``mistralai`` SDK against MistralStub: the stub is faithful.

mistralai 3.7.0's async client does not run under trio (it uses asyncio), so its sync
client runs in ``trio.to_thread.run_sync`` while the stub serves in trio. The SDK's
``server_url`` is ``stub.url``: the SDK adds ``/v1/chat/completions`` itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import trio
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from mistralai.client.utils import BackoffStrategy, RetryConfig

from tinyagents.llm import ToolCall, Usage
from tinyagents.testing import Fault, StubReply
from tinyagents.testing._openai_stub import MistralStub

KEY = "mistral-sdk-test"
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
MESSAGES: list[Any] = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
T = TypeVar("T")


@pytest.fixture
async def stub() -> AsyncIterator[MistralStub]:
    async with MistralStub() as server:
        yield server


async def with_client(
    stub: MistralStub, use: Callable[[Mistral], T], *, retries: RetryConfig | None = None
) -> T:
    """Run ``use(client)`` with a sync client in a worker thread."""

    def run() -> T:
        if retries is None:
            with Mistral(api_key=KEY, server_url=stub.url) as client:
                return use(client)
        with Mistral(api_key=KEY, server_url=stub.url, retry_config=retries) as client:
            return use(client)

    return await trio.to_thread.run_sync(run)


def check_sent(stub: MistralStub, accept: str, index: int = -1) -> dict[str, Any]:
    request = stub.requests[index]
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == accept
    assert request.headers["user-agent"] == "mistral-client-python/3.7.0"
    body: dict[str, Any] = request.json
    return body


CALLS = [
    ToolCall("", "get_weather", {"city": "Paris"}),
    ToolCall("", "get_weather", {"city": "Lyon"}),
]


async def test_non_stream_with_tool_calls(stub: MistralStub) -> None:
    stub.script(StubReply(tool_calls=CALLS, usage=Usage(33, 17)))
    response = await with_client(
        stub,
        lambda client: client.chat.complete(
            model="mistral-small-latest", messages=MESSAGES, tools=TOOLS, tool_choice="any"
        ),
    )
    assert response.object == "chat.completion"
    assert response.model == "mistral-small-latest"
    assert re.fullmatch(r"[0-9a-f]{32}", response.id)
    assert isinstance(response.created, int)
    [choice] = response.choices
    assert choice.index == 0
    assert choice.finish_reason == "tool_calls"
    assert choice.message is not None
    assert choice.message.role == "assistant"
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 2
    for call, city in zip(calls, ["Paris", "Lyon"], strict=True):
        assert call.id is not None
        assert MISTRAL_ID.fullmatch(call.id)
        assert call.type == "function"
        assert call.function.name == "get_weather"
        assert isinstance(call.function.arguments, str)
        assert json.loads(call.function.arguments) == {"city": city}
    assert response.usage.prompt_tokens == 33
    assert response.usage.completion_tokens == 17
    assert response.usage.total_tokens == 50
    body = check_sent(stub, "application/json")
    assert body["model"] == "mistral-small-latest"
    assert body["messages"] == MESSAGES
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == "any"
    assert body["stream"] is False


async def test_stream_with_tool_calls_and_usage_on_the_final_chunk(stub: MistralStub) -> None:
    stub.script(StubReply(text="Checking both.", tool_calls=CALLS, usage=Usage(30, 21)))
    events = await with_client(
        stub,
        lambda client: list(
            client.chat.stream(model="mistral-small-latest", messages=MESSAGES, tools=TOOLS)
        ),
    )
    chunks = [event.data for event in events]
    assert len({chunk.id for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.model == "mistral-small-latest" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(
        chunk.choices[0].delta.content
        for chunk in chunks
        if isinstance(chunk.choices[0].delta.content, str)
    )
    assert text == "Checking both."
    deltas = [
        chunk.choices[0].delta.tool_calls
        for chunk in chunks
        if isinstance(chunk.choices[0].delta.tool_calls, list)
    ]
    # each call arrives whole, in one delta
    assert [len(delta) for delta in deltas] == [1, 1]
    for delta, city, index in zip(deltas, ["Paris", "Lyon"], [0, 1], strict=True):
        [call] = delta
        assert call.id is not None
        assert MISTRAL_ID.fullmatch(call.id)
        assert call.index == index
        assert call.function.name == "get_weather"
        assert isinstance(call.function.arguments, str)
        assert json.loads(call.function.arguments) == {"city": city}
    last = chunks[-1]
    assert last.choices[0].finish_reason == "tool_calls"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (30, 21)
    assert last.usage.total_tokens == 51
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])
    body = check_sent(stub, "text/event-stream")
    assert body["stream"] is True
    assert "stream_options" not in body


async def test_tool_round_trip_with_mistral_ids(stub: MistralStub) -> None:
    stub.script(StubReply(tool_calls=CALLS[:1]), StubReply(text="Sunny, 24 C."))

    def round_trip(client: Mistral) -> tuple[str, Any]:
        first = client.chat.complete(model="m", messages=MESSAGES, tools=TOOLS)
        assert first.choices[0].message is not None
        assert first.choices[0].message.tool_calls is not None
        [call] = first.choices[0].message.tool_calls
        assert call.id is not None
        second = client.chat.complete(
            model="m",
            messages=[
                *MESSAGES,
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "24"},
            ],
            tools=TOOLS,
        )
        assert second.choices[0].message is not None
        return call.id, second.choices[0].message.content

    call_id, answer = await with_client(stub, round_trip)
    assert answer == "Sunny, 24 C."
    sent = check_sent(stub, "application/json")["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call_id
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": call_id,
        "name": "get_weather",
        "content": "24",
    }


async def test_foreign_tool_call_id_refused(stub: MistralStub) -> None:
    foreign = "call_Xk3BqYw9ZmP0aLr7TtQe2Vnc"
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": foreign, "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": foreign, "name": "get_weather", "content": "24"},
    ]

    def attempt(client: Mistral) -> SDKError:
        with pytest.raises(SDKError) as caught:
            client.chat.complete(model="m", messages=messages)
        return caught.value

    error = await with_client(stub, attempt)
    assert error.status_code == 400
    body = json.loads(error.body)
    assert body["object"] == "error"
    assert body["type"] == "invalid_function_call"
    assert body["message"] == (
        f"Tool call id was {foreign} but must be a-z, A-Z, 0-9, with a length of 9."
    )


async def test_sdk_retries_a_429_after_retry_after(stub: MistralStub) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(0.05)), StubReply(text="Done."))
    retries = RetryConfig("backoff", BackoffStrategy(5_000, 10_000, 1.5, 30_000), False)
    response = await with_client(
        stub,
        lambda client: client.chat.complete(model="m", messages=MESSAGES),
        retries=retries,
    )
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "Done."
    assert len(stub.requests) == 2
    assert check_sent(stub, "application/json", 0) == check_sent(stub, "application/json", 1)


async def test_a_spent_monthly_quota(stub: MistralStub) -> None:
    """The SDK raises its SDKError (it has no rate-limit class) with the 429; only the
    headers tell the reply from a passing rate limit."""
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))

    def attempt(client: Mistral) -> SDKError:
        with pytest.raises(SDKError) as caught:
            client.chat.complete(model="m", messages=MESSAGES)
        return caught.value

    error = await with_client(stub, attempt)
    assert error.status_code == 429
    assert json.loads(error.body) == {
        "object": "error",
        "message": "quota exhausted",
        "type": "rate_limited",
        "param": None,
        "code": "1300",
    }
    headers = error.raw_response.headers
    assert headers["x-ratelimit-remaining-tokens-month"] == "0"
    assert int(headers["x-ratelimit-limit-tokens-month"]) > 0
    assert "retry-after" not in headers
    assert "retry-after-ms" not in headers
