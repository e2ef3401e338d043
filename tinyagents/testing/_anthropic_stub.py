"""A stub of Anthropic's Messages API, speaking its real wire format."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import attrs
import trio

from ..llm._types import ToolCall
from ._server import (
    FaultKind,
    RecordedRequest,
    StubReply,
    StubResponse,
    StubServer,
    json_response,
    word_count,
)

__all__ = ["AnthropicStub"]

_STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


ANTHROPIC_QUOTA_MESSAGE = (
    "This request would exceed your account's monthly spend limit. Please try again later."
)
"""The text of Anthropic's spend-limit error."""


def _new_id(prefix: str) -> str:
    """An id shaped like Anthropic's (``msg_01…``, ``toolu_01…``, ``req_01…``)."""
    return f"{prefix}_01{uuid.uuid4().hex[:22]}"


def _error_type(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": _new_id("req"),
    }


def _sse(event: str, payload: Mapping[str, Any]) -> bytes:
    """One named server-sent event, framed as the API frames it."""
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def _request_text(body: Mapping[str, Any]) -> str:
    """Every text of a Messages request (system, text blocks, tool results)."""
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        parts.extend(str(b.get("text", "")) for b in system if isinstance(b, dict))
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "tool_result" and isinstance(block.get("content"), str):
                    parts.append(block["content"])
    return " ".join(parts)


