"""Middleware: providers that wrap a provider.

Each middleware is itself a :class:`~tinyagents.llm.Provider` (same ``chat`` contract,
a ``name``), so they chain in any order::

    provider = Log(Retry(RateLimit(Fallback(primary, (backup, "small-model")),
                                   requests_per_second=5)))

* :class:`Log`: one structured log record per call (never keys, never contents unless
  asked).
* :class:`Retry`: retries errors whose ``retryable`` is true, with jittered exponential
  backoff, honouring the provider's ``retry_after``.
* :class:`RateLimit`: client-side token buckets for requests per second and tokens per
  minute, fair among concurrent callers.
* :class:`Fallback`: the next provider (optionally with its own model) on a retryable
  failure.

Streams: every middleware hands the provider it wraps a relay channel of its own, which
forwards each :class:`~tinyagents.llm.Chunk` to the caller's channel and counts them; the
inner provider closing the relay does not close the caller's channel. The middleware
closes the caller's channel itself, exactly once, when its ``chat`` ends, whichever way it
ends (answer, error or cancellation). So :class:`Retry` and :class:`Fallback` know whether
a chunk already reached the caller, and never replay a stream that was partly delivered.

Order matters where it says something: ``Retry(Log(p))`` logs every attempt,
``Log(Retry(p))`` logs each call once with its final outcome; ``Retry(RateLimit(p))``
takes a rate-limit token per attempt, ``RateLimit(Retry(p))`` one per call.

All waiting uses trio's clock (``trio.sleep``), so tests can drive it with
:class:`trio.testing.MockClock`. Nothing is global: each middleware keeps its state (the
buckets of :class:`RateLimit`, the random generator of :class:`Retry`) on the instance,
and every instance is safe for concurrent use by many tasks of one trio run.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..errors import ProviderError
from ._forward import ForwardingChannel
from ._http import close_stream
from ._types import ChatRequest, ChatResponse, Chunk, Message, Provider

__all__ = ["Fallback", "Log", "RateLimit", "Retry", "estimate_tokens"]


# -- shared helpers ----------------------------------------------------------------------


def _relay(stream: trio.abc.SendChannel[Chunk] | None) -> ForwardingChannel | None:
    """The channel a middleware gives the provider it wraps: it forwards to the caller's
    channel and counts, and closing it leaves the caller's channel open for the
    middleware to close once at the very end."""
    return ForwardingChannel(stream) if stream is not None else None


def _chunks(relay: ForwardingChannel | None) -> int:
    return relay.sent if relay is not None else 0


def _is_retryable(error: BaseException) -> bool:
    return getattr(error, "retryable", False) is True


def _describe(error: BaseException) -> str:
    return _redact(f"{type(error).__name__}: {error}")


_SECRETS = (
    # Authorization: Bearer <token>
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [REDACTED]"),
    # OpenAI / Anthropic / OpenRouter style keys: sk-..., sk-ant-..., sk-or-v1-...
    (re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"), "[REDACTED]"),
    # api_key=..., "x-api-key": "...", access_token: ..., ?key=...
    (
        re.compile(
            r"(?i)\b((?:x-)?api[-_]?key|access[-_]?token|key)"
            r"(\"?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{8,}"
        ),
        r"\1\2[REDACTED]",
    ),
)


def _redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``:
    ``Bearer <token>`` (8 or more token characters), ``sk-`` followed by 16 or more key
    characters, and ``api_key=`` / ``x-api-key:`` / ``access_token=`` / ``key=``
    assignments of 8 or more key characters."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


# -- Log ---------------------------------------------------------------------------------


class Log:
    """Logs one record per call of ``provider``.

    A call that returns is logged at ``level``; one that raises at ``WARNING`` (or
    ``level``, if higher), with the error's type and message; one that is cancelled at
    ``level``, as cancelled. The exception itself always propagates unchanged, and no
    traceback is attached to the record.

    Each record has a readable message (``"openai gpt-4o: stop in 1.203s, 12 in / 40
    out tokens (streamed, 9 chunks)"``) and these attributes (``extra`` fields), for
    structured handlers:

    ``llm_provider``, ``llm_model`` (requested), ``llm_stream`` (bool), ``llm_outcome``
    (``"ok"``, ``"error"`` or ``"cancelled"``), ``llm_duration`` (seconds on trio's
    clock); on success ``llm_response_model``, ``llm_response_id``,
    ``llm_input_tokens``, ``llm_output_tokens`` (``None`` when the provider did not
    report the usage; the message then says ``usage not reported``),
    ``llm_finish_reason``; when streamed
    ``llm_chunks`` and ``llm_first_chunk`` (seconds to the first chunk, or ``None``); on
    failure ``llm_error_type``, ``llm_error`` and ``llm_status`` (the HTTP status of a
    :class:`~tinyagents.errors.ProviderError`). Fields that do not apply are ``None``.

    Message contents are not logged unless ``include_content`` is true; then the record
    also has ``llm_messages`` (a list of ``{"role", "content"}``) and ``llm_response``
    (the answer's text), and the message lists them. Error messages, and contents when
    logged, first go through a scrubber that replaces anything that looks like an API
    key or bearer token (``sk-...``, ``Bearer ...``, ``api_key=...``) by ``[REDACTED]``.

    ``logger`` defaults to ``logging.getLogger("tinyagents.llm")``. Logging never
    blocks the call beyond what the logging handlers themselves do.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        include_content: bool = False,
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.logger = logger if logger is not None else logging.getLogger("tinyagents.llm")
        self.level = level
        self.include_content = include_content

    def __repr__(self) -> str:
        return f"Log({self.provider!r}, logger={self.logger.name!r})"

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Call the wrapped provider and log the outcome; see the class docstring.

        Returns or raises exactly what the wrapped provider does; ``stream`` is closed
        once when the call ends.
        """
        relay = _relay(stream)
        start = trio.current_time()
        try:
            response = await self.provider.chat(request, stream=relay)
        except trio.Cancelled:
            self._emit(request, relay, start, None, None, cancelled=True)
            raise
        except BaseException as error:
            self._emit(request, relay, start, None, error)
            raise
        else:
            self._emit(request, relay, start, response, None)
            return response
        finally:
            await close_stream(stream)

    def _emit(
        self,
        request: ChatRequest,
        relay: ForwardingChannel | None,
        start: float,
        response: ChatResponse | None,
        error: BaseException | None,
        *,
        cancelled: bool = False,
    ) -> None:
        duration = trio.current_time() - start
        fields: dict[str, Any] = {
            "llm_provider": self.provider.name,
            "llm_model": request.model,
            "llm_stream": relay is not None,
            "llm_duration": duration,
            "llm_outcome": "ok",
            "llm_response_model": None,
            "llm_response_id": None,
            "llm_input_tokens": None,
            "llm_output_tokens": None,
            "llm_finish_reason": None,
            "llm_chunks": None,
            "llm_first_chunk": None,
            "llm_error_type": None,
            "llm_error": None,
            "llm_status": None,
        }
        head = f"{self.provider.name} {request.model}:"
        if response is not None:
            usage = response.usage
            fields.update(
                llm_response_model=response.model,
                llm_response_id=response.id,
                llm_input_tokens=usage.input_tokens if usage.known else None,
                llm_output_tokens=usage.output_tokens if usage.known else None,
                llm_finish_reason=response.finish_reason,
            )
            text = f"{head} {response.finish_reason} in {duration:.3f}s, {usage}"
            level = self.level
        elif cancelled:
            fields["llm_outcome"] = "cancelled"
            text = f"{head} cancelled after {duration:.3f}s"
            level = self.level
        else:
            assert error is not None
            fields.update(
                llm_outcome="error",
                llm_error_type=type(error).__name__,
                llm_error=_redact(str(error)),
                llm_status=error.status if isinstance(error, ProviderError) else None,
            )
            text = f"{head} failed after {duration:.3f}s: {_describe(error)}"
            level = max(self.level, logging.WARNING)
        if relay is not None:
            first = relay.first_sent_at
            fields["llm_chunks"] = relay.sent
            fields["llm_first_chunk"] = first - start if first is not None else None
            text += f" (streamed, {relay.sent} chunks)"
        if self.include_content:
            messages = [{"role": m.role, "content": _redact(_content(m))} for m in request.messages]
            fields["llm_messages"] = messages
            lines = [f"\n  {m['role']}: {m['content']}" for m in messages]
            if response is not None:
                answer = _redact(_content(response.message))
                fields["llm_response"] = answer
                lines.append(f"\n  -> {answer}")
            else:
                fields["llm_response"] = None
            text += "".join(lines)
        self.logger.log(level, "%s", text, extra=fields)


def _content(message: Message) -> str:
    text = message.content
    for call in message.tool_calls:
        text += f" [tool call {call.name}({json.dumps(dict(call.arguments), default=str)})]"
    return text


# -- Retry -------------------------------------------------------------------------------


class Retry:
    """Calls ``provider`` again when it fails with an error whose ``retryable`` is true.

    Those are, among the library's errors: :class:`~tinyagents.errors.ProviderConnectionError`,
    :class:`~tinyagents.errors.ProviderTimeout` (408 too), 409,
    :class:`~tinyagents.errors.RateLimited` unless ``quota_exhausted``,
    :class:`~tinyagents.errors.ServerError` (5xx) and
    :class:`~tinyagents.errors.Overloaded` (529). Any other exception, and an error
    whose ``retryable`` is false, propagates at once.

    At most ``max_attempts`` calls are made (``1`` means no retry). Before retry number
    ``n`` (1-based) it sleeps:

    * exactly the error's ``retry_after``, when it has one greater than 0 (429 and 529
      carry it); if that is more than ``max_retry_after`` seconds, it does not retry at
      all and raises the error (waiting that long is rarely what a caller wants; it can
      catch the error and decide);
    * otherwise ``min(maximum, initial * multiplier ** (n - 1))`` reduced by a random
      fraction of up to ``jitter`` of itself (the official SDKs' rule: with the defaults
      0.5 s, 1 s, 2 s, ... capped at 8 s, each 0-25 % shorter). ``rng`` (a
      :class:`random.Random`) makes the jitter reproducible.

    Streams: a streamed call that failed before any chunk reached the caller is retried,
    and the caller's channel sees only the chunks of the attempt that succeeds; once a
    chunk reached the caller, the error propagates unretried (the caller has part of an
    answer, and replaying it would duplicate text). The caller's channel is closed once,
    when ``chat`` ends.

    When it gives up, the last error is raised with a note (``__notes__``) saying how
    many attempts were made and why it stopped. Cancellation (of the call or during a
    backoff sleep) propagates at once.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        max_attempts: int = 3,
        initial: float = 0.5,
        maximum: float = 8.0,
        multiplier: float = 2.0,
        jitter: float = 0.25,
        max_retry_after: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {max_attempts}")
        if initial < 0 or maximum < initial:
            raise ValueError(f"need 0 <= initial <= maximum, not {initial} and {maximum}")
        if multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, not {multiplier}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], not {jitter}")
        if not max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be >= 0, not {max_retry_after}")
        self.provider = provider
        self.name = provider.name
        self.max_attempts = max_attempts
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        self.max_retry_after = max_retry_after
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return f"Retry({self.provider!r}, max_attempts={self.max_attempts})"

    def backoff(self, retry: int) -> float:
        """The jittered backoff before retry number ``retry`` (1-based), in seconds."""
        if retry < 1:
            raise ValueError(f"retry must be >= 1, not {retry}")
        exponent = min(retry - 1, 1024)
        try:
            base = min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:
            base = self.maximum
        if self.jitter:
            base *= 1.0 - self.jitter * self._rng.random()
        return base

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Call the wrapped provider, retrying as the class docstring says.

        Blocks during backoff sleeps; raises the last error when it gives up.
        """
        try:
            attempt = 0
            while True:
                attempt += 1
                relay = _relay(stream)
                try:
                    return await self.provider.chat(request, stream=relay)
                except Exception as error:
                    delay = self._delay_or_raise(error, attempt, _chunks(relay))
                await trio.sleep(delay)
        finally:
            await close_stream(stream)

    def _delay_or_raise(self, error: Exception, attempt: int, chunks: int) -> float:
        """The wait before the next attempt; raises ``error`` (with a note) if none."""
        tried = f"Retry: {attempt} attempt{'s' if attempt > 1 else ''} made"
        if not _is_retryable(error):
            if attempt > 1:
                error.add_note(f"{tried}; the last failed with an error that is not retryable")
            raise error
        if chunks:
            error.add_note(f"{tried}; not retried: {chunks} chunk(s) had reached the caller")
            raise error
        if attempt >= self.max_attempts:
            error.add_note(f"{tried}; gave up (max_attempts={self.max_attempts})")
            raise error
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            if retry_after > self.max_retry_after:
                error.add_note(
                    f"{tried}; not retried: the provider asked to wait {retry_after:g}s, "
                    f"more than max_retry_after={self.max_retry_after:g}s"
                )
                raise error
            return float(retry_after)
        return self.backoff(attempt)


# -- RateLimit ---------------------------------------------------------------------------


@attrs.define
class _Bucket:
    """A token bucket on trio's clock; its level may go below zero (a debt)."""

    capacity: float
    rate: float  # tokens per second
    level: float = 0.0
    stamp: float | None = None

    def refill(self, now: float) -> None:
        if self.stamp is None:
            self.level = self.capacity
        else:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, level: float) -> float:
        """Seconds until the level reaches ``level`` (after a refill), 0 if it has."""
        missing = level - self.level
        return 0.0 if missing <= _EPSILON else missing / self.rate


