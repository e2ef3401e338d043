"""The HTTP adapter base: error mapping, Retry-After, SSE parsing, deadlines, keys."""

from __future__ import annotations

import email.utils
import math
import time

import httpx
import pytest
import trio
import trio.testing

from tinyagents.errors import (
    AuthenticationError,
    BadRequest,
    Overloaded,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from tinyagents.llm import ChatRequest, Chunk, Message
from tinyagents.llm._http import error_for_status, iter_sse, retry_after_from
from tinyagents.llm.openai import OpenAI

REQUEST = ChatRequest(model="m", messages=[Message.user("hi")])


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, BadRequest, False),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, BadRequest, False),
        (408, ProviderTimeout, True),
        (409, BadRequest, True),
        (422, BadRequest, False),
        (429, RateLimited, True),
        (500, ServerError, True),
        (503, ServerError, True),
        (529, Overloaded, True),
    ],
)
def test_error_for_status(status: int, kind: type, retryable: bool) -> None:
    error = error_for_status("p", status, "boom", {"retry-after": "2"})
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.status == status
    assert "boom" in str(error)
    assert "HTTP" in str(error)


def test_quota_exhaustion_is_not_retryable() -> None:
    error = error_for_status("p", 429, "quota", {}, quota_exhausted=True)
    assert isinstance(error, RateLimited)
    assert error.quota_exhausted
    assert not error.retryable


def test_retry_after_forms() -> None:
    assert retry_after_from({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_from({"retry-after": "3"}) == 3.0
    assert retry_after_from({"retry-after": "0.25"}) == 0.25
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_from({"retry-after": later}) or 0) <= 30
    assert retry_after_from({"retry-after": "soon"}) is None
    assert retry_after_from({"retry-after": "-1"}) is None
    assert retry_after_from({"retry-after-ms": "nan", "retry-after": "2"}) == 2.0
    assert retry_after_from({}) is None


async def test_sse_parsing_rules() -> None:
    body = (
        b": a comment\n"
        b"event: first\n"
        b"data: line one\n"
        b"data: line two\n"
        b"\n"
        b"data:no space\n"
        b"id: 7\n"
        b"\n"
        b"data: unterminated"
    )
    response = httpx.Response(200, content=body)
    events = [event async for event in iter_sse(response)]
    assert [(e.event, e.data) for e in events] == [
        ("first", "line one\nline two"),
        ("message", "no space"),
        ("message", "unterminated"),
    ]


async def test_call_timeout_raises_provider_timeout_and_closes_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep(math.inf)
        raise AssertionError("unreachable")  # pragma: no cover

    provider = OpenAI(
        api_key="sk-secret-value-123456",
        base_url="http://127.0.0.1:9/v1",
        call_timeout=5.0,
        transport=httpx.MockTransport(hang),
    )
    async with provider:
        start = trio.current_time()
        with pytest.raises(ProviderTimeout, match="call_timeout=5s"):
            await provider.chat(REQUEST)
        assert trio.current_time() - start == 5.0
        send, receive = trio.open_memory_channel[Chunk](math.inf)
        with pytest.raises(ProviderTimeout):
            await provider.chat(REQUEST, stream=send)
        assert [chunk async for chunk in receive] == []  # closed


async def test_a_caller_deadline_cancels_a_call(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def slow_then_fine(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await trio.sleep(math.inf)
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    async with OpenAI(
        api_key="k", base_url="http://127.0.0.1:9/v1", transport=httpx.MockTransport(slow_then_fine)
    ) as provider:
        with trio.move_on_after(2.0) as scope:
            await provider.chat(REQUEST)
        assert scope.cancelled_caught
        assert (await provider.chat(REQUEST)).message.content == "ok"  # reusable


def test_keys_stay_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0000")
    provider = OpenAI()
    assert "sk-from" not in repr(provider)
    assert "key set" in repr(provider)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert "key unset" in repr(OpenAI())


async def test_a_missing_key_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with OpenAI(base_url="http://127.0.0.1:9/v1") as provider:
        with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
            await provider.chat(REQUEST)
