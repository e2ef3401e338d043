"""Stub servers for the OpenAI-family dialects: OpenAI, OpenRouter and Mistral.

One implementation (:class:`OpenAIStub`) speaks OpenAI's Chat Completions wire format;
:class:`OpenRouterStub` and :class:`MistralStub` change it through class attributes and
a few hooks. Each serves ``POST {base_path}/chat/completions``:

* non-streamed: a ``chat.completion`` object with every field the official SDKs read;
* streamed (``"stream": true``): ``text/event-stream`` of unnamed ``data:`` frames ending
  with ``data: [DONE]``. The first frame announces the role; text follows in
  ``StubReply.chunk_size`` pieces; each tool call is either fragmented by ``index``
  (OpenAI, OpenRouter: a first fragment with ``id``, ``type``, ``function.name`` and
  ``arguments: ""``, then pieces of the arguments) or sent whole in one delta
  (Mistral); then a frame with ``finish_reason``. OpenAI and OpenRouter add a usage-only
  frame (``choices: []``) only when the request has ``stream_options.include_usage``;
  Mistral puts the usage on the finishing frame by itself. ``StubReply.delay`` passes
  before every frame after the first.

Faults (:class:`~tinyagents.testing.Fault`), in each dialect's error shape:
``rate_limited`` (429, with ``retry-after`` in whole seconds, rounded up, and the exact
``retry-after-ms``), ``rate_limited(quota=True)`` (the service's own reply to a spent
quota, with no retry headers: OpenAI's 429 ``insufficient_quota``, OpenRouter's 402
"Insufficient credits", Mistral's 429 ``rate_limited`` with
``x-ratelimit-remaining-tokens-month: 0``), ``overloaded`` (503), ``server_error`` /
``status_code`` (that status),
``malformed`` (a 200 body or first stream frame that is not JSON), ``truncated`` (after
``after`` frames, the stream ends without ``[DONE]``, or the connection is cut), and
``error_in_stream`` (after ``after`` frames, the dialect's error event). ``after`` does not
count the role-announcing first frame.

Requests are checked as the services check them: a ``tool`` message must answer a tool
call of an earlier assistant message (400), and assistant tool-call ``arguments`` must be
JSON strings (400). :class:`MistralStub` also refuses unknown fields (422,
``extra_forbidden``, e.g. ``stream_options``, ``max_completion_tokens``, ``seed``) and
tool-call ids that are not 9 alphanumerics (400, ``invalid_function_call``).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import trio

from ..llm._types import ToolCall, Usage
from ._server import (
    Fault,
    FaultKind,
    RecordedRequest,
    StubReply,
    StubResponse,
    StubServer,
    json_response,
    word_count,
)

__all__ = ["MistralStub", "OpenAIStub", "OpenRouterStub"]

_ALNUM = string.ascii_letters + string.digits
_HTTP_FAULTS = (
    FaultKind.RATE_LIMITED,
    FaultKind.OVERLOADED,
    FaultKind.SERVER_ERROR,
    FaultKind.STATUS,
)
_SSE_HEADERS = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"))


def _random(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


_DONE = b"data: [DONE]\n\n"

OPENAI_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
"""The text of OpenAI's ``insufficient_quota`` error."""
OPENROUTER_QUOTA_MESSAGE = (
    "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
)
"""The text of OpenRouter's 402."""
MISTRAL_MONTHLY_TOKENS = 1_000_000_000
"""The ``x-ratelimit-limit-tokens-month`` of a spent Mistral quota."""


def _retry_headers(fault: Fault) -> list[tuple[str, str]]:
    """``retry-after`` in whole seconds (rounded up) and the exact ``retry-after-ms``."""
    if fault.retry_after is None:
        return []
    seconds = max(0.0, fault.retry_after)
    return [
        ("retry-after", str(math.ceil(seconds))),
        ("retry-after-ms", str(round(seconds * 1000))),
    ]


