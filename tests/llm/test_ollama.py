"""The Ollama adapter against the Ollama stub server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import gc
import hashlib
import json
import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

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
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, Provider, ToolCall, ToolSpec
from tinyagents.llm.ollama import Ollama, _parse_host
from tinyagents.testing import Fault, RecordedRequest, StubReply, StubResponse, StubServer
from tinyagents.testing._ollama_stub import OllamaStub

MODEL = "llama3.2"
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


@pytest.fixture
async def stub() -> AsyncIterator[OllamaStub]:
    async with OllamaStub() as server:
        yield server


@pytest.fixture
async def provider(stub: OllamaStub) -> AsyncIterator[Ollama]:
    async with Ollama(base_url=stub.base_url) as adapter:
        yield adapter


def ask(text: str = "Hi there", **fields: Any) -> ChatRequest:
    return ChatRequest(MODEL, [Message.user(text)], **fields)


def last_body(stub: StubServer) -> dict[str, Any]:
    body = stub.requests[-1].json
    assert isinstance(body, dict)
    return body


async def streamed(
    provider: Provider, request: ChatRequest
) -> tuple[ChatResponse | ProviderError, list[Chunk]]:
    """Call with a memory channel; the consumer's ``async for`` must end (channel closed)."""
    send, receive = trio.open_memory_channel[Chunk](1000)
    chunks: list[Chunk] = []
    result: ChatResponse | ProviderError

    async def consume() -> None:
        async with receive:
            async for chunk in receive:
                chunks.append(chunk)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            try:
                result = await provider.chat(request, stream=send)
            except ProviderError as exc:
                result = exc
    return result, chunks


class CountingChannel(trio.abc.SendChannel[Chunk]):
    """A send channel that records chunks and counts ``aclose`` calls."""

    def __init__(self, on_send: Any = None) -> None:
        self.chunks: list[Chunk] = []
        self.closes = 0
        self.on_send = on_send

    async def send(self, value: Chunk) -> None:
        self.chunks.append(value)
        if self.on_send is not None:
            self.on_send(value)

    async def aclose(self) -> None:
        self.closes += 1


class RawStub(StubServer):
    """Answers every request with the next of ``responses`` (hand-written wire bytes)."""

    def __init__(self, *responses: StubResponse) -> None:
        super().__init__()
        self.responses = list(responses)

    async def respond(self, request: RecordedRequest) -> StubResponse:
        return self.responses.pop(0)


def ndjson(*lines: dict[str, Any]) -> StubResponse:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return StubResponse(200, [("content-type", "application/x-ndjson")], body)


def made_up(index: int, name: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps(
        [name, arguments], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return f"call_{index}_{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


# -- plain text ---------------------------------------------------------------------------


async def test_complete_text(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="Hello, how are you?"))
    request = ChatRequest(
        MODEL,
        [Message.system("Be brief."), Message.user("Hi there")],
        temperature=0.2,
        max_tokens=64,
        stop=["\n\n", "END"],
    )
    response = await provider.chat(request)

    assert response.message == Message.assistant("Hello, how are you?")
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens == 4  # the stub counts request words
    assert response.usage.output_tokens == 4
    assert response.model == MODEL

    sent = stub.requests[-1]
    assert sent.method == "POST"
    assert sent.path == "/api/chat"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
        ],
        "options": {"temperature": 0.2, "num_predict": 64, "stop": ["\n\n", "END"]},
        "stream": False,
    }


async def test_stream_text(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="Hello, how are you?", chunk_size=5, usage=None))
    result, chunks = await streamed(provider, ask(max_tokens=10))

    assert isinstance(result, ChatResponse)
    assert [chunk.delta for chunk in chunks[:-1]] == ["Hello", ", how", " are ", "you?"]
    final = chunks[-1]
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 4)
    assert result.message.content == "Hello, how are you?"
    assert result.usage == final.usage
    assert result.finish_reason == "stop"

    body = last_body(stub)
    assert body["stream"] is True
    assert body["options"] == {"num_predict": 10}


async def test_no_options_or_tools_when_unset(stub: OllamaStub, provider: Ollama) -> None:
    await provider.chat(ask())
    body = last_body(stub)
    assert set(body) == {"model", "messages", "stream"}
    assert body["stream"] is False


