"""The Ollama adapter: ``POST {base_url}/api/chat`` in Ollama's native dialect.

Wire format (Ollama's ``docs/api.md`` and the ``ollama`` Python SDK):

* Request: ``model``, ``messages`` (roles ``system`` / ``user`` / ``assistant`` / ``tool``;
  assistant ``tool_calls`` are ``[{"function": {"name", "arguments": <object>}}]``; a tool
  result is a ``tool`` message naming its tool in ``tool_name``), ``tools`` in OpenAI's
  function format, ``stream`` (always sent: the server streams when it is absent) and
  ``options`` (``temperature``, ``num_predict`` for the token limit, ``stop``).
* Answer: ``message`` (``content`` and ``tool_calls`` with arguments as a JSON *object*),
  ``done``, ``done_reason`` (``"stop"`` / ``"length"``) and the counters
  ``prompt_eval_count`` / ``eval_count`` (the usage; left out when zero, and a final
  reply with none of the metrics has unknown usage).
* Streaming: ``application/x-ndjson``, one JSON object per line: ``done: false`` lines
  carry pieces of ``message.content``, a tool call arrives whole in one line, and the
  ``done: true`` line carries ``done_reason`` and the counters. An error after the stream
  began is a line ``{"error": "..."}``.

Tool-call ids: Ollama servers before 0.12.10 give no id, newer ones an id like
``call_k3x9q0ab``. A server's id is kept; otherwise the adapter makes one up,
deterministically, as ``call_<i>_<h>``: ``i`` is the call's position in the answer (0, 1,
...) and ``h`` the first 8 hex digits of the SHA-256 of the call's name and arguments
(canonical JSON). The same answer thus always gets the same ids, streamed or not, so a
tool result can name its call. Ollama itself matches results by ``tool_name``; the ids go
on the wire only with ``send_tool_call_ids=True`` (understood by servers 0.12.10 and later,
ignored by older ones).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import trio

from ..errors import Overloaded, ProtocolError, ProviderError, ServerError
from ._http import (
    HTTPProvider,
    deliver,
    error_for_status,
    parse_json,
    read_in_task,
    retry_after_from,
)
from ._types import ChatRequest, ChatResponse, Chunk, Message, ToolCall, ToolSpec, Usage

__all__ = ["OLLAMA_TIMEOUT", "Ollama"]

# what Ollama's cloud says once an account's hourly or weekly allowance is spent
_USAGE_LIMIT = re.compile(r"reached your \w+ usage limit", re.IGNORECASE)

_DEFAULT_PORT = 11434

OLLAMA_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
"""The adapter's default HTTP timeouts: 10 s to connect, 300 s for any one read or write
(a local server may first have to load the model before it sends a byte)."""


class Ollama(HTTPProvider):
    """A chat model served by Ollama (``/api/chat``).

    ``base_url`` is the server root, as the ``ollama`` SDK's ``host``: by default
    ``$OLLAMA_HOST`` if set, else ``http://localhost:11434``. Like the SDK, a host
    without a scheme (``"gpu-box"``, ``"gpu-box:8080"``, ``":11435"``) means
    ``http://`` and port 11434 unless one is given. No API key is needed; a key (the
    argument or ``$OLLAMA_API_KEY``, e.g. for ollama.com or a proxy) is sent as
    ``Authorization: Bearer``.

    ``send_tool_call_ids=True`` also sends tool-call ids (``tool_calls[].id`` and the tool
    results' ``tool_call_id``), which Ollama 0.12.10 and later understand.

    ``ChatRequest.options`` entries go into the request body as they are (``keep_alive``,
    ``format``, ``think``...), except that an ``"options"`` mapping there is merged into the
    body's ``options`` (so ``{"options": {"seed": 1, "num_ctx": 8192}}`` keeps the
    temperature and token limit) and ``stream`` is always the adapter's own.

    Errors: 404 (model not found) and other 4xx are :class:`~tinyagents.errors.BadRequest`,
    429 :class:`~tinyagents.errors.RateLimited`, 503 (Ollama's "server busy")
    :class:`~tinyagents.errors.Overloaded`, other 5xx :class:`~tinyagents.errors.ServerError`;
    an ``{"error": ...}`` line inside a 200 stream raises :class:`ServerError` (status 200);
    a stream without its ``done: true`` line, or a line that is not JSON, raises
    :class:`~tinyagents.errors.ProtocolError`.
    """

    name = "ollama"
    gen_ai_provider: ClassVar[str] = "ollama"
    api_key_env: ClassVar[str | None] = "OLLAMA_API_KEY"
    host_env: ClassVar[str] = "OLLAMA_HOST"
    default_base_url: ClassVar[str] = "http://localhost:11434"
    requires_key: ClassVar[bool] = False

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = OLLAMA_TIMEOUT,
        call_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
        send_tool_call_ids: bool = False,
    ) -> None:
        if base_url is None:
            host = os.environ.get(self.host_env, "").strip()
            base_url = _parse_host(host) if host else None
        elif "://" not in base_url:
            base_url = _parse_host(base_url)
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            call_timeout=call_timeout,
            headers=headers,
            name=name,
            transport=transport,
            limits=limits,
        )
        self.send_tool_call_ids = send_tool_call_ids

    # -- the request ---------------------------------------------------------------------

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The ``/api/chat`` body for ``request``."""
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = list(request.stop)
        extra = dict(request.options)
        more_options = extra.pop("options", None)
        if isinstance(more_options, Mapping):
            options.update(more_options)
        elif more_options is not None:
            raise TypeError(
                f"ChatRequest.options['options'] must be a mapping, not {more_options!r}"
            )
        body: dict[str, Any] = {
            "model": request.model,
            "messages": _wire_messages(request.messages, send_ids=self.send_tool_call_ids),
        }
        if request.tools:
            body["tools"] = [_wire_tool(tool) for tool in request.tools]
        if request.output is not None:
            body["format"] = dict(request.output.schema)
        if options:
            body["options"] = options
        body.update(extra)
        body["stream"] = stream
        return body

    # -- errors --------------------------------------------------------------------------

    def _error_message(self, body: Any, text: str, headers: Mapping[str, str]) -> tuple[str, bool]:
        """Ollama's ``{"error": "..."}``; the quota is spent when it says the account
        "reached your ... usage limit" (Ollama's cloud models, hourly or weekly)."""
        message, quota = super()._error_message(body, text, headers)
        return message, quota or _USAGE_LIMIT.search(message) is not None

    async def _raise_for_status(self, response: httpx.Response) -> None:
        try:
            await super()._raise_for_status(response)
        except ServerError as exc:
            if exc.status == 503:  # Ollama's "server busy ... maximum pending requests"
                raise Overloaded(
                    self.name,
                    exc.detail,
                    status=503,
                    retry_after=retry_after_from(response.headers),
                ) from None
            raise

    def _reported_error(self, payload: Mapping[str, Any]) -> ProviderError:
        """The error for an ``{"error": ...}`` object inside a 200 reply."""
        message = str(payload.get("error"))
        status = payload.get("status")
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            if status == 503:
                return Overloaded(self.name, message, status=503)
            return error_for_status(self.name, status, message)
        return ServerError(self.name, f"error inside the reply: {message}", status=200)

    # -- the answer ----------------------------------------------------------------------

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        reply = await self._post("/api/chat", self._body(request, stream=False))
        if not isinstance(reply, Mapping):
            raise ProtocolError(self.name, "the reply is not a JSON object")
        if reply.get("error"):
            raise self._reported_error(reply)
        message = reply.get("message")
        if not isinstance(message, Mapping):
            raise ProtocolError(self.name, "the reply has no message")
        content = _content(message, self.name)
        calls = _tool_calls(message, 0, self.name)
        return ChatResponse(
            message=Message.assistant(content, calls),
            usage=_usage(reply),
            finish_reason=_finish_reason(reply.get("done_reason"), bool(calls)),
            model=str(reply.get("model") or request.model),
        )

    async def _stream(
        self, request: ChatRequest, stream: trio.abc.SendChannel[Chunk]
    ) -> ChatResponse:
        state = _StreamState(request.model)
        async with (
            self._post_stream("/api/chat", self._body(request, stream=True)) as response,
            read_in_task(response.aiter_lines()) as reader,
        ):
            async for raw in reader:
                if state.response is not None or not raw.strip():
                    continue  # read to the end: the connection can be reused
                for chunk in state.feed(parse_json(raw, self.name), self):
                    await deliver(stream, chunk)
            if state.response is not None:
                return state.response
            if reader.error is not None:
                raise reader.error  # an httpx error: _post_stream translates it
        raise ProtocolError(self.name, 'the stream ended without its "done": true line')


class _StreamState:
    """What an NDJSON stream has delivered so far."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.response: ChatResponse | None = None

    def feed(self, line: Any, provider: Ollama) -> list[Chunk]:
        """The chunks of one stream line; raises the error an error line reports."""
        if not isinstance(line, Mapping):
            raise ProtocolError(provider.name, "a stream line is not a JSON object")
        if line.get("error"):
            raise provider._reported_error(line)
        chunks: list[Chunk] = []
        message = line.get("message")
        if isinstance(message, Mapping):
            delta = _content(message, provider.name)
            if delta:
                self.text.append(delta)
                chunks.append(Chunk(delta=delta))
            for call in _tool_calls(message, len(self.calls), provider.name):
                self.calls.append(call)
                chunks.append(Chunk(tool_call=call))
        if line.get("done") is True:
            usage = _usage(line)
            finish = _finish_reason(line.get("done_reason"), bool(self.calls))
            chunks.append(Chunk(finish_reason=finish, usage=usage))
            self.response = ChatResponse(
                message=Message.assistant("".join(self.text), self.calls),
                usage=usage,
                finish_reason=finish,
                model=str(line.get("model") or self.model),
            )
        return chunks


# -- helpers ---------------------------------------------------------------------------------


def _parse_host(host: str) -> str:
    """A base URL from an ``OLLAMA_HOST``-style value, as the ``ollama`` SDK reads it:
    no scheme means ``http`` and port 11434; a scheme without a port keeps the scheme's
    default; a path is kept; IPv6 addresses keep their brackets."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest, default_port = "http", host, _DEFAULT_PORT
    else:
        default_port = 0
    split = urllib.parse.urlsplit(f"{scheme}://{rest}")
    hostname = split.hostname or "127.0.0.1"
    try:
        if isinstance(ipaddress.ip_address(hostname), ipaddress.IPv6Address):
            hostname = f"[{hostname}]"
    except ValueError:
        pass
    port = split.port or default_port
    netloc = f"{hostname}:{port}" if port else hostname
    path = split.path.strip("/")
    return f"{scheme}://{netloc}/{path}" if path else f"{scheme}://{netloc}"


def _wire_messages(messages: Sequence[Message], *, send_ids: bool) -> list[dict[str, Any]]:
    """The conversation in Ollama's terms. A tool result without ``name`` gets the name of
    the call its ``tool_call_id`` names, when an earlier assistant message has it."""
    names: dict[str, str] = {}
    wire: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.tool_calls:
            calls = []
            for call in message.tool_calls:
                names[call.id] = call.name
                wire_call: dict[str, Any] = {
                    "function": {"name": call.name, "arguments": dict(call.arguments)}
                }
                if send_ids and call.id:
                    wire_call = {"id": call.id, **wire_call}
                calls.append(wire_call)
            entry["tool_calls"] = calls
        elif message.role == "tool":
            tool_name = message.name or names.get(message.tool_call_id or "")
            if tool_name:
                entry["tool_name"] = tool_name
            if send_ids and message.tool_call_id:
                entry["tool_call_id"] = message.tool_call_id
        wire.append(entry)
    return wire


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _content(message: Mapping[str, Any], provider: str) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise ProtocolError(provider, "message.content is not a string")
    return content


def _tool_calls(message: Mapping[str, Any], start: int, provider: str) -> list[ToolCall]:
    """The tool calls of one message (or stream line), numbered from ``start``."""
    raw = message.get("tool_calls")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProtocolError(provider, "message.tool_calls is not a list")
    return [_tool_call(item, start + offset, provider) for offset, item in enumerate(raw)]


def _tool_call(raw: Any, index: int, provider: str) -> ToolCall:
    function = raw.get("function") if isinstance(raw, Mapping) else None
    if not isinstance(function, Mapping):
        raise ProtocolError(provider, "a tool call has no function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(provider, "a tool call has no function name")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    elif isinstance(arguments, str):  # not Ollama's shape, but harmless to accept
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise ProtocolError(
                provider, f"the arguments of tool call {name!r} are not JSON"
            ) from None
    if not isinstance(arguments, Mapping):
        raise ProtocolError(provider, f"the arguments of tool call {name!r} are not an object")
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = _made_up_id(index, name, arguments)
    return ToolCall(call_id, name, arguments)


def _made_up_id(index: int, name: str, arguments: Mapping[str, Any]) -> str:
    """``call_<index>_<8 hex digits of SHA-256(name, arguments)>``: stable for the same call."""
    canonical = json.dumps(
        [name, arguments], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    return f"call_{index}_{digest}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


_METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
"""The metrics of a final reply; Ollama leaves out those that are zero (``omitempty``)."""


def _usage(reply: Mapping[str, Any]) -> Usage:
    """``prompt_eval_count`` / ``eval_count``. A counter that is absent while other
    metrics are there is zero (Go's ``omitempty``); a final reply with no metrics at all
    (a server that does not report them) has unknown usage."""
    if not any(field in reply for field in _METRICS):
        return Usage.unknown()
    return Usage(_count(reply.get("prompt_eval_count")), _count(reply.get("eval_count")))


def _finish_reason(done_reason: Any, has_calls: bool) -> str:
    """``"tool_calls"`` when the answer called tools and stopped normally; otherwise
    Ollama's ``done_reason`` (``"stop"``, ``"length"``, or its own word such as
    ``"load"``), ``"stop"`` when there is none."""
    reason = done_reason if isinstance(done_reason, str) and done_reason else "stop"
    if has_calls and reason == "stop":
        return "tool_calls"
    return reason