class OpenAIStub(StubServer):
    """OpenAI's Chat Completions API on 127.0.0.1 (see the module docstring).

    ``stub.base_url`` (``http://127.0.0.1:<port>/v1``) is what to give as the adapter's
    ``base_url`` and as ``openai.AsyncOpenAI(base_url=...)``.
    """

    dialect = "openai"
    base_path = "/v1"
    chat_path: ClassVar[str] = "/chat/completions"
    whole_tool_calls: ClassVar[bool] = False
    """Stream each tool call whole in one delta instead of fragments."""
    usage_on_finish: ClassVar[bool] = False
    """Put the usage on the finishing frame, whatever the request asked."""
    sse_comment: ClassVar[bytes] = b""
    """An SSE comment line to send before the first and the finishing frame."""
    role_delta: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {"role": "assistant", "content": "", "refusal": None}
    )
    """The delta of the first frame of a stream."""

    # -- dialect hooks ---------------------------------------------------------------

    def tool_call_id(self) -> str:
        """A fresh tool-call id of the dialect's shape."""
        return "call_" + _random(24)

    def completion_id(self) -> str:
        """A fresh completion id."""
        return "chatcmpl-" + _random(29)

    def response_headers(self) -> list[tuple[str, str]]:
        """Extra headers of every answer."""
        return [("x-request-id", "req_" + _random(32, "0123456789abcdef"))]

    def error_payload(
        self, status: int, message: str, *, kind: str | None = None, code: Any = None
    ) -> Any:
        """An error body in the dialect's shape."""
        if kind is None:
            kind = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def usage_payload(self, usage: Usage) -> dict[str, Any]:
        """A ``usage`` object."""
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def message_payload(self, text: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
        """The ``message`` of a non-streamed choice."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or (None if calls else ""),
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = [self.tool_call_payload(call) for call in calls]
        return message

    def tool_call_payload(self, call: ToolCall, index: int | None = None) -> dict[str, Any]:
        """A whole tool call (``index`` is set inside a stream delta)."""
        payload: dict[str, Any] = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": _arguments(call)},
        }
        if index is not None:
            payload = {"index": index, **payload}
        return payload

    def envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Hook: add the dialect's extra fields to a completion or a stream chunk."""
        payload.setdefault("service_tier", "default")
        payload.setdefault("system_fingerprint", "fp_stub0000")
        return payload

    def wants_stream_usage(self, body: Mapping[str, Any]) -> bool:
        """Whether a streamed answer ends with a usage-only frame."""
        options = body.get("stream_options")
        return isinstance(options, Mapping) and options.get("include_usage") is True

    def stream_error_frames(self, fault: Fault, chunk: dict[str, Any]) -> list[bytes]:
        """The frames of an error inside a 200 stream (``chunk`` is an empty chunk to
        copy ids from). OpenAI sends one ``data:`` frame with an ``error`` object and
        stops."""
        return [_sse(self.error_payload(500, fault.message, kind="server_error"))]

    def body_error_response(self, fault: Fault) -> StubResponse:
        """A non-streamed request with an ``error_in_stream`` fault: a 500."""
        return self.error_response(500, fault.message, kind="server_error")

    def validate(self, body: Mapping[str, Any]) -> StubResponse | None:
        """Check a request body as the service would; an error response, or ``None``."""
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self.error_response(400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_response(400, "'messages' must be a non-empty array")
        seen: set[str] = set()
        for position, message in enumerate(messages):
            if not isinstance(message, Mapping):
                return self.error_response(400, f"messages[{position}] is not an object")
            if message.get("role") == "assistant":
                for index, call in enumerate(message.get("tool_calls") or ()):
                    function = call.get("function") if isinstance(call, Mapping) else None
                    if not isinstance(function, Mapping) or not isinstance(
                        function.get("arguments"), str
                    ):
                        return self.error_response(
                            400,
                            f"Invalid type for 'messages[{position}].tool_calls[{index}]"
                            ".function.arguments': expected a string.",
                        )
                    seen.add(str(call.get("id")))
            elif message.get("role") == "tool" and message.get("tool_call_id") not in seen:
                return self.error_response(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                )
        return None

    # -- helpers ---------------------------------------------------------------------

    def error_response(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        code: Any = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> StubResponse:
        """An error answer in the dialect's shape."""
        return json_response(
            status,
            self.error_payload(status, message, kind=kind, code=code),
            [*self.response_headers(), *headers],
        )

    def fault_response(self, fault: Fault) -> StubResponse:
        """The HTTP error of an HTTP-level fault."""
        if fault.kind is FaultKind.RATE_LIMITED and fault.quota_exhausted:
            return self.quota_response(fault)
        headers = _retry_headers(fault)
        if fault.kind is FaultKind.RATE_LIMITED:
            return self.rate_limit_response(fault, headers)
        if fault.kind is FaultKind.OVERLOADED:
            return self.error_response(503, fault.message, kind="server_error", headers=headers)
        return self.error_response(fault.status, fault.message, headers=headers)

    def rate_limit_response(self, fault: Fault, headers: Sequence[tuple[str, str]]) -> StubResponse:
        """A 429 that waiting fixes: OpenAI's ``rate_limit_exceeded``."""
        return self.error_response(
            429, fault.message, kind="requests", code="rate_limit_exceeded", headers=headers
        )

    def quota_response(self, fault: Fault) -> StubResponse:
        """The reply when the quota is spent (``Fault.rate_limited(quota=True)``): OpenAI's
        429 ``insufficient_quota`` with its own text and no retry advice."""
        return self.error_response(
            429, OPENAI_QUOTA_MESSAGE, kind="insufficient_quota", code="insufficient_quota"
        )

    def attribution(self, request: RecordedRequest | None = None) -> tuple[str | None, str | None]:
        """The ``HTTP-Referer`` and ``X-Title`` headers of ``request`` (default: the last)."""
        request = request or self.requests[-1]
        return request.headers.get("http-referer"), request.headers.get("x-title")

    def _usage(self, body: Mapping[str, Any], reply: StubReply) -> Usage:
        if reply.usage is not None:
            return reply.usage
        words = 0
        for message in body.get("messages") or ():
            if isinstance(message, Mapping) and isinstance(message.get("content"), str):
                words += word_count(message["content"])
        return Usage(words, word_count(reply.text) + len(reply.tool_calls))

    # -- service ---------------------------------------------------------------------

    async def respond(self, request: RecordedRequest) -> StubResponse:
        path = request.path.split("?", 1)[0]
        if request.method != "POST" or path != self.base_path + self.chat_path:
            return self.error_response(404, f"Invalid URL ({request.method} {request.path})")
        body = request.json
        if not isinstance(body, dict):
            return self.error_response(400, "We could not parse the JSON body of your request.")
        problem = self.validate(body)
        if problem is not None:
            return problem
        reply = self.next_reply(request)
        fault = reply.fault
        if fault is not None and fault.kind in _HTTP_FAULTS:
            return self.fault_response(fault)
        calls = tuple(
            ToolCall(call.id or self.tool_call_id(), call.name, call.arguments)
            for call in reply.tool_calls
        )
        usage = self._usage(body, reply)
        base = {
            "id": self.completion_id(),
            "created": int(time.time()),
            "model": body["model"],
        }
        if body.get("stream") is True:
            return self._stream_response(body, reply, calls, usage, base)
        await reply.generate()
        if fault is not None and fault.kind is FaultKind.ERROR_IN_STREAM:
            return self.body_error_response(fault)
        if fault is not None and fault.kind in (FaultKind.MALFORMED, FaultKind.TRUNCATED):
            broken = b'{"id":"' + base["id"].encode() + b'","object":"chat.completion","choi'
            return StubResponse(
                200,
                [("content-type", "application/json"), *self.response_headers()],
                _once(broken),
                cut_connection=fault.cut_connection,
            )
        completion = {
            "id": base["id"],
            "object": "chat.completion",
            "created": base["created"],
            "model": base["model"],
            "choices": [
                {
                    "index": 0,
                    "message": self.message_payload(reply.text, calls),
                    "logprobs": None,
                    "finish_reason": reply.finish,
                }
            ],
            "usage": self.usage_payload(usage),
        }
        return json_response(200, self.envelope(completion), self.response_headers())

    def _stream_response(
        self,
        body: Mapping[str, Any],
        reply: StubReply,
        calls: Sequence[ToolCall],
        usage: Usage,
        base: Mapping[str, Any],
    ) -> StubResponse:
        include_usage = self.wants_stream_usage(body)

        def chunk(
            delta: Mapping[str, Any] | None, finish: str | None = None, **extra: Any
        ) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": base["id"],
                "object": "chat.completion.chunk",
                "created": base["created"],
                "model": base["model"],
                "choices": []
                if delta is None
                else [
                    {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage and not self.usage_on_finish:
                payload["usage"] = None
            payload.update(extra)
            return self.envelope(payload)

        first = _sse(chunk(self.role_delta))
        frames: list[bytes] = [_sse(chunk({"content": piece})) for piece in reply.pieces()]
        for index, call in enumerate(calls):
            if self.whole_tool_calls:
                frames.append(_sse(chunk({"tool_calls": [self.tool_call_payload(call, index)]})))
                continue
            head = self.tool_call_payload(call, index)
            head["function"] = {"name": call.name, "arguments": ""}
            frames.append(_sse(chunk({"tool_calls": [head]})))
            arguments = _arguments(call)
            size = max(1, reply.chunk_size)
            for start in range(0, len(arguments), size):
                piece = {"index": index, "function": {"arguments": arguments[start : start + size]}}
                frames.append(_sse(chunk({"tool_calls": [piece]})))
        if self.usage_on_finish:
            finishing = chunk({}, reply.finish, usage=self.usage_payload(usage))
        else:
            finishing = chunk({}, reply.finish)
        tail = [self.sse_comment + _sse(finishing)]
        if include_usage and not self.usage_on_finish:
            tail.append(_sse(chunk(None, usage=self.usage_payload(usage))))
        tail.append(_DONE)

        fault = reply.fault
        cut = False
        if fault is None:
            sequence = [self.sse_comment + first, *frames, *tail]
        elif fault.kind is FaultKind.MALFORMED:
            sequence = [self.sse_comment + b'data: {"id":"' + base["id"].encode() + b'","cho\n\n']
            sequence.append(_DONE)
        elif fault.kind is FaultKind.TRUNCATED:
            sequence = [self.sse_comment + first, *frames[: fault.after]]
            cut = fault.cut_connection
        else:  # ERROR_IN_STREAM
            sequence = [
                self.sse_comment + first,
                *frames[: fault.after],
                *self.stream_error_frames(fault, chunk({})),
            ]
        return StubResponse(
            200,
            [*_SSE_HEADERS, *self.response_headers()],
            _paced(sequence, reply.delay),
            cut_connection=cut,
        )


class OpenRouterStub(OpenAIStub):
    """OpenRouter's OpenAI-compatible API (``base_path`` ``/api/v1``).

    Differences from :class:`OpenAIStub`: ``: OPENROUTER PROCESSING`` comment lines in
    streams; answers carry ``provider``, ``native_finish_reason``, ``usage.cost`` and an
    ``X-Generation-Id`` header; errors are ``{"error": {"code": <status>, "message"}}``;
    a spent quota is a 402 "Insufficient credits" (no ``Retry-After``); an error during a
    stream is a chunk with a top-level ``error: {code, message}`` and ``finish_reason:
    "error"`` (``code`` is the fault's ``status`` when not 200, else 502), followed by
    ``data: [DONE]``; a non-streamed request with that fault gets the same object as a
    200 body. The attribution headers are recorded like all headers (see
    :meth:`attribution`).
    """

    dialect = "openrouter"
    base_path = "/api/v1"
    sse_comment: ClassVar[bytes] = b": OPENROUTER PROCESSING\n\n"

    def completion_id(self) -> str:
        return f"gen-{int(time.time())}-{_random(20)}"

    def response_headers(self) -> list[tuple[str, str]]:
        return [("x-generation-id", self.completion_id())]

    def error_payload(
        self, status: int, message: str, *, kind: str | None = None, code: Any = None
    ) -> Any:
        return {"error": {"code": status, "message": message}}

    def usage_payload(self, usage: Usage) -> dict[str, Any]:
        return {
            **super().usage_payload(usage),
            "cost": round(usage.total_tokens * 1e-6, 9),
            "is_byok": False,
        }

    def envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload.setdefault("provider", "OpenAI")
        for choice in payload.get("choices") or ():
            choice.setdefault("native_finish_reason", choice.get("finish_reason"))
        return payload

    def quota_response(self, fault: Fault) -> StubResponse:
        """OpenRouter's 402 (insufficient credits), with no ``Retry-After``."""
        return self.error_response(402, OPENROUTER_QUOTA_MESSAGE)

    def _error_event(self, fault: Fault, chunk: dict[str, Any]) -> dict[str, Any]:
        code = fault.status if fault.status != 200 else 502
        event = dict(chunk)
        event["error"] = {"code": code, "message": fault.message}
        event["choices"] = [
            {
                "index": 0,
                "delta": {"content": ""},
                "finish_reason": "error",
                "native_finish_reason": "error",
            }
        ]
        return event

    def stream_error_frames(self, fault: Fault, chunk: dict[str, Any]) -> list[bytes]:
        return [_sse(self._error_event(fault, chunk)), _DONE]

    def body_error_response(self, fault: Fault) -> StubResponse:
        event = self._error_event(
            fault, {"id": self.completion_id(), "object": "chat.completion", "model": ""}
        )
        return json_response(200, event, self.response_headers())


_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_MISTRAL_FIELDS = frozenset(
    [
        "frequency_penalty",
        "guardrails",
        "logprobs",
        "max_tokens",
        "messages",
        "metadata",
        "min_tokens",
        "model",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_logprobs",
        "prompt_mode",
        "random_seed",
        "reasoning_effort",
        "repetition_penalty",
        "response_format",
        "safe_prompt",
        "service_tier",
        "stop",
        "stream",
        "temperature",
        "tool_choice",
        "tools",
        "top_k",
        "top_logprobs",
        "top_p",
        "top_prompt_logprobs",
    ]
)
_MISTRAL_MESSAGE_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "system": frozenset({"role", "content"}),
        "user": frozenset({"role", "content"}),
        "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
        "tool": frozenset({"role", "content", "tool_call_id", "name"}),
    }
)


class MistralStub(OpenAIStub):
    """Mistral's chat completions API (``base_path`` ``/v1``; the official SDK's
    ``server_url`` is ``stub.url``, as it adds ``/v1`` itself).

    Differences from :class:`OpenAIStub`: 9-character alphanumeric tool-call ids; tool
    calls streamed whole, one per delta; the usage on the finishing frame of every
    stream (no ``stream_options``); error bodies ``{"object": "error", "message",
    "type", "param", "code"}`` (a 429 is ``type: "rate_limited"``, ``code: "1300"``; a
    spent monthly quota is the same 429 with ``x-ratelimit-remaining-tokens-month: 0``
    and no ``Retry-After``); unknown body or message fields refused with 422
    (``message: {"detail": [{type: "extra_forbidden", loc, msg, input}]}``); tool-call
    ids that are not 9 alphanumerics refused with 400 (``invalid_function_call``,
    code ``"3280"``, as the service answers). An error inside a stream is a chunk with
    ``finish_reason: "error"`` followed by ``data: [DONE]``.
    """

    dialect = "mistral"
    base_path = "/v1"
    whole_tool_calls: ClassVar[bool] = True
    usage_on_finish: ClassVar[bool] = True
    invalid_tool_call_id_status: ClassVar[int] = 400
    """The status refusing a tool-call id that is not 9 alphanumerics: 400, as the
    service answers (``{"object": "error", "type": "invalid_function_call", "code":
    "3280"}``, reported in public issue threads)."""
    role_delta: ClassVar[Mapping[str, Any]] = MappingProxyType({"role": "assistant", "content": ""})

    def tool_call_id(self) -> str:
        return _random(9)

    def completion_id(self) -> str:
        return _random(32, "0123456789abcdef")

    def response_headers(self) -> list[tuple[str, str]]:
        return [("mistral-correlation-id", _random(32, "0123456789abcdef"))]

    def error_payload(
        self, status: int, message: str, *, kind: str | None = None, code: Any = None
    ) -> Any:
        if kind is None:
            kind = {401: "unauthorized", 429: "rate_limited"}.get(
                status, "internal_server_error" if status >= 500 else "invalid_request_error"
            )
        return {"object": "error", "message": message, "type": kind, "param": None, "code": code}

    def usage_payload(self, usage: Usage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        }

    def message_payload(self, text: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": text,
            "tool_calls": [self.tool_call_payload(call) for call in calls] or None,
            "prefix": False,
        }

    def wants_stream_usage(self, body: Mapping[str, Any]) -> bool:
        return False

    def envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        for choice in payload.get("choices") or ():
            choice.pop("logprobs", None)
        return payload

    def rate_limit_response(self, fault: Fault, headers: Sequence[tuple[str, str]]) -> StubResponse:
        """Mistral's 429: ``type: "rate_limited"``, ``code: "1300"``."""
        return self.error_response(
            429, fault.message, kind="rate_limited", code="1300", headers=headers
        )

    def quota_response(self, fault: Fault) -> StubResponse:
        """A spent monthly token quota: the same 429 body as a rate limit (Mistral has no
        distinct error for it), no ``Retry-After``, and the headers that tell it apart:
        ``x-ratelimit-remaining-tokens-month: 0`` (with ``x-ratelimit-limit-tokens-month``)."""
        return self.error_response(
            429,
            fault.message,
            kind="rate_limited",
            code="1300",
            headers=[
                ("x-ratelimit-limit-tokens-month", str(MISTRAL_MONTHLY_TOKENS)),
                ("x-ratelimit-remaining-tokens-month", "0"),
            ],
        )

    def stream_error_frames(self, fault: Fault, chunk: dict[str, Any]) -> list[bytes]:
        event = dict(chunk)
        event["choices"] = [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
        return [_sse(event), _DONE]

    def validate(self, body: Mapping[str, Any]) -> StubResponse | None:
        details: list[dict[str, Any]] = [
            _extra(["body", key], body[key]) for key in body if key not in _MISTRAL_FIELDS
        ]
        for position, message in enumerate(body.get("messages") or ()):
            if not isinstance(message, Mapping):
                continue
            allowed = _MISTRAL_MESSAGE_FIELDS.get(str(message.get("role")), frozenset())
            details += [
                _extra(["body", "messages", position, str(message.get("role")), key], value)
                for key, value in message.items()
                if key not in allowed
            ]
        if details:
            return json_response(
                422,
                {
                    "object": "error",
                    "message": {"detail": details},
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
                self.response_headers(),
            )
        for message in body.get("messages") or ():
            if not isinstance(message, Mapping):
                continue
            ids = [message.get("tool_call_id")] if message.get("role") == "tool" else []
            ids += [
                call.get("id")
                for call in message.get("tool_calls") or ()
                if isinstance(call, Mapping)
            ]
            for call_id in ids:
                if not isinstance(call_id, str) or not _MISTRAL_ID.fullmatch(call_id):
                    return self.error_response(
                        self.invalid_tool_call_id_status,
                        f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, "
                        "with a length of 9.",
                        kind="invalid_function_call",
                        code="3280",
                    )
        return super().validate(body)


def _extra(loc: list[Any], value: Any) -> dict[str, Any]:
    return {
        "type": "extra_forbidden",
        "loc": loc,
        "msg": "Extra inputs are not permitted",
        "input": value,
    }


def _arguments(call: ToolCall) -> str:
    return json.dumps(dict(call.arguments), separators=(",", ":"))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _paced(frames: Sequence[bytes], delay: float) -> AsyncIterator[bytes]:
    """The frames, ``delay`` seconds apart (the first at once)."""
    for position, frame in enumerate(frames):
        if position and delay > 0 and math.isfinite(delay):
            await trio.sleep(delay)
        yield frame