class AnthropicStub(StubServer):
    """A stub of ``POST /v1/messages`` (Anthropic's Messages API).

    ``base_url`` is the server root: give it to the :class:`~tinyagents.llm.anthropic.Anthropic`
    adapter and to the official SDK (``anthropic.AsyncAnthropic(base_url=...)``), which
    both append ``/v1/messages``.

    Replies are real Messages API JSON (``msg_…`` ids, ``tool_use`` blocks with
    ``toolu_…`` ids, ``stop_reason``, ``usage`` with the cache counters) or, when the
    request has ``"stream": true``, the real event sequence (``message_start``,
    ``content_block_start``, ``ping``, ``content_block_delta``, ``content_block_stop``,
    ``message_delta``, ``message_stop``), tool input streamed as several
    ``input_json_delta`` pieces (the first one empty). Any ``x-api-key`` or
    ``Authorization: Bearer`` key and any ``anthropic-version`` are accepted (see
    :meth:`api_key` and :meth:`version`); a request missing ``model``, ``max_tokens`` or
    ``messages``, or with a role other than ``user``/``assistant``, gets the API's 400.

    Faults: 429 ``rate_limit_error`` (with ``retry-after`` and ``retry-after-ms``); a
    spent quota (``Fault.rate_limited(quota=True)``) as the API reports a reached monthly
    spend limit: 429 ``rate_limit_error`` with ``details.error_code:
    "enforced_spend_limit_reached"`` and no retry headers (an exhausted prepaid credit
    balance is a 400 ``invalid_request_error`` instead: script it with
    ``Fault.status_code(400, "Your credit balance is too low ...")``); 529
    ``overloaded_error`` (``retry-after`` when set), 500 ``api_error``, any status with
    its error type, a malformed body (or first event), a stream truncated after
    ``after`` deltas (a clean end without ``message_stop``, or a cut connection), and an
    ``event: error`` (``overloaded_error``) after ``after`` deltas of a 200 stream.
    Without streaming, ``error_in_stream`` answers as the API does when the model is
    overloaded before answering: HTTP 529.
    """

    dialect = "anthropic"
    base_path = ""
    messages_path = "/v1/messages"

    async def __aenter__(self) -> AnthropicStub:
        await super().__aenter__()
        return self

    @staticmethod
    def api_key(request: RecordedRequest) -> str | None:
        """The key a request carried, as ``x-api-key`` or ``Authorization: Bearer``."""
        key = request.headers.get("x-api-key")
        if key is not None:
            return key
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    @staticmethod
    def version(request: RecordedRequest) -> str | None:
        """The ``anthropic-version`` header a request carried."""
        return request.headers.get("anthropic-version")

    # -- the service --------------------------------------------------------------------

    async def respond(self, request: RecordedRequest) -> StubResponse:
        path = request.path.partition("?")[0]
        if request.method != "POST" or path != self.messages_path:
            return self.error(404, f"Not found: {request.method} {request.path}")
        body = request.json
        problem = self._invalid(body)
        if problem is not None:
            return self.error(400, problem)
        reply = _forced_tool(body, self.next_reply(request))
        stream = body.get("stream") is True
        fault = reply.fault
        if fault is not None:
            headers: list[tuple[str, str]] = []
            if fault.retry_after is not None and fault.kind in (
                FaultKind.RATE_LIMITED,
                FaultKind.OVERLOADED,
            ):
                headers.append(("retry-after", f"{fault.retry_after:g}"))
                headers.append(("retry-after-ms", f"{fault.retry_after * 1000:g}"))
            if fault.kind is FaultKind.RATE_LIMITED and fault.quota_exhausted:
                return self.quota_error()
            if fault.kind is FaultKind.RATE_LIMITED:
                return self.error(429, fault.message, headers)
            if fault.kind is FaultKind.OVERLOADED:
                return self.error(529, "Overloaded", headers)
            if fault.kind in (FaultKind.SERVER_ERROR, FaultKind.STATUS):
                return self.error(fault.status, fault.message)
            if fault.kind is FaultKind.MALFORMED:
                if stream:
                    return self._sse_response([b"event: message_start\ndata: {not json\n\n"])
                return StubResponse(
                    200, [("content-type", "application/json")], b'{"id": "msg_01", "content": ['
                )
            if fault.kind is FaultKind.ERROR_IN_STREAM and not stream:
                return self.error(529, fault.message)
            if fault.kind is FaultKind.TRUNCATED and not stream:
                whole = json.dumps(self.message(body, reply)).encode()
                return StubResponse(
                    200,
                    [("content-type", "application/json")],
                    _pieces([whole[: len(whole) // 2]]),
                    cut_connection=fault.cut_connection,
                )
        if not stream:
            await reply.generate()
            return json_response(200, self.message(body, reply), [("request-id", _new_id("req"))])
        return self._sse_response(
            self.events(body, reply),
            cut_connection=fault is not None
            and fault.kind is FaultKind.TRUNCATED
            and fault.cut_connection,
        )

    def error(
        self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()
    ) -> StubResponse:
        """An error reply in Anthropic's shape: ``{"type": "error", "error": {type, message}}``."""
        return json_response(
            status,
            _error_body(_error_type(status), message),
            [("request-id", _new_id("req")), *headers],
        )

    def quota_error(self) -> StubResponse:
        """The reply when the account's monthly spend limit is reached
        (``Fault.rate_limited(quota=True)``): a 429 ``rate_limit_error`` whose
        ``error.details.error_code`` is ``enforced_spend_limit_reached``, with the API's
        own text and no retry advice."""
        body = _error_body("rate_limit_error", ANTHROPIC_QUOTA_MESSAGE)
        body["error"]["details"] = {"error_code": "enforced_spend_limit_reached"}
        return json_response(429, body, [("request-id", _new_id("req"))])

    @staticmethod
    def _invalid(body: object) -> str | None:
        if not isinstance(body, dict):
            return "The request body is not valid JSON."
        if not isinstance(body.get("model"), str):
            return "model: Field required"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list):
            return "messages: Field required"
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        return None

    def _sse_response(
        self, events: Sequence[bytes] | AsyncIterator[bytes], *, cut_connection: bool = False
    ) -> StubResponse:
        body = events if not isinstance(events, Sequence) else _pieces(events)
        return StubResponse(
            200,
            [
                ("content-type", "text/event-stream; charset=utf-8"),
                ("cache-control", "no-cache"),
                ("request-id", _new_id("req")),
            ],
            body,
            cut_connection=cut_connection,
        )

    # -- rendering ----------------------------------------------------------------------

    def usage(self, body: Mapping[str, Any], reply: StubReply) -> tuple[int, int]:
        """Input and output tokens: the reply's ``usage``, else word counts."""
        if reply.usage is not None:
            return reply.usage.input_tokens, reply.usage.output_tokens
        return word_count(_request_text(body)), word_count(reply.text) + len(reply.tool_calls)

    @staticmethod
    def stop(body: Mapping[str, Any], reply: StubReply) -> tuple[str, str | None]:
        """``stop_reason`` and ``stop_sequence`` for a reply."""
        reason = _STOP_REASONS.get(reply.finish, reply.finish)
        sequence = None
        if reason == "stop_sequence":
            stops = body.get("stop_sequences") or []
            sequence = str(stops[0]) if stops else None
        return reason, sequence

    @staticmethod
    def _usage_object(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _tool_blocks(self, reply: StubReply) -> list[dict[str, Any]]:
        return [
            {
                "type": "tool_use",
                "id": call.id or _new_id("toolu"),
                "name": call.name,
                "input": dict(call.arguments),
            }
            for call in reply.tool_calls
        ]

    def message(self, body: Mapping[str, Any], reply: StubReply) -> dict[str, Any]:
        """The non-streaming reply: a Messages API ``message`` object."""
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        content.extend(self._tool_blocks(reply))
        reason, sequence = self.stop(body, reply)
        return {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": self._usage_object(*self.usage(body, reply)),
        }

    async def events(self, body: Mapping[str, Any], reply: StubReply) -> AsyncIterator[bytes]:
        """The streaming reply, event by event, with the reply's fault applied: ``delay``
        seconds pass before each ``content_block_delta``; ``truncated`` and
        ``error_in_stream`` faults act after ``after`` deltas."""
        fault = reply.fault
        limit = (
            fault.after
            if fault is not None and fault.kind in (FaultKind.TRUNCATED, FaultKind.ERROR_IN_STREAM)
            else None
        )
        input_tokens, output_tokens = self.usage(body, reply)
        start = self.message(body, reply)
        start.update(content=[], stop_reason=None, stop_sequence=None)
        start["usage"] = self._usage_object(input_tokens, min(1, output_tokens))
        yield _sse("message_start", {"type": "message_start", "message": start})

        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if reply.text:
            deltas = [{"type": "text_delta", "text": piece} for piece in reply.pieces()]
            blocks.append(({"type": "text", "text": ""}, deltas))
        size = max(1, reply.chunk_size)
        for tool in self._tool_blocks(reply):
            raw = json.dumps(tool["input"])
            pieces = ["", *(raw[i : i + size] for i in range(0, len(raw), size))]
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
            blocks.append(({**tool, "input": {}}, deltas))

        sent = 0
        pinged = False

        def cut() -> bool:
            return limit is not None and sent >= limit

        for index, (block, deltas) in enumerate(blocks):
            if cut():
                break
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            if not pinged:
                pinged = True
                yield _sse("ping", {"type": "ping"})
            for delta in deltas:
                if cut():
                    break
                if reply.delay > 0:
                    await trio.sleep(reply.delay)
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                sent += 1
            if cut():
                break
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})

        if fault is not None and fault.kind is FaultKind.ERROR_IN_STREAM:
            yield _sse("error", _error_body("overloaded_error", fault.message))
            return
        if fault is not None and fault.kind is FaultKind.TRUNCATED:
            return
        reason, sequence = self.stop(body, reply)
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": {"output_tokens": output_tokens},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})


def _forced_tool(body: Mapping[str, Any], reply: StubReply) -> StubReply:
    """As the API does when ``tool_choice`` names a tool: the model calls it. A reply
    whose text is a JSON object (and that scripts no calls) becomes that call, so one
    scripted structured answer serves every dialect."""
    choice = body.get("tool_choice")
    if not isinstance(choice, Mapping) or choice.get("type") != "tool" or reply.tool_calls:
        return reply
    try:
        arguments = json.loads(reply.text)
    except ValueError:
        return reply
    if not isinstance(arguments, dict):
        return reply
    call = ToolCall("", str(choice.get("name") or ""), arguments)
    return attrs.evolve(reply, text="", tool_calls=(call,))


async def _pieces(pieces: Sequence[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
