"""The provider-neutral values: unknown usage and its sums, and constructors that say
what is wrong; every adapter reports a reply without usage as unknown, not as zero."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tinyagents.llm import (
    ChatRequest,
    ChatResponse,
    Chunk,
    Log,
    Message,
    RateLimit,
    ToolCall,
    ToolSpec,
    Usage,
)
from tinyagents.llm._http import HTTPProvider
from tinyagents.llm.anthropic import Anthropic
from tinyagents.llm.mistral import Mistral
from tinyagents.llm.ollama import Ollama
from tinyagents.llm.openai import OpenAI
from tinyagents.llm.openrouter import OpenRouter
from tinyagents.testing import ScriptedProvider

# -- Usage -------------------------------------------------------------------------------


def test_unknown_usage_is_not_zero_and_says_so() -> None:
    unknown = Usage.unknown()
    assert unknown != Usage()
    assert not unknown.known
    assert Usage(3, 4).known
    assert unknown.total_tokens == 0
    assert str(unknown) == "usage not reported"
    assert str(Usage(3, 4)) == "3 in / 4 out tokens"
    assert repr(Usage(3, 4)) == "Usage(input_tokens=3, output_tokens=4)"
    assert repr(unknown) == "Usage(input_tokens=0, output_tokens=0, unreported=1)"


def test_sums_keep_what_is_known_and_count_what_is_not() -> None:
    total = Usage(5, 2) + Usage.unknown() + Usage(1, 1)
    assert total == Usage(6, 3, unreported=1)
    assert not total.known
    assert total.total_tokens == 9  # a lower bound
    assert str(total) == "at least 6 in / 3 out tokens (1 call did not report usage)"
    assert sum([Usage.unknown(), Usage.unknown()]) == Usage(unreported=2)
    assert sum([Usage(1, 2), Usage(3, 4)], Usage()) == Usage(4, 6)
    assert str(Usage(unreported=2)) == "usage not reported (2 calls)"
    assert Usage() + Usage() == Usage()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Usage(-1, 0), ValueError, "input_tokens"),
        (lambda: Usage(1, "2"), TypeError, "output_tokens"),
        (lambda: Usage(1, 2, unreported=True), TypeError, "unreported"),
        (lambda: ToolCall("id", "", {}), ValueError, "name must not be empty"),
        (lambda: ToolCall("id", "f", "{}"), TypeError, "mapping"),
        (lambda: ToolCall(None, "f"), TypeError, "ToolCall id must be a string"),
        (lambda: ToolSpec(""), ValueError, "ToolSpec name"),
        (lambda: ToolSpec("f", parameters=[1]), TypeError, "mapping"),
        (lambda: Message("user", None), TypeError, "Message content must be a string"),
        (lambda: Message("user", tool_calls=[ToolCall("a", "f")]), ValueError, "only an"),
        (lambda: Message("assistant", tool_calls=["f"]), TypeError, "ToolCall"),
        (lambda: Message("tool", "r", tool_call_id=7), TypeError, "tool_call_id"),
        (lambda: ChatRequest("m", "hello"), TypeError, "sequence of Message"),
        (lambda: ChatRequest("m", Message.user("hi")), TypeError, "sequence of Message"),
        (lambda: ChatRequest("m", ["hello"]), TypeError, "hold Message"),
        (lambda: ChatRequest("m", []), ValueError, "at least one message"),
        (lambda: ChatRequest("", [Message.user("hi")]), ValueError, "model name"),
        (lambda: ChatRequest(None, [Message.user("hi")]), TypeError, "model"),
        (lambda: ChatRequest("m", [Message.user("x")], tools=["f"]), TypeError, "ToolSpec"),
        (lambda: ChatRequest("m", [Message.user("x")], temperature=-1), ValueError, "temper"),
        (lambda: ChatRequest("m", [Message.user("x")], temperature="0"), TypeError, "temper"),
        (lambda: ChatRequest("m", [Message.user("x")], max_tokens=0), ValueError, "max_tok"),
        (lambda: ChatRequest("m", [Message.user("x")], max_tokens=1.5), TypeError, "max_tok"),
        (lambda: ChatRequest("m", [Message.user("x")], stop=[1]), TypeError, "stop"),
        (lambda: ChatRequest("m", [Message.user("x")], options=["a"]), TypeError, "mapping"),
        (lambda: ChatResponse("hi"), TypeError, "message"),
        (lambda: ChatResponse(Message.assistant("hi"), (1, 2)), TypeError, "usage"),
        (lambda: Chunk(delta=None), TypeError, "Chunk delta"),
        (lambda: Chunk(usage=(1, 2)), TypeError, "usage"),
    ],
)
def test_constructors_say_what_is_wrong(
    make: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


def test_valid_values_still_build() -> None:
    request = ChatRequest(
        "m",
        (Message.system("s"), Message.user("u")),
        tools=[ToolSpec("f")],
        temperature=0,
        max_tokens=5,
        stop="END",
        options={"seed": 1},
    )
    assert request.stop == ("END",)
    assert Message.tool(ToolCall("", "f"), "ok").tool_call_id == ""
    assert ChatResponse(Message.assistant("hi")).usage == Usage.unknown()


# -- every adapter: a reply without usage is unknown ---------------------------------------


def sse(*frames: tuple[str | None, Any]) -> bytes:
    out = []
    for event, data in frames:
        head = f"event: {event}\n" if event else ""
        body = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{head}data: {body}\n\n")
    return "".join(out).encode()


def openai_reply(stream: bool, usage: dict[str, Any] | None = None) -> httpx.Response:
    extra = {"usage": usage} if usage is not None else {}
    if not stream:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi there"},
                    "finish_reason": "stop",
                }
            ],
            **extra,
        }
        return httpx.Response(200, json=body)
    frame = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
    content = sse(
        (None, {**frame, "choices": [{"index": 0, "delta": {"content": "Hi "}}]}),
        (None, {**frame, "choices": [{"index": 0, "delta": {"content": "there"}}]}),
        (None, {**frame, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        (None, "[DONE]"),
    )
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


def anthropic_reply(stream: bool, usage: dict[str, Any] | None = None) -> httpx.Response:
    extra = {"usage": usage} if usage is not None else {}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m"}
    if not stream:
        body = {
            **message,
            "content": [{"type": "text", "text": "Hi there"}],
            "stop_reason": "end_turn",
            **extra,
        }
        return httpx.Response(200, json=body)
    content = sse(
        ("message_start", {"type": "message_start", "message": {**message, "content": []}}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi there"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
        ("message_stop", {"type": "message_stop"}),
    )
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


def ollama_reply(stream: bool, usage: dict[str, Any] | None = None) -> httpx.Response:
    extra = usage or {}
    final = {
        "model": "m",
        "message": {"role": "assistant", "content": "" if stream else "Hi there"},
        "done": True,
        "done_reason": "stop",
        **extra,
    }
    if not stream:
        return httpx.Response(200, json=final)
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": "Hi there"}, "done": False},
        final,
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return httpx.Response(200, headers={"content-type": "application/x-ndjson"}, content=content)


Reply = Callable[..., httpx.Response]
ADAPTERS: list[tuple[type[HTTPProvider], Reply]] = [
    (OpenAI, openai_reply),
    (OpenRouter, openai_reply),
    (Mistral, openai_reply),
    (Anthropic, anthropic_reply),
    (Ollama, ollama_reply),
]


def adapter(cls: type[HTTPProvider], reply: Callable[[bool], httpx.Response]) -> HTTPProvider:
    def handle(request: httpx.Request) -> httpx.Response:
        return reply(bool(json.loads(request.content).get("stream")))

    return cls(api_key="k", base_url="http://llm.test", transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(("cls", "reply"), ADAPTERS, ids=lambda value: getattr(value, "name", ""))
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "streamed"])
async def test_a_reply_without_usage_reports_unknown_usage(
    cls: type[HTTPProvider], reply: Reply, streaming: bool
) -> None:
    async with adapter(cls, reply) as provider:
        request = ChatRequest("m", [Message.user("hello")])
        if streaming:
            send, receive = trio.open_memory_channel[Chunk](math.inf)
            response = await provider.chat(request, stream=send)
            chunks = [chunk async for chunk in receive]
            assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage.unknown())
        else:
            response = await provider.chat(request)
    assert response.message.content == "Hi there"
    assert response.usage == Usage.unknown()
    assert not response.usage.known


@pytest.mark.parametrize(
    ("cls", "reply", "usage", "expected"),
    [
        (OpenAI, openai_reply, {"prompt_tokens": 4, "completion_tokens": 2}, Usage(4, 2)),
        (OpenAI, openai_reply, {"completion_tokens": 2}, Usage(0, 2, unreported=1)),
        (Mistral, openai_reply, {"prompt_tokens": 4}, Usage(4, 0, unreported=1)),
        (Anthropic, anthropic_reply, {"input_tokens": 4, "output_tokens": 2}, Usage(4, 2)),
        (Anthropic, anthropic_reply, {"input_tokens": 4}, Usage(4, 0, unreported=1)),
        # Ollama leaves out zero counters (Go's omitempty): with other metrics there,
        # an absent counter is a reported zero
        (Ollama, ollama_reply, {"total_duration": 5, "eval_count": 2}, Usage(0, 2)),
    ],
)
async def test_partly_reported_usage_keeps_what_was_reported(
    cls: type[HTTPProvider], reply: Reply, usage: dict[str, Any], expected: Usage
) -> None:
    async with adapter(cls, lambda stream: reply(False, usage)) as provider:
        response = await provider.chat(ChatRequest("m", [Message.user("hello")]))
    assert response.usage == expected


# -- unknown usage through the middleware ----------------------------------------------------


def answering(*usages: Usage) -> ScriptedProvider:
    return ScriptedProvider([ChatResponse(Message.assistant("ok"), usage) for usage in usages])


async def test_rate_limit_keeps_the_estimate_for_unknown_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = answering(Usage.unknown(), Usage(120, 0, unreported=1), Usage(1, 1))
    limited = RateLimit(provider, tokens_per_minute=60, estimate=lambda r: 90)
    request = ChatRequest("m", [Message.user("hi")])
    times = []
    for _ in range(3):
        await limited.chat(request)
        times.append(trio.current_time())
    # 60 - 90 = -30 kept (unknown usage is not taken as zero: nothing is given back);
    # after 30 s: 0 - 90, and a partial usage of 120 > 90 is charged in full: -120
    assert times == [pytest.approx(0), pytest.approx(30), pytest.approx(150)]


async def test_log_says_the_usage_was_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tinyagents.llm")
    provider = Log(answering(Usage.unknown(), Usage(3, 4)))
    request = ChatRequest("m", [Message.user("hi")])
    await provider.chat(request)
    await provider.chat(request)
    unknown, known = caplog.records
    assert unknown.getMessage().endswith("usage not reported")
    assert (unknown.llm_input_tokens, unknown.llm_output_tokens) == (None, None)  # type: ignore[attr-defined]
    assert known.getMessage().endswith("3 in / 4 out tokens")
    assert (known.llm_input_tokens, known.llm_output_tokens) == (3, 4)  # type: ignore[attr-defined]