_EPSILON = 1e-9


def estimate_tokens(request: ChatRequest) -> int:
    """A rough token count of ``request``: the characters of its messages (text, tool
    calls, tool names), its tool definitions and stop words, divided by 4 and rounded
    up, plus ``max_tokens`` when set."""
    chars = 0
    for message in request.messages:
        chars += len(message.content) + len(message.name or "")
        for call in message.tool_calls:
            chars += len(call.name) + len(json.dumps(dict(call.arguments), default=str))
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description)
        chars += len(json.dumps(dict(tool.parameters), default=str))
    chars += sum(len(s) for s in request.stop)
    return math.ceil(chars / 4) + (request.max_tokens or 0)


class RateLimit:
    """Limits calls of ``provider`` to ``requests_per_second`` and ``tokens_per_minute``.

    Two token buckets on trio's clock, both full at the first call:

    * requests: capacity ``burst`` (default ``max(1, requests_per_second)``), refilled at
      ``requests_per_second``; each call takes one token.
    * tokens: capacity ``tokens_per_minute``, refilled at ``tokens_per_minute / 60`` per
      second. A call waits until the bucket is not in debt (level >= 0), then is charged
      an estimate of its cost (``estimate``, by default :func:`estimate_tokens`:
      characters / 4 of the messages and tools, plus ``max_tokens`` if set), which may
      put the bucket in debt, so that a request larger than a minute's budget still
      goes, and the calls after it wait for the debt to be paid. When the call returns,
      the charge is corrected to the usage it reported (input + output tokens): the
      difference is taken from or given back to the bucket. A call that fails, is
      cancelled, reports zero tokens or does not report its usage
      (:attr:`Usage.known <tinyagents.llm.Usage.known>` false) keeps the estimate,
      except that a partly reported usage larger than the estimate is charged in full
      (what was reported is a lower bound).

    Blocking: ``chat`` waits (``trio.sleep``, never polling) until both buckets allow
    the call, then takes from both at once and calls the provider; the provider call
    itself is not limited in duration or concurrency. Waiting callers are served first
    come, first served (a fair :class:`trio.Lock`): a caller does not overtake one that
    waited longer. A caller cancelled while waiting takes nothing from the buckets, its
    ``stream`` is closed, and the next caller moves up.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        requests_per_second: float | None = None,
        tokens_per_minute: float | None = None,
        burst: float | None = None,
        estimate: Callable[[ChatRequest], int] = estimate_tokens,
    ) -> None:
        if requests_per_second is None and tokens_per_minute is None:
            raise ValueError("RateLimit needs requests_per_second or tokens_per_minute")
        if requests_per_second is not None and not requests_per_second > 0:
            raise ValueError(f"requests_per_second must be > 0, not {requests_per_second}")
        if tokens_per_minute is not None and not tokens_per_minute > 0:
            raise ValueError(f"tokens_per_minute must be > 0, not {tokens_per_minute}")
        if burst is not None:
            if requests_per_second is None:
                raise ValueError("burst needs requests_per_second")
            if not burst >= 1:
                raise ValueError(f"burst must be >= 1, not {burst}")
        self.provider = provider
        self.name = provider.name
        self.requests_per_second = requests_per_second
        self.tokens_per_minute = tokens_per_minute
        self.burst = burst
        self._estimate = estimate
        self._requests = (
            _Bucket(
                burst if burst is not None else max(1.0, requests_per_second),
                requests_per_second,
            )
            if requests_per_second is not None
            else None
        )
        self._tokens = (
            _Bucket(tokens_per_minute, tokens_per_minute / 60.0)
            if tokens_per_minute is not None
            else None
        )
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        return (
            f"RateLimit({self.provider!r}, requests_per_second={self.requests_per_second}, "
            f"tokens_per_minute={self.tokens_per_minute})"
        )

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Wait for the buckets, then call the wrapped provider; see the class docstring."""
        try:
            estimate = max(0, self._estimate(request)) if self._tokens is not None else 0
            await self._admit(estimate)
            response = await self.provider.chat(request, stream=_relay(stream))
            tokens = self._tokens
            used = response.usage.total_tokens
            if tokens is not None and used > 0 and (response.usage.known or used > estimate):
                tokens.refill(trio.current_time())
                tokens.level = min(tokens.capacity, tokens.level - (used - estimate))
            return response
        finally:
            await close_stream(stream)

    async def _admit(self, estimate: int) -> None:
        async with self._lock:
            while True:
                now = trio.current_time()
                wait = 0.0
                if self._requests is not None:
                    self._requests.refill(now)
                    wait = max(wait, self._requests.wait_for(1.0))
                if self._tokens is not None:
                    self._tokens.refill(now)
                    wait = max(wait, self._tokens.wait_for(0.0))
                if wait <= 0:
                    break
                await trio.sleep(wait)
            # no checkpoint since the check: taking is atomic with it
            if self._requests is not None:
                self._requests.level -= 1.0
            if self._tokens is not None:
                self._tokens.level -= estimate