async def test_usage_given_by_the_server(stub: OllamaStub, provider: Ollama) -> None:
    from tinyagents.llm import Usage

    stub.script(StubReply(text="ok", usage=Usage(123, 45)), StubReply(text="ok", usage=Usage(7, 8)))
    response = await provider.chat(ask())
    assert response.usage == Usage(123, 45)
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, ChatResponse)
    assert result.usage == Usage(7, 8)
    assert chunks[-1].usage == Usage(7, 8)


@pytest.mark.parametrize(("finish", "expected"), [("length", "length"), ("load", "load")])
async def test_finish_reasons(
    stub: OllamaStub, provider: Ollama, finish: str, expected: str
) -> None:
    stub.script(
        StubReply(text="cut", finish_reason=finish), StubReply(text="cut", finish_reason=finish)
    )
    assert (await provider.chat(ask())).finish_reason == expected
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, ChatResponse)
    assert result.finish_reason == expected
    assert chunks[-1].finish_reason == expected


async def test_request_options_pass_through(stub: OllamaStub, provider: Ollama) -> None:
    request = ask(
        temperature=0.5,
        max_tokens=32,
        options={
            "keep_alive": "5m",
            "format": "json",
            "options": {"seed": 7, "num_ctx": 8192, "temperature": 0.1},
            "stream": True,  # never overrides the mode chat() was called in
        },
    )
    await provider.chat(request)
    body = last_body(stub)
    assert body["keep_alive"] == "5m"
    assert body["format"] == "json"
    assert body["options"] == {"temperature": 0.1, "num_predict": 32, "seed": 7, "num_ctx": 8192}
    assert body["stream"] is False


async def test_provider_protocol_and_repr(stub: OllamaStub) -> None:
    async with Ollama(base_url=stub.base_url, api_key="sk-secret-ollama") as adapter:
        assert isinstance(adapter, Provider)
        assert adapter.name == "ollama"
        assert "sk-secret-ollama" not in repr(adapter)
        assert "key set" in repr(adapter)


# -- tool calls -----------------------------------------------------------------------------


CALLS = (
    ToolCall("", "get_weather", {"city": "Paris"}),
    ToolCall("", "get_weather", {"city": "London", "units": {"temp": "C", "list": [1, 2]}}),
)


async def test_tool_calls_complete(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="", tool_calls=CALLS))
    response = await provider.chat(ask("Weather in Paris and London?", tools=[WEATHER]))

    assert response.finish_reason == "tool_calls"
    assert response.message.content == ""
    calls = response.message.tool_calls
    assert [call.name for call in calls] == ["get_weather", "get_weather"]
    assert calls[0].arguments == {"city": "Paris"}
    assert calls[1].arguments == {"city": "London", "units": {"temp": "C", "list": [1, 2]}}
    assert [call.id for call in calls] == [
        made_up(0, "get_weather", {"city": "Paris"}),
        made_up(1, "get_weather", dict(CALLS[1].arguments)),
    ]
    assert response.usage.output_tokens == 0  # no text: the stub leaves eval_count out

    body = last_body(stub)
    assert body["tools"] == [
        {
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
    ]


async def test_tool_calls_stream(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="Let me check.", tool_calls=CALLS), StubReply(tool_calls=CALLS))
    result, chunks = await streamed(provider, ask(tools=[WEATHER]))

    assert isinstance(result, ChatResponse)
    deltas = "".join(chunk.delta for chunk in chunks)
    assert deltas == "Let me check."
    tool_chunks = [chunk.tool_call for chunk in chunks if chunk.tool_call is not None]
    assert len(tool_chunks) == 2
    assert tool_chunks == list(result.message.tool_calls)
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    assert result.finish_reason == "tool_calls"
    assert result.message.content == "Let me check."

    # the made-up ids are the same whether the answer was streamed or not
    complete = await provider.chat(ask(tools=[WEATHER]))
    assert [call.id for call in complete.message.tool_calls] == [call.id for call in tool_chunks]


