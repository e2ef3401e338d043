"""LLM middleware: Log, Retry, RateLimit, Fallback, alone and chained, on trio's mock clock.

No socket I/O here, so timing runs on ``autojump_clock`` and the asserted times are
exact: ``trio.sleep`` deadlines are reached exactly by the mock clock.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
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
from tinyagents.llm import ChatRequest, ChatResponse, Chunk, Message, Provider, ToolCall, Usage
from tinyagents.llm._forward import ForwardingChannel as Relay
from tinyagents.llm._http import close_stream, error_for_status
from tinyagents.llm.middleware import Fallback, Log, RateLimit, Retry, estimate_tokens
from tinyagents.llm.middleware import _redact as redact
from tinyagents.testing import ScriptedProvider

LOGGER = "tests.llm.middleware"


def exact(value: float) -> Any:
    """An exact time on the mock clock, give or take float rounding."""
    return pytest.approx(value, abs=1e-9)


def request(text: str = "hello there", model: str = "model-a", **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message.user(text),), **kwargs)


# -- fakes -----------------------------------------------------------------------------


@attrs.frozen
class Step:
    """One call of a Fake: optional ``delay`` before each chunk (and before answering),
    the text ``chunks`` (sent only when streaming), then ``error`` raised, or an answer
    whose text is the chunks joined."""

    chunks: tuple[str, ...] = ()
    error: BaseException | None = None
    usage: Usage = attrs.field(factory=lambda: Usage(3, 5))
    delay: float = 0.0


class Fake:
    """A provider that plays Steps and records when it was called and with what."""

    def __init__(self, *steps: Step, name: str = "fake", default: Step | None = None) -> None:
        self.name = name
        self.steps: deque[Step] = deque(steps)
        self.default = default
        self.calls: list[float] = []
        self.requests: list[ChatRequest] = []

    async def chat(
        self, request: ChatRequest, *, stream: trio.abc.SendChannel[Chunk] | None = None
    ) -> ChatResponse:
        try:
            self.calls.append(trio.current_time())
            self.requests.append(request)
            if self.steps:
                step = self.steps.popleft()
            elif self.default is not None:
                step = self.default
            else:
                raise AssertionError(f"{self.name}: unexpected call")
            await trio.lowlevel.checkpoint()
            for piece in step.chunks:
                if step.delay:
                    await trio.sleep(step.delay)
                if stream is not None:
                    await stream.send(Chunk(delta=piece))
            if step.error is not None:
                raise step.error
            if step.delay and not step.chunks:
                await trio.sleep(step.delay)
            if stream is not None:
                await stream.send(Chunk(finish_reason="stop", usage=step.usage))
            text = "".join(step.chunks)
            return ChatResponse(Message.assistant(text), step.usage, "stop", request.model)
        finally:
            await close_stream(stream)


class Counting(trio.abc.SendChannel[Chunk]):
    """The caller's channel: forwards to a memory channel and counts ``aclose`` calls."""

    def __init__(self, inner: trio.MemorySendChannel[Chunk]) -> None:
        self.inner = inner
        self.closes = 0

    async def send(self, value: Chunk) -> None:
        await self.inner.send(value)

    async def aclose(self) -> None:
        self.closes += 1
        self.inner.close()
        await trio.lowlevel.checkpoint()


def channel() -> tuple[Counting, trio.MemoryReceiveChannel[Chunk]]:
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    return Counting(send), receive


def drain(receive: trio.MemoryReceiveChannel[Chunk]) -> list[Chunk]:
    """Everything sent; fails if the channel was not closed."""
    out: list[Chunk] = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except trio.EndOfChannel:
            return out
        except trio.WouldBlock:
            raise AssertionError("the caller's stream was not closed") from None


def deltas(chunks: Sequence[Chunk]) -> list[str]:
    return [c.delta for c in chunks if c.delta]


def fast_retry(provider: Provider, **kwargs: Any) -> Retry:
    return Retry(provider, **{"jitter": 0.0, **kwargs})


# -- the relay ---------------------------------------------------------------------------


async def test_relay_forwards_counts_and_does_not_close_the_callers_channel() -> None:
    send, receive = channel()
    relay = Relay(send)
    await relay.send(Chunk(delta="a"))
    await relay.aclose()
    assert relay.sent == 1
    assert send.closes == 0
    with pytest.raises(trio.ClosedResourceError):
        await relay.send(Chunk(delta="late"))
    assert relay.sent == 1
    await send.aclose()
    assert deltas(drain(receive)) == ["a"]


# -- Retry -----------------------------------------------------------------------------


async def test_retry_backoff_delays_are_exact_without_jitter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(
        Step(error=ServerError("fake", "a")),
        Step(error=ProviderConnectionError("fake", "b")),
        Step(error=ProviderTimeout("fake", "c")),
        Step(chunks=("ok",)),
    )
    retry = fast_retry(fake, max_attempts=4)
    response = await retry.chat(request())
    assert response.message.content == "ok"
    assert fake.calls == [exact(0), exact(0.5), exact(1.5), exact(3.5)]


