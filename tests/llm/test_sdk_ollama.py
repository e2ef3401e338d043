"""The Ollama stub is faithful: the official ``ollama`` SDK (0.6.3), under trio, against it.

Asserts what the SDK parsed, field by field, and what it sent. Where the SDK raises inside
its own stream generator (an error line, a malformed line) it abandons httpx's stream
generators, which trio reports as a ``ResourceWarning`` when they are collected; those
tests ignore exactly that warning (the adapter itself does not leak them: see
``test_ollama.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama
import pytest
import trio

from tinyagents.llm import ChatRequest, Message, ToolCall, ToolSpec, Usage
from tinyagents.llm.ollama import Ollama
from tinyagents.testing import Fault, StubReply
from tinyagents.testing._ollama_stub import OLLAMA_QUOTA_MESSAGE, OllamaStub

MODEL = "llama3.2"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SDK_GENERATORS_ABANDONED = pytest.mark.filterwarnings(
    r"ignore:Async generator '(httpx|httpcore)\.:ResourceWarning"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


@pytest.fixture
async def stub() -> AsyncIterator[OllamaStub]:
    async with OllamaStub(models=["llama3.2:latest", "qwen3:0.6b"]) as server:
        yield server


@pytest.fixture
async def client(stub: OllamaStub) -> AsyncIterator[ollama.AsyncClient]:
    async with ollama.AsyncClient(host=stub.base_url) as sdk:
        yield sdk


def user(text: str = "What's the weather in Paris?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def sent(stub: OllamaStub) -> dict[str, Any]:
    request = stub.requests[-1]
    assert request.method == "POST"
    assert request.path == "/api/chat"
    assert isinstance(request.json, dict)
    return request.json


async def test_non_stream(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(
        StubReply(
            text="Let me check.",
            tool_calls=[ToolCall("", "get_weather", {"city": "Paris", "days": [1, 2]})],
            usage=Usage(31, 12),
        )
    )
    response = await client.chat(
        model=MODEL,
        messages=user(),
        tools=[TOOL],
        options={"temperature": 0.2, "num_predict": 64, "stop": ["END"]},
    )

    assert response.model == MODEL
    assert response.done is True
    assert response.done_reason == "stop"  # Ollama says "stop" for tool calls too
    assert response.prompt_eval_count == 31
    assert response.eval_count == 12
    assert isinstance(response.total_duration, int)
    assert response.total_duration > 0
    assert isinstance(response.load_duration, int)
    assert isinstance(response.prompt_eval_duration, int)
    assert isinstance(response.eval_duration, int)
    assert response.created_at is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", response.created_at)
    assert response.message.role == "assistant"
    assert response.message.content == "Let me check."
    calls = response.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris", "days": [1, 2]}
    assert isinstance(calls[0].function.arguments, dict)  # an object on the wire, not a string

    request = stub.requests[-1]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("ollama-python/0.6.3")
    assert "authorization" not in request.headers
    body = sent(stub)
    assert set(body) == {"model", "messages", "tools", "stream", "options"}
    assert body["stream"] is False
    assert body["model"] == MODEL
    assert body["messages"] == user()
    assert body["tools"] == [TOOL]
    assert body["options"] == {"temperature": 0.2, "num_predict": 64, "stop": ["END"]}


async def test_stream(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(
        StubReply(
            text="Checking the weather.",
            chunk_size=6,
            tool_calls=[ToolCall("", "get_weather", {"city": "Paris"})],
            usage=Usage(20, 9),
        )
    )
    parts = [part async for part in await client.chat(model=MODEL, messages=user(), stream=True)]

    *middle, last = parts
    assert all(part.done is False for part in middle)
    assert all(part.model == MODEL for part in parts)
    assert [part.message.content for part in middle] == ["Checki", "ng the", " weath", "er.", ""]
    tool_parts = [part for part in parts if part.message.tool_calls]
    assert len(tool_parts) == 1  # the whole call in one line
    (call,) = tool_parts[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}
    assert last.done is True
    assert last.done_reason == "stop"
    assert last.prompt_eval_count == 20
    assert last.eval_count == 9
    assert last.message.content == ""
    assert all(part.prompt_eval_count is None for part in middle)

    body = sent(stub)
    assert body["stream"] is True
    assert body["tools"] == []  # the SDK always sends its tools list
    assert "options" not in body


async def test_stream_content_type_and_absent_stream_flag(stub: OllamaStub) -> None:
    """Like the real server: no ``stream`` field means streaming."""
    async with httpx.AsyncClient(base_url=stub.base_url) as http:
        stub.script("one two three")
        streamed = await http.post("/api/chat", json={"model": MODEL, "messages": user()})
        assert streamed.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in streamed.text.splitlines()]
        assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
        assert "".join(line["message"]["content"] for line in lines) == "one two three"

        stub.script("one two three")
        single = await http.post(
            "/api/chat", json={"model": MODEL, "messages": user(), "stream": False}
        )
        assert single.headers["content-type"].startswith("application/json")
        assert single.json()["message"] == {"role": "assistant", "content": "one two three"}
        assert single.json()["done"] is True


async def test_length_finish(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(StubReply(text="cut short", finish_reason="length"))
    response = await client.chat(model=MODEL, messages=user())
    assert response.done_reason == "length"


async def test_modern_tool_call_ids_are_dropped_by_the_sdk() -> None:
    """Ollama >= 0.12.10 sends ``id`` and ``function.index``; SDK 0.6.3 parses the call
    and drops the id (``Message.ToolCall`` has no such field)."""
    async with (
        OllamaStub(tool_call_ids=True) as stub,
        ollama.AsyncClient(host=stub.base_url) as client,
    ):
        reply = StubReply(tool_calls=[ToolCall("call_ab12cd34", "get_weather", {"city": "Oslo"})])
        stub.script(reply, reply)
        response = await client.chat(model=MODEL, messages=user(), tools=[TOOL])
        (call,) = response.message.tool_calls or []
        assert call.function.name == "get_weather"
        assert call.function.arguments == {"city": "Oslo"}
        assert "id" not in call.model_dump()
        async with httpx.AsyncClient() as http:  # what was on the wire
            raw = await http.post(
                stub.base_url + "/api/chat",
                json={"model": MODEL, "messages": user(), "stream": False},
            )
        assert raw.json()["message"]["tool_calls"] == [
            {
                "id": "call_ab12cd34",
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}},
            }
        ]


async def test_model_not_found(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(
        StubReply(fault=Fault.status_code(404, 'model "nope" not found, try pulling it first'))
    )
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(model="nope", messages=user())
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "nope" not found, try pulling it first'

    stub.script(
        StubReply(fault=Fault.status_code(404, 'model "nope" not found, try pulling it first'))
    )
    with pytest.raises(ollama.ResponseError) as caught:
        async for _ in await client.chat(model="nope", messages=user(), stream=True):
            pass
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        (Fault.rate_limited(0.05), 429, "rate limit exceeded"),
        (Fault.rate_limited(quota=True), 429, OLLAMA_QUOTA_MESSAGE),
        (
            Fault.overloaded(0.05),
            503,
            "server busy, please try again.  maximum pending requests exceeded",
        ),
        (Fault.server_error(), 500, "internal server error"),
        (Fault.error_in_stream(2, "oom"), 500, "oom"),  # with stream false: a 500
    ],
)
async def test_http_errors(
    stub: OllamaStub, client: ollama.AsyncClient, fault: Fault, status: int, error: str
) -> None:
    stub.script(StubReply(text="never", fault=fault))
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(model=MODEL, messages=user())
    assert caught.value.status_code == status
    assert caught.value.error == error
    assert len(stub.requests) == 1  # the SDK does not retry


async def test_a_spent_quota_has_no_retry_headers(
    stub: OllamaStub, client: ollama.AsyncClient
) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(model=MODEL, messages=user())
    assert caught.value.status_code == 429
    assert "weekly usage limit" in caught.value.error
    stub.script(StubReply(fault=Fault.rate_limited(quota=True)))
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            stub.base_url + "/api/chat", json={"model": MODEL, "messages": user()}
        )
    assert reply.status_code == 429
    assert "retry-after" not in reply.headers
    assert "retry-after-ms" not in reply.headers
    assert reply.json() == {"error": OLLAMA_QUOTA_MESSAGE}


async def test_retry_after_headers(stub: OllamaStub) -> None:
    stub.script(StubReply(fault=Fault.rate_limited(0.25)))
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            stub.base_url + "/api/chat", json={"model": MODEL, "messages": user()}
        )
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "0.25"
    assert reply.headers["retry-after-ms"] == "250"
    assert reply.json() == {"error": "rate limit exceeded"}


@SDK_GENERATORS_ABANDONED
async def test_error_line_mid_stream(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(
        StubReply(text="one two three", chunk_size=4, fault=Fault.error_in_stream(2, "runner died"))
    )
    parts: list[ollama.ChatResponse] = []
    with pytest.raises(ollama.ResponseError) as caught:
        async for part in await client.chat(model=MODEL, messages=user(), stream=True):
            parts.append(part)
    assert [part.message.content for part in parts] == ["one ", "two "]
    assert caught.value.error == "runner died"
    assert caught.value.status_code == -1  # the SDK's "no status" for an error line


@SDK_GENERATORS_ABANDONED
async def test_malformed_line(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(StubReply(text="hello", fault=Fault.malformed()))
    with pytest.raises(json.JSONDecodeError):
        async for _ in await client.chat(model=MODEL, messages=user(), stream=True):
            pass


async def test_truncated_stream_ends_silently_in_the_sdk(
    stub: OllamaStub, client: ollama.AsyncClient
) -> None:
    """The SDK does not notice a missing ``done: true`` line (the adapter does)."""
    stub.script(StubReply(text="one two three", chunk_size=4, fault=Fault.truncated(after=2)))
    parts = [part async for part in await client.chat(model=MODEL, messages=user(), stream=True)]
    assert [part.done for part in parts] == [False, False]


async def test_cut_connection(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(
        StubReply(text="one two three", fault=Fault.truncated(after=1, cut_connection=True))
    )
    with pytest.raises(httpx.RemoteProtocolError):
        async for _ in await client.chat(model=MODEL, messages=user(), stream=True):
            pass


async def test_list_and_version(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    listed = await client.list()
    assert [model.model for model in listed.models] == ["llama3.2:latest", "qwen3:0.6b"]
    assert listed.models[0].details is not None
    assert listed.models[0].details.format == "gguf"
    assert listed.models[0].size is not None
    assert listed.models[0].size > 0
    async with httpx.AsyncClient(base_url=stub.base_url) as http:
        assert (await http.get("/api/version")).json() == {"version": OllamaStub.version}
        assert (await http.get("/")).text == "Ollama is running"
        assert (await http.get("/api/nothing")).status_code == 404


async def test_host_forms_and_api_key(stub: OllamaStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "key-789")
    async with ollama.AsyncClient(host=f"127.0.0.1:{stub.port}") as client:  # no scheme
        await client.chat(model=MODEL, messages=user())
    assert stub.requests[-1].headers["authorization"] == "Bearer key-789"
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{stub.port}")
    async with ollama.AsyncClient() as client:
        await client.chat(model=MODEL, messages=user())
    assert len(stub.requests) == 2


async def test_cancel_mid_stream_then_reuse(stub: OllamaStub, client: ollama.AsyncClient) -> None:
    stub.script(StubReply(text="x" * 100, chunk_size=2, delay=0.01), "done")
    with trio.CancelScope() as scope:
        async for _ in await client.chat(model=MODEL, messages=user(), stream=True):
            scope.cancel()
    assert scope.cancelled_caught
    response = await client.chat(model=MODEL, messages=user())
    assert response.message.content == "done"


async def test_sdk_and_adapter_send_the_same_conversation(
    stub: OllamaStub, client: ollama.AsyncClient
) -> None:
    """A tool round trip as the SDK sends it and as the adapter sends it."""
    await client.chat(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ],
            },
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ],
        tools=[TOOL],
        options={"temperature": 0.5, "num_predict": 100},
    )
    from_sdk = sent(stub)

    call = ToolCall("call_0_x", "get_weather", {"city": "Paris"})
    spec = ToolSpec("get_weather", "The weather in a city", TOOL["function"]["parameters"])
    async with Ollama(base_url=stub.base_url) as adapter:
        await adapter.chat(
            ChatRequest(
                MODEL,
                [
                    Message.user("Weather in Paris?"),
                    Message.assistant("", [call]),
                    Message.tool(call, "sunny"),
                ],
                tools=[spec],
                temperature=0.5,
                max_tokens=100,
            )
        )
    from_adapter = sent(stub)
    # the SDK drops falsy message fields (an empty assistant content); the server reads a
    # missing content as ""
    assert from_sdk["messages"][1] == {
        "role": "assistant",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    assert from_adapter["messages"][1] == {"content": "", **from_sdk["messages"][1]}
    from_adapter["messages"][1].pop("content")
    assert from_adapter == from_sdk