async def test_made_up_ids_are_stable_and_distinct(stub: OllamaStub, provider: Ollama) -> None:
    same = ToolCall("", "get_weather", {"city": "Paris"})
    stub.script(
        StubReply(tool_calls=[same, same]),
        StubReply(tool_calls=[same, same]),
        StubReply(tool_calls=[ToolCall("", "get_weather", {"city": "Rome"})]),
    )
    first = await provider.chat(ask(tools=[WEATHER]))
    second = await provider.chat(ask(tools=[WEATHER]))
    third = await provider.chat(ask(tools=[WEATHER]))
    ids = [call.id for call in first.message.tool_calls]
    assert ids == [call.id for call in second.message.tool_calls]
    assert len(set(ids)) == 2  # the same call twice still gets two ids
    assert third.message.tool_calls[0].id not in ids  # other arguments, other id
    assert all(re.fullmatch(r"call_\d+_[0-9a-f]{8}", call_id) for call_id in ids)


async def test_server_ids_are_kept() -> None:
    async with (
        OllamaStub(tool_call_ids=True) as stub,
        Ollama(base_url=stub.base_url) as provider,
    ):
        given = ToolCall("call_abc12345", "get_weather", {"city": "Oslo"})
        unnamed = ToolCall("", "get_weather", {"city": "Rome"})
        stub.script(StubReply(tool_calls=[given, unnamed]), StubReply(tool_calls=[given]))
        response = await provider.chat(ask(tools=[WEATHER]))
        ids = [call.id for call in response.message.tool_calls]
        assert ids[0] == "call_abc12345"
        assert re.fullmatch(r"call_[a-z0-9]{8}", ids[1])  # the server's own random id

        result, chunks = await streamed(provider, ask(tools=[WEATHER]))
        assert isinstance(result, ChatResponse)
        assert [chunk.tool_call for chunk in chunks if chunk.tool_call] == [given]


async def test_tool_round_trip_body(stub: OllamaStub, provider: Ollama) -> None:
    paris = ToolCall("call_0_aaaa", "get_weather", {"city": "Paris"})
    london = ToolCall("call_1_bbbb", "get_time", {"city": "London"})
    conversation = [
        Message.user("Weather in Paris, time in London?"),
        Message.assistant("Checking.", [paris, london]),
        Message.tool(paris, "18 C, sunny"),
        Message("tool", "14:05", tool_call_id="call_1_bbbb"),  # no name: found by id
        Message.user("Thanks"),
    ]
    stub.script(StubReply(text="You're welcome."))
    await provider.chat(ChatRequest(MODEL, conversation, tools=[WEATHER]))
    assert last_body(stub)["messages"] == [
        {"role": "user", "content": "Weather in Paris, time in London?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {"city": "London"}}},
            ],
        },
        {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "14:05", "tool_name": "get_time"},
        {"role": "user", "content": "Thanks"},
    ]


