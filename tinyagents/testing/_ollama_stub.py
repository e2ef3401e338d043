"""A stub of the Ollama server: ``POST /api/chat`` (JSON and NDJSON streaming),
``GET /api/tags``, ``GET /api/version`` and ``GET /``."""

from __future__ import annotations

import json
import math
import secrets
import string
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import trio

from ..llm._types import ToolCall, Usage
from ._server import (
    FaultKind,
    RecordedRequest,
    Responder,
    StubResponse,
    StubServer,
    word_count,
)

__all__ = ["OllamaStub"]

_JSON = ("content-type", "application/json; charset=utf-8")
_NDJSON = ("content-type", "application/x-ndjson")
_BUSY = "server busy, please try again.  maximum pending requests exceeded"
_ID_ALPHABET = string.ascii_lowercase + string.digits
OLLAMA_QUOTA_MESSAGE = (
    "you (stub) have reached your weekly usage limit, upgrade for higher limits: "
    "https://ollama.com/upgrade"
)
"""What Ollama's cloud answers (with 429) when an account's usage limit is reached."""


class OllamaStub(StubServer):
    """Serves Ollama's native API with scripted replies (see :class:`StubServer`).

    ``base_url`` is the server root, as the ``ollama`` SDK's ``host`` (it appends
    ``/api/chat``) and the :class:`~tinyagents.llm.ollama.Ollama` adapter's ``base_url``.

    ``/api/chat`` answers like the real server: with ``"stream": false`` one JSON object;
    otherwise (``stream`` true *or absent*: the server's default) ``application/x-ndjson``,
    one ``done: false`` line per text piece, one line per tool call (whole, arguments as an
    object), then a ``done: true`` line with ``done_reason`` and the counters
    (``prompt_eval_count``, ``eval_count``, durations in ns; zero counters are left out as
    Go's ``omitempty`` does). A ``"tool_calls"`` finish is reported as ``done_reason:
    "stop"``, as Ollama does.

    Tool calls carry no ``id`` (the documented shape, and what servers before 0.12.10
    send); with ``tool_call_ids=True`` they carry one as newer servers do (the reply's id,
    else ``call_`` and 8 random lower-case letters or digits) and ``function.index``.

    Faults: 429 (with ``Retry-After`` and ``retry-after-ms``); a spent quota
    (``Fault.rate_limited(quota=True)``) as Ollama's cloud reports a reached usage limit:
    429 ``{"error": "you (stub) have reached your weekly usage limit, upgrade for higher
    limits: ..."}`` with no retry headers; overloaded as 503 "server
    busy", 500 and any status with ``{"error": "..."}``; malformed (a body, or a first
    stream line, that is not JSON); truncated (the stream stops without its ``done: true``
    line, cleanly or by cutting the connection; a non-streamed body is cut in half);
    error in stream (an ``{"error": "..."}`` line after ``after`` lines; with ``stream:
    false`` the real server answers 500 instead, and so does the stub).

    ``models`` are listed by ``/api/tags``; chat accepts any model name (script a
    ``Fault.status_code(404, 'model "x" not found, try pulling it first')`` to refuse one).
    """

    dialect = "ollama"
    base_path = ""
    version = "0.12.10"

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        responder: Responder | None = None,
        models: Iterable[str] = ("llama3.2:latest",),
        tool_call_ids: bool = False,
    ) -> None:
        super().__init__(port=port, host=host, responder=responder)
        if isinstance(models, str) or not isinstance(models, Iterable):
            raise TypeError(
                f"models must be a sequence of model names such as ['llama3.2:latest'], "
                f"not {models!r}"
            )
        self.models = list(models)
        for name in self.models:
            if not isinstance(name, str) or not name:
                raise TypeError(f"models must hold non-empty str names, not {name!r}")
        if not isinstance(tool_call_ids, bool):
            raise TypeError(f"tool_call_ids must be a bool, not {tool_call_ids!r}")
        self.tool_call_ids = tool_call_ids

    async def respond(self, request: RecordedRequest) -> StubResponse:
        """Route one request."""
        path = request.path.split("?", 1)[0].rstrip("/") or "/"
        if request.method == "POST" and path == "/api/chat":
            return await self._chat(request)
        if request.method == "GET" and path == "/":
            return StubResponse(
                200, [("content-type", "text/plain; charset=utf-8")], b"Ollama is running"
            )
        if request.method == "GET" and path == "/api/version":
            return _json(200, {"version": self.version})
        if request.method == "GET" and path == "/api/tags":
            return _json(200, {"models": [_tag(name) for name in self.models]})
        return StubResponse(404, [("content-type", "text/plain")], b"404 page not found")

    # -- /api/chat -------------------------------------------------------------------

    async def _chat(self, request: RecordedRequest) -> StubResponse:
        body = request.json
        if not isinstance(body, dict):
            return _json(400, {"error": "invalid request body"})
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _json(400, {"error": "model is required"})
        streaming = body.get("stream") is not False  # absent or null: the server streams
        reply = self.next_reply(request)
        fault = reply.fault

        if fault is not None:
            kind = fault.kind
            if kind is FaultKind.RATE_LIMITED and fault.quota_exhausted:
                return _json(429, {"error": OLLAMA_QUOTA_MESSAGE})
            if kind is FaultKind.RATE_LIMITED:
                return _json(429, {"error": fault.message}, _retry_headers(fault.retry_after))
            if kind is FaultKind.OVERLOADED:
                return _json(503, {"error": _BUSY}, _retry_headers(fault.retry_after))
            if kind in (FaultKind.SERVER_ERROR, FaultKind.STATUS):
                return _json(fault.status, {"error": fault.message})
            if kind is FaultKind.ERROR_IN_STREAM and not streaming:
                return _json(500, {"error": fault.message})

        usage = reply.usage or Usage(_request_words(body), word_count(reply.text))
        done_reason = "stop" if reply.finish == "tool_calls" else reply.finish
        calls = [self._wire_call(call, index) for index, call in enumerate(reply.tool_calls)]

        if not streaming:
            await reply.generate()
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if calls:
                message["tool_calls"] = calls
            payload = _encode(_final(model, message, done_reason, usage))
            if fault is not None and fault.kind is FaultKind.MALFORMED:
                return StubResponse(200, [_JSON], payload[: len(payload) // 2] + b"<oops>")
            if fault is not None and fault.kind is FaultKind.TRUNCATED:
                half = payload[: len(payload) // 2]
                if fault.cut_connection:
                    return StubResponse(200, [_JSON], _Paced([half], 0.0), cut_connection=True)
                return StubResponse(200, [_JSON], half)
            return StubResponse(200, [_JSON], payload)

        lines: list[dict[str, Any] | str] = [
            _line(model, {"role": "assistant", "content": piece}) for piece in reply.pieces()
        ]
        lines += [
            _line(model, {"role": "assistant", "content": "", "tool_calls": [call]})
            for call in calls
        ]
        final = _final(model, {"role": "assistant", "content": ""}, done_reason, usage)
        cut = False
        if fault is None:
            lines.append(final)
        elif fault.kind is FaultKind.MALFORMED:
            lines = ['{"model": "' + model + '", "message": {"role": "assist', *lines, final]
        elif fault.kind is FaultKind.TRUNCATED:
            lines = lines[: fault.after]
            cut = fault.cut_connection
        elif fault.kind is FaultKind.ERROR_IN_STREAM:
            lines = [*lines[: fault.after], {"error": fault.message}]
        else:
            lines.append(final)
        pieces = [
            (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines
        ]
        return StubResponse(200, [_NDJSON], _Paced(pieces, reply.delay), cut_connection=cut)

    def _wire_call(self, call: ToolCall, index: int) -> dict[str, Any]:
        """A tool call as Ollama sends it: whole, arguments as an object."""
        function: dict[str, Any] = {"name": call.name, "arguments": dict(call.arguments)}
        if not self.tool_call_ids:
            return {"function": function}
        call_id = call.id or "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        return {"id": call_id, "function": {"index": index, **function}}


def _now() -> str:
    """RFC 3339 with nanoseconds' room, as Go prints ``time.Time``: ``...T12:00:00.123456Z``."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _line(model: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "created_at": _now(), "message": message, "done": False}


def _final(model: str, message: dict[str, Any], done_reason: str, usage: Usage) -> dict[str, Any]:
    """The ``done: true`` object, with the metrics (zero values left out)."""
    prompt_ns = usage.input_tokens * 2_000_000
    eval_ns = usage.output_tokens * 20_000_000
    load_ns = 1_500_000
    metrics = {
        "total_duration": load_ns + prompt_ns + eval_ns + 500_000,
        "load_duration": load_ns,
        "prompt_eval_count": usage.input_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": usage.output_tokens,
        "eval_duration": eval_ns,
    }
    return {
        "model": model,
        "created_at": _now(),
        "message": message,
        "done_reason": done_reason,
        "done": True,
        **{key: value for key, value in metrics.items() if value},
    }


def _tag(name: str) -> dict[str, Any]:
    """One ``/api/tags`` entry."""
    digest = secrets.token_hex(32)
    return {
        "name": name,
        "model": name,
        "modified_at": _now(),
        "size": 2_019_393_189,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


def _request_words(body: dict[str, Any]) -> int:
    return sum(
        word_count(message["content"])
        for message in body.get("messages") or []
        if isinstance(message, dict) and isinstance(message.get("content"), str)
    )


def _retry_headers(retry_after: float | None) -> list[tuple[str, str]]:
    if retry_after is None:
        return []
    return [("retry-after", f"{retry_after:g}"), ("retry-after-ms", str(round(retry_after * 1000)))]


def _encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _json(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> StubResponse:
    """A JSON body as gin sends it (``application/json; charset=utf-8``)."""
    return StubResponse(status, [_JSON, *headers], _encode(payload))


class _Paced:
    """The body pieces, each after ``delay`` seconds.

    An iterator object rather than an async generator (like ``paced``): when the client
    goes away mid-body the server stops iterating, and an abandoned async generator
    would make trio warn when it is collected.
    """

    def __init__(self, pieces: Iterable[bytes], delay: float) -> None:
        self._pieces = iter(pieces)
        self._delay = delay if delay > 0 and math.isfinite(delay) else 0.0

    def __aiter__(self) -> _Paced:
        return self

    async def __anext__(self) -> bytes:
        try:
            piece = next(self._pieces)
        except StopIteration:
            raise StopAsyncIteration from None
        if self._delay:
            await trio.sleep(self._delay)
        return piece