async def test_retry_backoff_is_capped_at_maximum(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(*[Step(error=ServerError("fake", "x"))] * 4, Step(chunks=("ok",)))
    retry = fast_retry(fake, max_attempts=5, initial=1.0, multiplier=10.0, maximum=3.0)
    await retry.chat(request())
    gaps = [b - a for a, b in itertools.pairwise(fake.calls)]
    assert gaps == [exact(1.0), exact(3.0), exact(3.0), exact(3.0)]


async def test_retry_jitter_stays_in_bounds_and_is_reproducible(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def gaps(seed: int) -> list[float]:
        fake = Fake(*[Step(error=ServerError("fake", "x"))] * 5, Step(chunks=("ok",)))
        retry = Retry(fake, max_attempts=6, jitter=0.25, rng=random.Random(seed))
        await retry.chat(request())
        return [b - a for a, b in itertools.pairwise(fake.calls)]

    first = await gaps(7)
    for gap, base in zip(first, [0.5, 1.0, 2.0, 4.0, 8.0], strict=True):
        assert base * 0.75 - 1e-9 <= gap <= base + 1e-9
    assert len({round(g / b, 9) for g, b in zip(first, [0.5, 1, 2, 4, 8], strict=True)}) > 1
    assert await gaps(7) == [exact(g) for g in first]


def test_retry_backoff_method() -> None:
    retry = Retry(ScriptedProvider(), jitter=0.0)
    assert [retry.backoff(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert retry.backoff(5000) == 8.0
    with pytest.raises(ValueError, match="retry must be >= 1"):
        retry.backoff(0)
    jittered = Retry(ScriptedProvider(), rng=random.Random(1))
    assert all(0.375 <= jittered.backoff(1) <= 0.5 for _ in range(100))


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("fake", "slow down", retry_after=2.5),
        Overloaded("fake", "overloaded", retry_after=2.5),
    ],
    ids=["rate-limited", "overloaded"],
)
async def test_retry_waits_exactly_retry_after(
    autojump_clock: trio.testing.MockClock, error: ProviderError
) -> None:
    fake = Fake(Step(error=error), Step(chunks=("ok",)))
    await fast_retry(fake).chat(request())
    assert fake.calls == [exact(0), exact(2.5)]


async def test_retry_after_wins_over_backoff_and_jitter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(
        Step(error=RateLimited("fake", "slow", retry_after=0.1)),
        Step(error=ServerError("fake", "x")),
        Step(chunks=("ok",)),
    )
    await Retry(fake, rng=random.Random(3), jitter=0.5, initial=1.0).chat(request())
    gaps = [b - a for a, b in itertools.pairwise(fake.calls)]
    assert gaps[0] == exact(0.1)  # retry_after exactly, no jitter
    assert 0.5 - 1e-9 <= gaps[1] <= 2.0 + 1e-9  # backoff of retry 2: 2.0 minus up to 50 %


async def test_retry_after_up_to_the_cap_is_honoured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(Step(error=RateLimited("fake", "slow", retry_after=60.0)), Step(chunks=("ok",)))
    await fast_retry(fake).chat(request())
    assert fake.calls == [exact(0), exact(60.0)]


async def test_retry_after_above_the_cap_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = RateLimited("fake", "come back tomorrow", retry_after=120.0)
    fake = Fake(Step(error=error), Step(chunks=("never",)))
    with pytest.raises(RateLimited) as caught:
        await fast_retry(fake, max_retry_after=60.0).chat(request())
    assert caught.value is error
    assert fake.calls == [exact(0)]
    assert trio.current_time() == exact(0)
    assert any("max_retry_after=60s" in note for note in error.__notes__)


@pytest.mark.parametrize("retry_after", [None, 0.0, -1.0, math.nan])
async def test_retry_after_absent_or_not_positive_uses_backoff(
    autojump_clock: trio.testing.MockClock, retry_after: float | None
) -> None:
    fake = Fake(
        Step(error=RateLimited("fake", "slow", retry_after=retry_after)), Step(chunks=("ok",))
    )
    await fast_retry(fake).chat(request())
    assert fake.calls == [exact(0), exact(0.5)]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 529], ids=lambda s: f"http-{s}")
async def test_retry_retries_the_retryable_statuses(
    autojump_clock: trio.testing.MockClock, status: int
) -> None:
    error = error_for_status("fake", status, "try again")
    assert error.retryable
    fake = Fake(Step(error=error), Step(chunks=("ok",)))
    response = await fast_retry(fake).chat(request())
    assert response.message.content == "ok"
    assert len(fake.calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("fake", "bad", status=400),
        error_for_status("fake", 422, "invalid"),
        AuthenticationError("fake", "no key", status=401),
        ProtocolError("fake", "malformed"),
        RateLimited("fake", "no credit", quota_exhausted=True, retry_after=1.0),
        ServerError("fake", "told not to", retryable=False),
        ValueError("not a provider error"),
    ],
    ids=["400", "422", "401", "protocol", "quota", "retryable-false", "other"],
)
async def test_retry_does_not_retry_other_errors(
    autojump_clock: trio.testing.MockClock, error: Exception
) -> None:
    fake = Fake(Step(error=error), Step(chunks=("never",)))
    send, receive = channel()
    with pytest.raises(type(error)) as caught:
        await fast_retry(fake).chat(request(), stream=send)
    assert caught.value is error
    assert len(fake.calls) == 1
    assert trio.current_time() == exact(0)
    assert send.closes == 1
    assert drain(receive) == []