async def test_full_tool_loop(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(
        StubReply(tool_calls=[ToolCall("", "get_weather", {"city": "Paris"})]),
        StubReply(text="It is sunny in Paris."),
    )
    conversation = [Message.user("Weather in Paris?")]
    first = await provider.chat(ChatRequest(MODEL, conversation, tools=[WEATHER]))
    call = first.message.tool_calls[0]
    conversation += [first.message, Message.tool(call, "sunny, 21 C")]
    second = await provider.chat(ChatRequest(MODEL, conversation, tools=[WEATHER]))
    assert second.message.content == "It is sunny in Paris."
    messages = last_body(stub)["messages"]
    assert messages[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert messages[2] == {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"}


async def test_send_tool_call_ids(stub: OllamaStub) -> None:
    call = ToolCall("call_xyz", "get_weather", {"city": "Paris"})
    async with Ollama(base_url=stub.base_url, send_tool_call_ids=True) as provider:
        await provider.chat(
            ChatRequest(
                MODEL,
                [Message.user("?"), Message.assistant("", [call]), Message.tool(call, "sunny")],
            )
        )
    messages = last_body(stub)["messages"]
    assert messages[1]["tool_calls"] == [
        {"id": "call_xyz", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert messages[2] == {
        "role": "tool",
        "content": "sunny",
        "tool_name": "get_weather",
        "tool_call_id": "call_xyz",
    }


# -- hand-written wire replies ----------------------------------------------------------------


async def test_lenient_parsing_of_odd_but_valid_replies() -> None:
    done = {"model": "m", "message": {"role": "assistant", "content": "!"}, "done": True}
    async with (
        RawStub(
            ndjson(
                {
                    "model": "m",
                    "message": {"role": "assistant", "content": "Hi", "thinking": "."},
                    "done": False,
                    "unknown": 1,
                },
                {
                    "model": "m",
                    "message": {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"function": {"name": "f", "arguments": '{"a": 1}'}},
                            {"function": {"name": "g"}},
                        ],
                    },
                    "done": False,
                },
                done,  # content on the last line; no done_reason, no counters
            ),
        ) as stub,
        Ollama(base_url=stub.url) as provider,
    ):
        result, chunks = await streamed(provider, ask())
    assert isinstance(result, ChatResponse)
    assert result.message.content == "Hi!"
    assert [(call.name, dict(call.arguments)) for call in result.message.tool_calls] == [
        ("f", {"a": 1}),
        ("g", {}),
    ]
    assert result.finish_reason == "tool_calls"
    assert result.usage.total_tokens == 0
    assert result.model == "m"
    assert [chunk.delta for chunk in chunks if chunk.delta] == ["Hi", "!"]


@pytest.mark.parametrize(
    ("payload", "error", "status"),
    [
        ({"error": "boom"}, ServerError, 200),
        ({"error": "busy", "status": 503}, Overloaded, 503),
        ({"error": "slow down", "status": 429}, RateLimited, 429),
    ],
)
async def test_error_objects_in_200_replies(
    payload: dict[str, Any], error: type[ProviderError], status: int
) -> None:
    body = json.dumps(payload).encode()
    async with (
        RawStub(
            StubResponse(200, [("content-type", "application/json")], body),
            ndjson(payload),
        ) as stub,
        Ollama(base_url=stub.url) as provider,
    ):
        with pytest.raises(error) as caught:
            await provider.chat(ask())
        assert caught.value.status == status
        result, chunks = await streamed(provider, ask())
        assert isinstance(result, error)
        assert result.status == status
        assert chunks == []


@pytest.mark.parametrize(
    "line",
    [
        [1, 2],
        {"message": {"role": "assistant", "content": 5}, "done": False},
        {"message": {"role": "assistant", "content": "", "tool_calls": {"x": 1}}, "done": False},
        {"message": {"content": "", "tool_calls": [{"function": {"arguments": {}}}]}},
        {"message": {"content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}},
        {"message": {"content": "", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}},
        {"message": {"content": "", "tool_calls": ["f"]}},
    ],
)
async def test_shape_errors_are_protocol_errors(line: Any) -> None:
    async with RawStub(ndjson(line)) as stub, Ollama(base_url=stub.url) as provider:
        result, _ = await streamed(provider, ask())
    assert isinstance(result, ProtocolError)


async def test_reply_without_message_is_a_protocol_error() -> None:
    body = json.dumps({"model": "m", "done": True}).encode()
    async with (
        RawStub(StubResponse(200, [("content-type", "application/json")], body)) as stub,
        Ollama(base_url=stub.url) as provider,
    ):
        with pytest.raises(ProtocolError):
            await provider.chat(ask())


# -- base URL, OLLAMA_HOST and keys -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com:56789", "http://example.com:56789"),
        ("example.com:56789/path/", "http://example.com:56789/path"),
        ("http://example.com", "http://example.com"),
        ("https://example.com:8443/ollama", "https://example.com:8443/ollama"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
    ],
)
def test_parse_host_like_the_sdk(host: str, url: str) -> None:
    assert _parse_host(host) == url


async def test_default_base_url() -> None:
    async with Ollama() as provider:
        assert provider.base_url == "http://localhost:11434"


async def test_ollama_host_env(stub: OllamaStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{stub.port}")
    async with Ollama() as provider:
        assert provider.base_url == stub.base_url
        stub.script("from the env host")
        assert (await provider.chat(ask())).message.content == "from the env host"
    monkeypatch.setenv("OLLAMA_HOST", "http://elsewhere.invalid:1")
    async with Ollama(base_url=stub.base_url) as provider:  # an explicit base_url wins
        assert provider.base_url == stub.base_url
    async with Ollama(base_url=f"127.0.0.1:{stub.port}") as provider:  # no scheme: http
        assert provider.base_url == stub.base_url


async def test_api_key_from_env_and_argument(
    stub: OllamaStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "env-key-123")
    async with Ollama(base_url=stub.base_url) as provider:
        await provider.chat(ask())
        assert stub.requests[-1].headers["authorization"] == "Bearer env-key-123"
        assert "env-key-123" not in repr(provider)
    async with Ollama("arg-key-456", base_url=stub.base_url) as provider:
        await provider.chat(ask())
        assert stub.requests[-1].headers["authorization"] == "Bearer arg-key-456"


async def test_key_never_in_error_messages(stub: OllamaStub) -> None:
    stub.script(StubReply(fault=Fault.status_code(401, "unauthorized")))
    async with Ollama("arg-key-456", base_url=stub.base_url) as provider:
        with pytest.raises(AuthenticationError) as caught:
            await provider.chat(ask())
    assert "arg-key-456" not in str(caught.value)
    assert "arg-key-456" not in repr(caught.value)


# -- faults ------------------------------------------------------------------------------------


HTTP_FAULTS = [
    pytest.param(Fault.rate_limited(0.05), RateLimited, 429, "rate limit", id="429"),
    pytest.param(Fault.overloaded(0.05), Overloaded, 503, "server busy", id="503-busy"),
    pytest.param(Fault.server_error(), ServerError, 500, "internal server error", id="500"),
    pytest.param(Fault.server_error(502), ServerError, 502, "internal server error", id="502"),
    pytest.param(
        Fault.status_code(404, 'model "nope" not found, try pulling it first'),
        BadRequest,
        404,
        'model "nope" not found',
        id="404-model",
    ),
    pytest.param(Fault.status_code(400, "invalid options"), BadRequest, 400, "invalid", id="400"),
    pytest.param(
        Fault.status_code(401, "unauthorized"), AuthenticationError, 401, "unauth", id="401"
    ),
]


@pytest.mark.parametrize(("fault", "error", "status", "text"), HTTP_FAULTS)
async def test_http_faults_complete(
    stub: OllamaStub,
    provider: Ollama,
    fault: Fault,
    error: type[ProviderError],
    status: int,
    text: str,
) -> None:
    stub.script(StubReply(fault=fault))
    with pytest.raises(error) as caught:
        await provider.chat(ask())
    assert caught.value.status == status
    assert text in str(caught.value)
    if isinstance(caught.value, RateLimited | Overloaded):
        assert caught.value.retry_after == pytest.approx(0.05)
        assert caught.value.retryable


@pytest.mark.parametrize(("fault", "error", "status", "text"), HTTP_FAULTS)
async def test_http_faults_stream(
    stub: OllamaStub,
    provider: Ollama,
    fault: Fault,
    error: type[ProviderError],
    status: int,
    text: str,
) -> None:
    stub.script(StubReply(text="never sent", fault=fault))
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, error)
    assert result.status == status
    assert text in str(result)
    assert chunks == []


async def test_malformed(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(
        StubReply(text="hello", fault=Fault.malformed()),
        StubReply(text="hello", fault=Fault.malformed()),
    )
    with pytest.raises(ProtocolError, match="malformed JSON"):
        await provider.chat(ask())
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, ProtocolError)
    assert chunks == []


async def test_truncated_stream_clean_end(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="one two three four", chunk_size=4, fault=Fault.truncated(after=2)))
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, ProtocolError)
    assert "done" in str(result)
    assert [chunk.delta for chunk in chunks] == ["one ", "two "]
    assert all(chunk.finish_reason is None for chunk in chunks)


async def test_truncated_stream_cut_connection(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(
        StubReply(text="one two three four", fault=Fault.truncated(after=1, cut_connection=True))
    )
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, ProtocolError | ProviderConnectionError)
    assert [chunk.delta for chunk in chunks] == ["one "]


@pytest.mark.parametrize("cut", [False, True])
async def test_truncated_complete(stub: OllamaStub, provider: Ollama, cut: bool) -> None:
    stub.script(StubReply(text="hello there", fault=Fault.truncated(cut_connection=cut)))
    with pytest.raises(ProtocolError if not cut else (ProtocolError, ProviderConnectionError)):
        await provider.chat(ask())


async def test_error_in_stream(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(
        StubReply(
            text="one two three four",
            chunk_size=4,
            fault=Fault.error_in_stream(after=2, message="model runner has unexpectedly stopped"),
        )
    )
    result, chunks = await streamed(provider, ask())
    assert isinstance(result, ServerError)
    assert result.status == 200
    assert result.retryable
    assert "model runner has unexpectedly stopped" in str(result)
    assert [chunk.delta for chunk in chunks] == ["one ", "two "]


async def test_error_in_stream_without_streaming_is_a_500(
    stub: OllamaStub, provider: Ollama
) -> None:
    stub.script(StubReply(text="hi", fault=Fault.error_in_stream(after=1, message="oom")))
    with pytest.raises(ServerError, match="oom") as caught:
        await provider.chat(ask())
    assert caught.value.status == 500


async def test_connection_refused() -> None:
    async with OllamaStub() as stub:
        url = stub.base_url
    async with Ollama(base_url=url) as provider:
        with pytest.raises(ProviderConnectionError):
            await provider.chat(ask())


# -- the stream channel, cancellation and reuse ----------------------------------------------------


async def test_channel_closed_once_on_success(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="hello there"))
    channel = CountingChannel()
    response = await provider.chat(ask(), stream=channel)
    assert channel.closes == 1
    assert "".join(chunk.delta for chunk in channel.chunks) == response.message.content


async def test_channel_closed_once_on_error(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="hello there", fault=Fault.error_in_stream(after=1)))
    channel = CountingChannel()
    with pytest.raises(ServerError):
        await provider.chat(ask(), stream=channel)
    assert channel.closes == 1


async def test_channel_closed_once_on_cancellation(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="a b c d e f g h i j k l m n o p", chunk_size=2, delay=0.01))
    with trio.CancelScope() as scope:
        channel = CountingChannel(on_send=lambda chunk: scope.cancel())
        await provider.chat(ask(), stream=channel)
    assert scope.cancelled_caught
    assert channel.closes == 1
    assert len(channel.chunks) == 1