# -- Fallback ----------------------------------------------------------------------------


class Fallback:
    """Tries providers in order until one answers.

    Each argument is a provider, or a ``(provider, model)`` pair: that provider is then
    asked with the request's ``model`` replaced by ``model`` (``None`` keeps it).

    The first provider is called; when it fails with an error whose ``retryable`` is
    true (rate limited, overloaded, 5xx, timeout, connection), the next one is called at
    once (no waiting; wrap the providers in :class:`Retry` for that), and so on. An
    error that is not retryable (any other exception too) propagates at once.

    Streams: like :class:`Retry`, it never falls back once a chunk of the failed call
    reached the caller; the error propagates. The caller's channel sees only the chunks
    of the provider that answers, and is closed once when ``chat`` ends.

    Errors: the error raised is the last one, unchanged in type (so ``except
    RateLimited`` and an outer :class:`Retry` still work), with one note
    (``__notes__``) per earlier failure naming the provider, model and error, then one
    saying how many providers were tried.

    ``name`` is ``"fallback(<first name>, <second name>, ...)"``.
    """

    def __init__(self, *providers: Provider | tuple[Provider, str | None]) -> None:
        if not providers:
            raise ValueError("Fallback needs at least one provider")
        pairs: list[tuple[Provider, str | None]] = []
        for item in providers:
            pair: tuple[Any, ...] = item if isinstance(item, tuple) else (item, None)
            if (
                len(pair) != 2
                or not isinstance(pair[0], Provider)
                or not isinstance(pair[1], str | None)
            ):
                raise TypeError(f"Fallback takes providers or (provider, model), not {item!r}")
            pairs.append((pair[0], pair[1]))
        self.providers: tuple[tuple[Provider, str | None], ...] = tuple(pairs)
        self.name = "fallback(" + ", ".join(p.name for p, _ in pairs) + ")"

    def __repr__(self) -> str:
        return f"Fallback{self.providers!r}"

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse:
        """Call the providers in turn as the class docstring says; never waits itself."""
        try:
            earlier: list[str] = []
            for index, (provider, model) in enumerate(self.providers):
                attempt = request if model is None else attrs.evolve(request, model=model)
                relay = _relay(stream)
                try:
                    return await provider.chat(attempt, stream=relay)
                except Exception as error:
                    chunks = _chunks(relay)
                    last = index == len(self.providers) - 1
                    if _is_retryable(error) and not chunks and not last:
                        earlier.append(
                            f"Fallback: {provider.name} ({attempt.model}) failed: "
                            f"{_describe(error)}"
                        )
                        continue
                    for note in earlier:
                        error.add_note(note)
                    tried = f"Fallback: {index + 1} of {len(self.providers)} providers tried"
                    if _is_retryable(error) and chunks and not last:
                        tried += f"; no fallback: {chunks} chunk(s) had reached the caller"
                    error.add_note(tried)
                    raise
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            await close_stream(stream)