async def test_retry_raises_the_last_error_with_the_attempt_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors = [ServerError("fake", f"failure {i}") for i in range(3)]
    fake = Fake(*[Step(error=e) for e in errors])
    with pytest.raises(ServerError) as caught:
        await fast_retry(fake, max_attempts=3).chat(request())
    assert caught.value is errors[-1]
    assert caught.value.__notes__ == ["Retry: 3 attempts made; gave up (max_attempts=3)"]
    assert fake.calls == [exact(0), exact(0.5), exact(1.5)]


async def test_retry_notes_a_non_retryable_error_after_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(Step(error=ServerError("fake", "x")), Step(error=BadRequest("fake", "bad")))
    with pytest.raises(BadRequest) as caught:
        await fast_retry(fake).chat(request())
    assert "2 attempts made" in caught.value.__notes__[0]


async def test_retry_with_one_attempt_does_not_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(Step(error=ServerError("fake", "x")))
    with pytest.raises(ServerError):
        await fast_retry(fake, max_attempts=1).chat(request())
    assert len(fake.calls) == 1


async def test_retry_with_scripted_provider(autojump_clock: trio.testing.MockClock) -> None:
    scripted = ScriptedProvider([Overloaded("scripted", "busy", retry_after=1.0), "fine"])
    response = await fast_retry(scripted).chat(request())
    assert response.message.content == "fine"
    assert len(scripted.requests) == 2
    assert trio.current_time() == exact(1.0)


async def test_retry_stream_failed_before_any_chunk_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(
        Step(error=ServerError("fake", "x")),
        Step(error=Overloaded("fake", "busy", retry_after=1.0)),
        Step(chunks=("Hel", "lo")),
    )
    send, receive = channel()
    response = await fast_retry(fake).chat(request(), stream=send)
    chunks = drain(receive)
    assert deltas(chunks) == ["Hel", "lo"]
    assert chunks[-1].finish_reason == "stop"
    assert len(chunks) == 3
    assert response.message.content == "Hello"
    assert send.closes == 1
    assert fake.calls == [exact(0), exact(0.5), exact(1.5)]


async def test_retry_stream_failed_after_a_chunk_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = ServerError("fake", "broke mid-stream", status=200)
    fake = Fake(Step(chunks=("par",), error=error), Step(chunks=("never",)))
    send, receive = channel()
    with pytest.raises(ServerError) as caught:
        await fast_retry(fake).chat(request(), stream=send)
    assert caught.value is error
    assert "1 chunk(s) had reached the caller" in error.__notes__[0]
    assert len(fake.calls) == 1
    assert deltas(drain(receive)) == ["par"]
    assert send.closes == 1


async def test_retry_stream_into_a_plain_memory_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scripted = ScriptedProvider([ServerError("scripted", "x"), "streamed answer"], chunk_size=5)
    send, receive = trio.open_memory_channel[Chunk](math.inf)
    await fast_retry(scripted).chat(request(), stream=send)
    assert "".join(deltas(drain(receive))) == "streamed answer"


async def test_retry_cancelled_during_backoff(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(Step(error=ServerError("fake", "x")), Step(chunks=("never",)))
    send, receive = channel()
    with trio.move_on_after(0.2) as scope:
        await fast_retry(fake).chat(request(), stream=send)
    assert scope.cancelled_caught
    assert trio.current_time() == exact(0.2)
    assert len(fake.calls) == 1
    assert send.closes == 1
    assert drain(receive) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial": -1.0},
        {"initial": 2.0, "maximum": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"max_retry_after": -1.0},
    ],
)
def test_retry_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        Retry(ScriptedProvider(), **kwargs)


# -- Log ---------------------------------------------------------------------------------


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def field(record: logging.LogRecord, name: str) -> Any:
    return record.__dict__[name]