async def test_cancel_mid_stream_then_reuse(stub: OllamaStub, provider: Ollama) -> None:
    stub.script(StubReply(text="x" * 200, chunk_size=2, delay=0.01), StubReply(text="fresh answer"))
    send, receive = trio.open_memory_channel[Chunk](0)
    received: list[Chunk] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await provider.chat(ask(), stream=send)

            nursery.start_soon(call)
            async with receive:
                async for chunk in receive:
                    received.append(chunk)
                    scope.cancel()  # after the first chunk arrived
    assert scope.cancelled_caught
    assert len(received) == 1

    result, chunks = await streamed(provider, ask())  # same provider, full answer
    assert isinstance(result, ChatResponse)
    assert result.message.content == "fresh answer"
    assert chunks[-1].finish_reason == "stop"
    assert len(stub.requests) == 2


async def test_call_timeout(stub: OllamaStub) -> None:
    stub.script(StubReply(text="slow", delay=30), StubReply(text="quick"))
    async with Ollama(base_url=stub.base_url, call_timeout=0.05) as provider:
        with pytest.raises(ProviderTimeout):
            await provider.chat(ask())
        assert (await provider.chat(ask())).message.content == "quick"


async def test_concurrent_calls(stub: OllamaStub, provider: Ollama) -> None:
    answers: dict[int, str] = {}

    async def one(i: int) -> None:
        if i % 2:
            answers[i] = (await provider.chat(ask(f"number {i}"))).message.content
        else:
            result, _ = await streamed(provider, ask(f"number {i}"))
            assert isinstance(result, ChatResponse)
            answers[i] = result.message.content

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(one, i)
    assert answers == {i: f"You said: number {i}" for i in range(10)}


async def test_cancel_while_waiting_in_send_leaves_nothing_behind(
    stub: OllamaStub, provider: Ollama
) -> None:
    """The caller's cancellation while the adapter waits for a slow consumer: no stray
    async generators (trio would warn, an error here), and the provider is reusable."""
    stub.script(StubReply(text="a b c d e f", chunk_size=2), StubReply(text="again"))
    send, receive = trio.open_memory_channel[Chunk](0)  # nobody receives
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(provider.chat, ask(), stream=send))
            while send.statistics().tasks_waiting_send == 0:
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    gc.collect()
    receive.close()
    assert (await provider.chat(ask())).message.content == "again"


async def test_connection_cut_after_the_done_line_still_answers() -> None:
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": False},
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 3,
            "eval_count": 1,
        },
    ]

    async def body() -> AsyncIterator[bytes]:
        yield b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    cut = StubResponse(200, [("content-type", "application/x-ndjson")], body(), cut_connection=True)
    async with RawStub(cut) as stub, Ollama(base_url=stub.url) as provider:
        result, chunks = await streamed(provider, ask())
    assert isinstance(result, ChatResponse)
    assert result.message.content == "Hi"
    assert result.usage.input_tokens == 3
    assert chunks[-1].finish_reason == "stop"