@pytest.fixture
def log_capture(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


async def test_log_success_record(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    fake = Fake(Step(chunks=("the answer",), usage=Usage(12, 40), delay=1.5), name="openai")
    log = Log(fake, logger=logging.getLogger(LOGGER))
    assert log.name == "openai"
    await log.chat(request("a secret question", model="gpt-x"))
    (record,) = records(log_capture)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "openai gpt-x: stop in 1.500s, 12 in / 40 out tokens"
    assert field(record, "llm_provider") == "openai"
    assert field(record, "llm_model") == "gpt-x"
    assert field(record, "llm_response_model") == "gpt-x"
    assert field(record, "llm_duration") == exact(1.5)
    assert field(record, "llm_input_tokens") == 12
    assert field(record, "llm_output_tokens") == 40
    assert field(record, "llm_finish_reason") == "stop"
    assert field(record, "llm_stream") is False
    assert field(record, "llm_outcome") == "ok"
    assert field(record, "llm_error_type") is None
    assert field(record, "llm_chunks") is None
    assert "llm_messages" not in record.__dict__
    everything = repr(record.__dict__) + record.getMessage()
    assert "secret question" not in everything
    assert "the answer" not in everything


async def test_log_streamed_call(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    fake = Fake(Step(chunks=("a", "b", "c"), delay=0.25))
    send, receive = channel()
    await Log(fake, logger=logging.getLogger(LOGGER), level=logging.DEBUG).chat(
        request(), stream=send
    )
    (record,) = records(log_capture)
    assert record.levelno == logging.DEBUG
    assert field(record, "llm_stream") is True
    assert field(record, "llm_chunks") == 4
    assert field(record, "llm_first_chunk") == exact(0.25)
    assert field(record, "llm_duration") == exact(0.75)
    assert record.getMessage().endswith("(streamed, 4 chunks)")
    assert deltas(drain(receive)) == ["a", "b", "c"]
    assert send.closes == 1


async def test_log_failure_is_a_warning_with_the_key_redacted(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
    error = RateLimited(
        "openai", f"upstream echoed 'Authorization: Bearer {key}' and api_key={key[3:]}"
    )
    fake = Fake(Step(error=error), name="openai")
    send, receive = channel()
    with pytest.raises(RateLimited) as caught:
        await Log(fake, logger=logging.getLogger(LOGGER)).chat(request(), stream=send)
    assert caught.value is error  # propagates unchanged
    (record,) = records(log_capture)
    assert record.levelno == logging.WARNING
    assert field(record, "llm_outcome") == "error"
    assert field(record, "llm_error_type") == "RateLimited"
    assert field(record, "llm_status") == 429
    assert field(record, "llm_input_tokens") is None
    assert "upstream echoed" in field(record, "llm_error")
    assert "[REDACTED]" in field(record, "llm_error")
    assert record.exc_info is None
    message = record.getMessage()
    assert message.startswith("openai model-a: failed after 0.000s: RateLimited: openai (HTTP 429)")
    for text in (message, repr(record.__dict__)):
        assert "abcdefghijklmnop" not in text
    assert send.closes == 1
    assert drain(receive) == []


async def test_log_other_exceptions_and_a_high_level(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    fake = Fake(Step(error=KeyError("oops")))
    with pytest.raises(KeyError):
        await Log(fake, logger=logging.getLogger(LOGGER), level=logging.ERROR).chat(request())
    (record,) = records(log_capture)
    assert record.levelno == logging.ERROR
    assert field(record, "llm_error_type") == "KeyError"
    assert field(record, "llm_status") is None


async def test_log_cancelled_call(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    fake = Fake(Step(chunks=("a", "b"), delay=1.0))
    send, receive = channel()
    with trio.move_on_after(1.5):
        await Log(fake, logger=logging.getLogger(LOGGER)).chat(request(), stream=send)
    (record,) = records(log_capture)
    assert record.levelno == logging.INFO
    assert field(record, "llm_outcome") == "cancelled"
    assert field(record, "llm_duration") == exact(1.5)
    assert field(record, "llm_chunks") == 1
    assert record.getMessage() == "fake model-a: cancelled after 1.500s (streamed, 1 chunks)"
    assert deltas(drain(receive)) == ["a"]
    assert send.closes == 1


async def test_log_include_content(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    call = ToolCall("c1", "lookup", {"q": "weather"})
    scripted = ScriptedProvider(
        [ChatResponse(Message.assistant("it is sunny", [call]), Usage(1, 2), "tool_calls")]
    )
    log = Log(scripted, logger=logging.getLogger(LOGGER), include_content=True)
    await log.chat(
        ChatRequest(
            model="m",
            messages=(
                Message.system("be brief"),
                Message.user("my key is sk-abcdefghijkl123456"),
            ),
        )
    )
    (record,) = records(log_capture)
    assert field(record, "llm_messages") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "my key is [REDACTED]"},
    ]
    assert field(record, "llm_response") == 'it is sunny [tool call lookup({"q": "weather"})]'
    message = record.getMessage()
    assert "\n  system: be brief" in message
    assert "\n  -> it is sunny" in message
    assert "abcdefghijkl" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123def456ghi", "Authorization: Bearer [REDACTED]"),
        ("bearer eyJhbGciOi.J9.abc-_def", "bearer [REDACTED]"),
        ("key sk-ant-api03-AbCdEf_123-xyz rejected", "key [REDACTED] rejected"),
        ("invalid key sk-or-v1-0123456789abcdef", "invalid key [REDACTED]"),
        ('{"api_key": "AKIA1234567890"}', '{"api_key": "[REDACTED]"}'),
        ("x-api-key: 0123456789abcdef", "x-api-key: [REDACTED]"),
        ("GET /v1/models?key=AIzaSyA1234567890", "GET /v1/models?key=[REDACTED]"),
        ("access_token=ya29.a0Af_long", "access_token=[REDACTED]"),
        ("a bearer token is required", "a bearer token is required"),
        ("task-sk-ordinary-long-words", "task-sk-ordinary-long-words"),
        ("pip install sk-learn-contrib", "pip install sk-learn-contrib"),
        ("rate limit: 10 requests per minute", "rate limit: 10 requests per minute"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


# -- RateLimit ---------------------------------------------------------------------------


async def test_rate_limit_requests_per_second(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=2, burst=1)
    for _ in range(4):
        await limited.chat(request())
    assert fake.calls == [exact(0), exact(0.5), exact(1.0), exact(1.5)]


async def test_rate_limit_burst_then_steady_rate(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=1, burst=3)
    for _ in range(5):
        await limited.chat(request())
    assert fake.calls == [exact(0), exact(0), exact(0), exact(1.0), exact(2.0)]


@pytest.mark.parametrize(
    ("rps", "expected"),
    [(0.5, [0, 2.0, 4.0]), (4, [0, 0, 0, 0, 0.25, 0.5])],
)
async def test_rate_limit_default_burst(
    autojump_clock: trio.testing.MockClock, rps: float, expected: list[float]
) -> None:
    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=rps)
    for _ in expected:
        await limited.chat(request())
    assert fake.calls == [exact(t) for t in expected]


async def test_rate_limit_refills_up_to_its_capacity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=1, burst=2)
    await limited.chat(request())
    await limited.chat(request())
    await trio.sleep(10)
    for _ in range(3):
        await limited.chat(request())
    assert fake.calls == [exact(t) for t in (0, 0, 10, 10, 11)]


async def test_rate_limit_tokens_wait_for_the_debt_to_be_paid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 600 tokens per minute = 10 per second; estimates of 1000, usage reported = estimate
    fake = Fake(default=Step(chunks=("ok",), usage=Usage(600, 400)))
    limited = RateLimit(fake, tokens_per_minute=600, estimate=lambda r: 1000)
    await limited.chat(request())  # a full bucket lets it go: 600 - 1000 = -400
    await limited.chat(request())  # waits 40 s for the debt; then -1000
    await limited.chat(request())  # waits 100 s
    assert fake.calls == [exact(0), exact(40), exact(140)]


async def test_rate_limit_tokens_reconciled_with_reported_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(
        Step(chunks=("big",), usage=Usage(500, 200)),  # estimated 100, used 700
        Step(chunks=("small",), usage=Usage(50, 50)),  # estimated 100, used 100
        Step(chunks=("refund",), usage=Usage(10, 10)),  # estimated 1000, used 20
        Step(chunks=("after",)),
    )
    estimates = iter([100, 100, 1000, 100])
    limited = RateLimit(fake, tokens_per_minute=600, estimate=lambda r: next(estimates))
    await limited.chat(request())  # 600 -> 500 -> reconciled to -100
    await limited.chat(request())  # waits 10 s to reach 0; -> -100
    await limited.chat(request())  # waits 10 s; 0 - 1000 = -1000, reconciled to -20
    await limited.chat(request())  # waits 2 s
    assert fake.calls == [exact(0), exact(10), exact(20), exact(22)]


async def test_rate_limit_without_usage_keeps_the_estimate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(default=Step(chunks=("ok",), usage=Usage()))
    limited = RateLimit(fake, tokens_per_minute=60, estimate=lambda r: 90)
    await limited.chat(request())  # 60 - 90 = -30, kept
    await limited.chat(request())
    assert fake.calls == [exact(0), exact(30)]


async def test_rate_limit_failed_call_keeps_the_estimate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(Step(error=ServerError("fake", "x")), Step(chunks=("ok",)))
    limited = RateLimit(fake, tokens_per_minute=60, estimate=lambda r: 90)
    with pytest.raises(ServerError):
        await limited.chat(request())
    await limited.chat(request())
    assert fake.calls == [exact(0), exact(30)]


async def test_rate_limit_both_buckets(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(default=Step(chunks=("ok",), usage=Usage()))
    limited = RateLimit(
        fake, requests_per_second=1, burst=1, tokens_per_minute=60, estimate=lambda r: 30
    )
    for _ in range(4):
        await limited.chat(request())
    # tokens (1 per second): 60 -> 30; t=1: 31 -> 1; t=2: 2 -> -28, so at t=3 the
    # request bucket allows a call but the token bucket makes it wait until t=30
    assert fake.calls == [exact(0), exact(1), exact(2), exact(30)]


def test_estimate_tokens() -> None:
    assert estimate_tokens(request("a" * 40)) == 10
    assert estimate_tokens(request("a" * 41)) == 11
    assert estimate_tokens(request("a" * 40, max_tokens=100)) == 110
    call = ToolCall("c1", "abcd", {"x": 1})  # 4 + len('{"x": 1}') = 12 characters
    assert estimate_tokens(ChatRequest("m", (Message.assistant("", [call]),))) == 3


async def test_rate_limit_uses_the_default_estimate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(default=Step(chunks=("ok",), usage=Usage()))
    limited = RateLimit(fake, tokens_per_minute=60)  # one token per second
    await limited.chat(request("a" * 400, max_tokens=20))  # 120 estimated: 60 -> -60
    await limited.chat(request("b"))
    assert fake.calls == [exact(0), exact(60)]


async def test_rate_limit_is_first_come_first_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=1, burst=1)
    done: list[tuple[int, float]] = []

    async def caller(i: int) -> None:
        await trio.sleep(i * 0.01)  # arrive in order 0, 1, 2, 3
        await limited.chat(request(f"caller {i}"))
        done.append((i, trio.current_time()))

    async with trio.open_nursery() as nursery:
        for i in (3, 1, 0, 2):
            nursery.start_soon(caller, i)
    assert [r.messages[0].content for r in fake.requests] == [f"caller {i}" for i in range(4)]
    assert fake.calls == [exact(t) for t in (0, 1, 2, 3)]
    assert done == [(i, exact(i)) for i in range(4)]


async def test_rate_limit_cancelled_waiter_takes_nothing_and_blocks_nobody(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=1, burst=1)
    send, receive = channel()
    cancelled = False

    async def first() -> None:
        await limited.chat(request("first"))

    async def impatient() -> None:
        nonlocal cancelled
        await trio.sleep(0.01)
        with trio.move_on_after(0.5) as scope:
            await limited.chat(request("impatient"), stream=send)
        cancelled = scope.cancelled_caught

    async def third() -> None:
        await trio.sleep(0.02)
        await limited.chat(request("third"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        nursery.start_soon(impatient)
        nursery.start_soon(third)
    assert cancelled
    assert [r.messages[0].content for r in fake.requests] == ["first", "third"]
    assert fake.calls == [exact(0), exact(1.0)]  # not 2.0: the cancelled one took no token
    assert send.closes == 1
    assert drain(receive) == []


async def test_rate_limit_cancelled_token_waiter_is_not_charged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Fake(default=Step(chunks=("ok",), usage=Usage()))
    limited = RateLimit(fake, tokens_per_minute=600, estimate=lambda r: 1000)
    await limited.chat(request())  # -400: the next waits 40 s
    with trio.move_on_after(10):
        await limited.chat(request())
    await limited.chat(request())
    assert fake.calls == [exact(0), exact(40)]


async def test_rate_limit_waits_without_polling(autojump_clock: trio.testing.MockClock) -> None:
    class Steps(trio.abc.Instrument):
        def __init__(self) -> None:
            self.steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self.steps += 1

    fake = Fake(default=Step(chunks=("ok",)))
    limited = RateLimit(fake, requests_per_second=0.001, burst=1)
    await limited.chat(request())
    counter = Steps()
    trio.lowlevel.add_instrument(counter)
    try:
        await limited.chat(request())  # waits 1000 s
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert fake.calls == [exact(0), exact(1000)]
    assert counter.steps < 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"requests_per_second": 0},
        {"tokens_per_minute": -5},
        {"tokens_per_minute": 100, "burst": 2},
        {"requests_per_second": 1, "burst": 0.5},
    ],
)
def test_rate_limit_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be|needs"):
        RateLimit(ScriptedProvider(), **kwargs)


# -- Fallback ----------------------------------------------------------------------------


async def test_fallback_swaps_the_model(autojump_clock: trio.testing.MockClock) -> None:
    a = ScriptedProvider([RateLimited("a", "slow", retry_after=30.0)], name="a")
    b = ScriptedProvider([ServerError("b", "down")], name="b")
    c = ScriptedProvider([lambda r: f"answered by {r.model}"], name="c")
    fallback = Fallback(a, (b, "model-b"), (c, "model-c"))
    assert fallback.name == "fallback(a, b, c)"
    response = await fallback.chat(request(model="model-a"))
    assert response.message.content == "answered by model-c"
    assert [r.model for r in a.requests] == ["model-a"]
    assert [r.model for r in b.requests] == ["model-b"]
    assert [r.model for r in c.requests] == ["model-c"]
    assert c.requests[0].messages == a.requests[0].messages
    assert trio.current_time() == exact(0)  # no waiting, whatever retry_after said


async def test_fallback_pair_with_none_keeps_the_model() -> None:
    a = ScriptedProvider([ProviderTimeout("a", "slow")], name="a")
    b = ScriptedProvider(["ok"], name="b")
    await Fallback((a, "model-x"), (b, None)).chat(request(model="model-a"))
    assert [r.model for r in a.requests] == ["model-x"]
    assert [r.model for r in b.requests] == ["model-a"]


async def test_fallback_does_not_fall_back_on_a_non_retryable_error() -> None:
    error = AuthenticationError("a", "bad key", status=401)
    a = ScriptedProvider([error], name="a")
    b = ScriptedProvider(["never"], name="b")
    with pytest.raises(AuthenticationError) as caught:
        await Fallback(a, b).chat(request())
    assert caught.value is error
    assert b.requests == []


async def test_fallback_all_failed_raises_the_last_with_the_others_noted() -> None:
    a = ScriptedProvider([RateLimited("a", "slow")], name="a")
    b = ScriptedProvider([Overloaded("b", "busy")], name="b")
    last = ServerError("c", "down", status=503)
    c = ScriptedProvider([last], name="c")
    with pytest.raises(ServerError) as caught:
        await Fallback(a, (b, "model-b"), c).chat(request(model="model-a"))
    assert caught.value is last
    assert caught.value.__notes__ == [
        "Fallback: a (model-a) failed: RateLimited: a (HTTP 429): slow",
        "Fallback: b (model-b) failed: Overloaded: b (HTTP 529): busy",
        "Fallback: 3 of 3 providers tried",
    ]


async def test_fallback_notes_earlier_failures_on_a_later_non_retryable_error() -> None:
    a = ScriptedProvider([ServerError("a", "down")], name="a")
    b = ScriptedProvider([BadRequest("b", "no such model", status=404)], name="b")
    c = ScriptedProvider(["never"], name="c")
    with pytest.raises(BadRequest) as caught:
        await Fallback(a, b, c).chat(request())
    assert caught.value.__notes__[0].startswith("Fallback: a (model-a) failed")
    assert caught.value.__notes__[1] == "Fallback: 2 of 3 providers tried"
    assert c.requests == []


async def test_fallback_stream_failed_before_a_chunk_falls_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = Fake(Step(error=ServerError("a", "x")), name="a")
    b = Fake(Step(chunks=("from ", "b")), name="b")
    send, receive = channel()
    response = await Fallback(a, (b, "model-b")).chat(request(), stream=send)
    assert response.model == "model-b"
    assert deltas(drain(receive)) == ["from ", "b"]
    assert send.closes == 1


async def test_fallback_stream_failed_after_a_chunk_does_not_fall_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = Overloaded("a", "overloaded_error in the stream", status=200)
    a = Fake(Step(chunks=("par", "tial"), error=error), name="a")
    b = Fake(Step(chunks=("never",)), name="b")
    send, receive = channel()
    with pytest.raises(Overloaded) as caught:
        await Fallback(a, b).chat(request(), stream=send)
    assert caught.value is error
    assert error.__notes__ == [
        "Fallback: 1 of 2 providers tried; no fallback: 2 chunk(s) had reached the caller"
    ]
    assert b.calls == []
    assert deltas(drain(receive)) == ["par", "tial"]
    assert send.closes == 1


def test_fallback_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one provider"):
        Fallback()
    with pytest.raises(TypeError, match="takes providers"):
        Fallback(ScriptedProvider(), ("not a provider", "m"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes providers"):
        Fallback((ScriptedProvider(), 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes providers"):
        Fallback((ScriptedProvider(), "m", "extra"))  # type: ignore[arg-type]


# -- closing the stream exactly once, for each middleware and outcome --------------------

SINGLE: dict[str, Callable[[Provider], Provider]] = {
    "log": lambda p: Log(p, logger=logging.getLogger(LOGGER)),
    "retry": lambda p: fast_retry(p),
    "ratelimit": lambda p: RateLimit(p, requests_per_second=5, tokens_per_minute=10_000),
    "fallback": lambda p: Fallback(p, ScriptedProvider(name="unused")),
}


@pytest.mark.parametrize("outcome", ["answer", "error", "error-after-chunk", "cancelled"])
@pytest.mark.parametrize("middleware", list(SINGLE))
async def test_each_middleware_closes_the_stream_once(
    autojump_clock: trio.testing.MockClock, middleware: str, outcome: str
) -> None:
    step = {
        "answer": Step(chunks=("x", "y")),
        "error": Step(error=BadRequest("fake", "bad")),
        "error-after-chunk": Step(chunks=("x",), error=ServerError("fake", "broke")),
        "cancelled": Step(chunks=("x", "y"), delay=1.0),
    }[outcome]
    provider = SINGLE[middleware](Fake(step))
    assert provider.name in ("fake", "fallback(fake, unused)")
    assert isinstance(provider, Provider)
    send, receive = channel()
    with trio.move_on_after(1.5):
        try:
            await provider.chat(request(), stream=send)
        except ProviderError:
            assert outcome.startswith("error")
        else:
            assert outcome == "answer"
    assert send.closes == 1
    expected = {"answer": ["x", "y"], "error": [], "error-after-chunk": ["x"], "cancelled": ["x"]}
    assert deltas(drain(receive)) == expected[outcome]


# -- chains ------------------------------------------------------------------------------

ORDERS = list(itertools.permutations(["log", "retry", "ratelimit", "fallback"]))


def build(order: Sequence[str], primary: Provider, backup: Provider) -> Provider:
    """Wrap ``primary`` in the middlewares of ``order``, innermost first."""
    wrap: dict[str, Callable[[Provider], Provider]] = {
        "log": lambda p: Log(p, logger=logging.getLogger(LOGGER)),
        "retry": lambda p: fast_retry(p, initial=0.1),
        "ratelimit": lambda p: RateLimit(p, requests_per_second=10, tokens_per_minute=100_000),
        "fallback": lambda p: Fallback(p, (backup, "backup-model")),
    }
    provider = primary
    for name in order:
        provider = wrap[name](provider)
    return provider


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
async def test_chain_any_order_recovers_a_stream(
    autojump_clock: trio.testing.MockClock, order: tuple[str, ...]
) -> None:
    primary = Fake(Step(error=ServerError("primary", "x")), Step(chunks=("pri", "mary")))
    backup = Fake(Step(chunks=("back", "up")), name="backup")
    send, receive = channel()
    response = await build(order, primary, backup).chat(request(), stream=send)
    # the innermost of Retry and Fallback handles the first failure
    expected = "backup" if order.index("fallback") < order.index("retry") else "primary"
    chunks = drain(receive)
    assert response.message.content == expected
    assert "".join(deltas(chunks)) == expected
    assert [c.finish_reason for c in chunks] == [None, None, "stop"]
    assert send.closes == 1
    if expected == "backup":
        assert [r.model for r in backup.requests] == ["backup-model"]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
async def test_chain_any_order_fails_and_cancels_cleanly(
    autojump_clock: trio.testing.MockClock, order: tuple[str, ...]
) -> None:
    error = BadRequest("primary", "bad")
    failing = build(order, Fake(Step(error=error)), Fake(name="backup"))
    send, receive = channel()
    with pytest.raises(BadRequest) as caught:
        await failing.chat(request(), stream=send)
    assert caught.value is error
    assert send.closes == 1
    assert drain(receive) == []

    slow = build(order, Fake(Step(chunks=("a", "b"), delay=1.0)), Fake(name="backup"))
    send, receive = channel()
    with trio.move_on_after(1.5) as scope:
        await slow.chat(request(), stream=send)
    assert scope.cancelled_caught
    assert send.closes == 1
    assert deltas(drain(receive)) == ["a"]


async def test_chain_log_retry_ratelimit_fallback(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    a = Fake(Step(error=ServerError("a", "x")), Step(chunks=("from a",)), name="a")
    b = Fake(Step(error=ServerError("b", "y")), name="b")
    provider = Log(
        Retry(
            RateLimit(Fallback(a, (b, "model-b")), requests_per_second=1, burst=1),
            jitter=0.0,
        ),
        logger=logging.getLogger(LOGGER),
    )
    assert provider.name == "fallback(a, b)"
    send, receive = channel()
    response = await provider.chat(request(), stream=send)
    assert response.message.content == "from a"
    # attempt 1 at 0: a fails, b fails; backoff 0.5 s; the rate limit holds it until 1.0
    assert a.calls == [exact(0), exact(1.0)]
    assert b.calls == [exact(0)]
    assert [r.model for r in b.requests] == ["model-b"]
    assert deltas(drain(receive)) == ["from a"]
    assert send.closes == 1
    (record,) = records(log_capture)
    assert field(record, "llm_outcome") == "ok"
    assert field(record, "llm_duration") == exact(1.0)
    assert field(record, "llm_chunks") == 2


async def test_chain_retry_of_log_logs_every_attempt(
    autojump_clock: trio.testing.MockClock, log_capture: pytest.LogCaptureFixture
) -> None:
    a = Fake(Step(error=RateLimited("a", "slow", retry_after=2.0)), Step(chunks=("ok",)))
    backup = Fake(name="backup")
    provider = Fallback(
        Retry(
            Log(RateLimit(a, requests_per_second=1), logger=logging.getLogger(LOGGER)),
            jitter=0.0,
        ),
        backup,
    )
    send, receive = channel()
    await provider.chat(request(), stream=send)
    assert [field(r, "llm_outcome") for r in records(log_capture)] == ["error", "ok"]
    assert a.calls == [exact(0), exact(2.0)]
    assert backup.calls == []
    assert deltas(drain(receive)) == ["ok"]
    assert send.closes == 1


async def test_chain_is_safe_for_concurrent_streams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def flaky(r: ChatRequest) -> str:
        n = int(r.messages[0].content.split()[-1])
        if n % 2:
            raise ServerError("primary", f"no {n}")
        return f"primary answers {n}"

    primary = ScriptedProvider(default=flaky, name="primary", chunk_size=3)
    backup = ScriptedProvider(
        default=lambda r: f"backup answers {r.messages[0].content.split()[-1]}",
        name="backup",
        chunk_size=2,
        delay=0.01,
    )
    provider = Log(
        Retry(
            RateLimit(Fallback(primary, (backup, "backup-model")), requests_per_second=50, burst=5),
            jitter=0.0,
        ),
        logger=logging.getLogger(LOGGER),
    )
    results: dict[int, tuple[str, str, int]] = {}

    async def call(n: int) -> None:
        send, receive = channel()
        response = await provider.chat(request(f"question {n}"), stream=send)
        results[n] = (response.message.content, "".join(deltas(drain(receive))), send.closes)

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(call, n)
    for n in range(20):
        who = "backup" if n % 2 else "primary"
        assert results[n] == (f"{who} answers {n}",) * 2 + (1,)
    assert len(primary.requests) == 20
    assert all(r.model == "backup-model" for r in backup.requests)
    assert len(backup.requests) == 10
