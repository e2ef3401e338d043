"""The Anthropic Messages API adapter (``POST {base_url}/v1/messages``).

The conversation is mapped into Anthropic's terms:

* ``system`` messages are joined (with a blank line) into the top-level ``system``
  string;
* ``user`` and ``assistant`` messages become messages of those roles; an assistant's
  tool calls become ``tool_use`` blocks (``id``, ``name``, ``input`` object);
* ``tool`` messages become ``tool_result`` blocks (``tool_use_id``, ``content``) of a
  **user** message;
* consecutive messages of the same role (for instance several tool results, or tool
  results followed by a user question) are merged into one message with several
  blocks, ``tool_result`` blocks first, since the API wants the roles to alternate and
  the results to open the user turn. A message made of a single text block is sent with
  a plain string ``content``.

Tools are sent as ``{name, description, input_schema}``. ``max_tokens`` is required
by the API: the request's, else the adapter's ``default_max_tokens`` (1024).
``stop`` becomes ``stop_sequences``; ``options`` are merged into the body unchanged.

Stop reasons are normalised: ``end_turn`` and ``stop_sequence`` give ``"stop"``,
``max_tokens`` and ``model_context_window_exceeded`` give ``"length"``, ``tool_use``
gives ``"tool_calls"``, ``refusal`` gives ``"content_filter"``; any other word is kept
as it is. Usage: ``input_tokens`` counts every prompt token (Anthropic's
``input_tokens`` plus ``cache_creation_input_tokens`` and ``cache_read_input_tokens``,
like OpenAI's ``prompt_tokens``), ``output_tokens`` is Anthropic's. A reply (or stream)
without ``input_tokens`` or ``output_tokens`` is marked unreported
(:meth:`Usage.unknown() <tinyagents.llm.Usage.unknown>` when it has neither), never a
made-up zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from typing import Any, ClassVar

import attrs
import httpx
import trio

from ..errors import (
    AuthenticationError,
    BadRequest,
    Overloaded,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from ._http import DEFAULT_TIMEOUT, HTTPProvider, deliver, iter_sse, parse_json
from ._types import ChatRequest, ChatResponse, Chunk, Message, ToolCall, ToolSpec, Usage

__all__ = ["ANTHROPIC_VERSION", "Anthropic"]

_SPEND_LIMIT = "enforced_spend_limit_reached"

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header the adapter sends unless told otherwise."""

_MAX_LEFT_OVER_EVENTS = 16
"""Events read (and ignored) after ``message_stop`` or an error before giving up on the
body's end."""

_STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _finish_reason(stop_reason: object) -> str:
    """The neutral finish reason for Anthropic's ``stop_reason``."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return "stop"
    return _STOP_REASONS.get(stop_reason, stop_reason)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_INPUT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
"""The ``usage`` fields that together count every prompt token."""


def _reported(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _usage(usage: Mapping[str, Any] | None) -> Usage:
    """The :class:`Usage` of an Anthropic ``usage`` object: every prompt token (cached
    ones included) and the output tokens; unreported when ``input_tokens`` or
    ``output_tokens`` is missing (or the whole object is)."""
    if usage is None:
        return Usage.unknown()
    complete = _reported(usage.get("input_tokens")) and _reported(usage.get("output_tokens"))
    return Usage(
        sum(_int(usage.get(field)) for field in _INPUT_FIELDS),
        _int(usage.get("output_tokens")),
        0 if complete else 1,
    )


# -- request mapping ----------------------------------------------------------------------


def _tool(spec: ToolSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": spec.name}
    if spec.description:
        tool["description"] = spec.description
    tool["input_schema"] = dict(spec.parameters)
    return tool


def _blocks(message: Message) -> list[dict[str, Any]]:
    """The content blocks of one non-system message."""
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.content or not message.tool_calls:
        blocks.append({"type": "text", "text": message.content})
    if message.role == "assistant":
        blocks.extend(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.arguments)}
            for call in message.tool_calls
        )
    return blocks


def _messages(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """The ``system`` text and the alternating ``messages`` of a conversation."""
    system: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    out: list[dict[str, Any]] = []
    for role, blocks in turns:
        if role == "user":
            # tool results must open the user turn that answers the tool calls
            blocks = sorted(blocks, key=lambda block: block["type"] != "tool_result")
        if len(blocks) > 1:
            # the API refuses empty text blocks; drop those merged next to others
            blocks = [b for b in blocks if b["type"] != "text" or b["text"]] or blocks[:1]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})
    return "\n\n".join(system), out


# -- response mapping ---------------------------------------------------------------------


def _tool_call(provider: str, block: Mapping[str, Any], arguments: object) -> ToolCall:
    if not isinstance(arguments, Mapping):
        raise ProtocolError(
            provider, f"tool_use input is not a JSON object: {type(arguments).__name__}"
        )
    return ToolCall(
        id=str(block.get("id") or ""), name=str(block.get("name") or ""), arguments=arguments
    )


def _error_from_event(provider: str, body: object, status: int) -> ProviderError:
    """The typed error for an Anthropic error object ``{"type": "error", "error": {...}}``
    received with HTTP ``status`` (200 when it came inside a stream)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    kind = str(error.get("type") or "") if isinstance(error, Mapping) else ""
    detail = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    message = f"{kind}: {detail}" if kind and detail else (kind or detail or "error event")
    if kind == "overloaded_error":
        return Overloaded(provider, message, status=status)
    if kind == "rate_limit_error":
        return RateLimited(provider, message, status=status)
    if kind in ("authentication_error", "permission_error"):
        return AuthenticationError(provider, message, status=status)
    if kind in ("invalid_request_error", "not_found_error", "request_too_large"):
        return BadRequest(provider, message, status=status)
    if kind == "timeout_error":
        return ProviderTimeout(provider, message, status=status)
    return ServerError(provider, message, status=status)


@attrs.define
class _Block:
    """A content block being streamed."""

    type: str
    id: str = ""
    name: str = ""
    input: object = None
    json_parts: list[str] = attrs.field(factory=list)


@attrs.define
class _StreamState:
    """What a stream has told so far."""

    id: str | None = None
    model: str = ""
    text: list[str] = attrs.field(factory=list)
    calls: list[tuple[int, ToolCall]] = attrs.field(factory=list)
    blocks: dict[int, _Block] = attrs.field(factory=dict)
    stop_reason: object = None
    input_counts: dict[str, int] = attrs.field(factory=dict)
    output_tokens: int | None = None
    done: bool = False

    def count_usage(self, usage: Mapping[str, Any]) -> None:
        """Take the counts of a ``usage`` object. They are cumulative totals, so they
        replace earlier ones; a field that is absent keeps its earlier value."""
        for field in _INPUT_FIELDS:
            if _reported(usage.get(field)):
                self.input_counts[field] = _int(usage[field])
        if _reported(usage.get("output_tokens")):
            self.output_tokens = _int(usage["output_tokens"])

    @property
    def usage(self) -> Usage:
        """What the stream reported (see :func:`_usage`)."""
        counts: dict[str, Any] = dict(self.input_counts)
        if self.output_tokens is not None:
            counts["output_tokens"] = self.output_tokens
        return _usage(counts) if counts else Usage.unknown()

    def response(self) -> ChatResponse:
        calls = [call for _, call in sorted(self.calls, key=lambda item: item[0])]
        return ChatResponse(
            message=Message.assistant("".join(self.text), calls),
            usage=self.usage,
            finish_reason=_finish_reason(self.stop_reason),
            model=self.model,
            id=self.id,
        )


class Anthropic(HTTPProvider):
    """A :class:`~tinyagents.llm.Provider` for Anthropic's Messages API.

    ``Anthropic(api_key=None, base_url=None, *, version="2023-06-01",
    default_max_tokens=1024, ...)``: the key comes from ``api_key`` or the
    ``ANTHROPIC_API_KEY`` environment variable and is sent as ``x-api-key`` with
    ``anthropic-version: <version>``. ``base_url`` is the API root
    (``https://api.anthropic.com``, as for the official SDK); requests go to
    ``{base_url}/v1/messages``. See the module docstring for the mapping.

    Errors: HTTP errors map by status (401/403 :class:`AuthenticationError`, 400/404/413
    :class:`BadRequest`, 429 :class:`RateLimited` with ``retry_after``, 500
    :class:`ServerError`, 529 :class:`Overloaded`); an ``error`` event inside a 200
    stream maps by its type (``overloaded_error`` :class:`Overloaded`,
    ``rate_limit_error`` :class:`RateLimited`, ...) with ``status`` 200; a stream that
    ends without ``message_stop``, or malformed JSON, is a :class:`ProtocolError`.
    """

    name = "anthropic"
    gen_ai_provider: ClassVar[str] = "anthropic"
    api_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    messages_path: ClassVar[str] = "/v1/messages"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        call_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
        version: str = ANTHROPIC_VERSION,
        default_max_tokens: int = 1024,
    ) -> None:
        if default_max_tokens < 1:
            raise ValueError(f"default_max_tokens must be >= 1, not {default_max_tokens!r}")
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
        self.version = version
        self.default_max_tokens = default_max_tokens

    async def __aenter__(self) -> Anthropic:
        return self

    def _auth_headers(self) -> dict[str, str]:
        """``x-api-key`` and ``anthropic-version``."""
        return {"x-api-key": self._api_key(), "anthropic-version": self.version}

    def _error_message(self, body: Any, text: str, headers: Mapping[str, str]) -> tuple[str, bool]:
        """``"<error.type>: <error.message>"`` of an Anthropic error body; the quota is
        spent when ``error.details.error_code`` is ``enforced_spend_limit_reached`` (the
        429 Anthropic sends once an organisation's spend limit is reached)."""
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping) and error.get("type") and error.get("message"):
            details = error.get("details")
            code = details.get("error_code") if isinstance(details, Mapping) else None
            return f"{error['type']}: {error['message']}", code == _SPEND_LIMIT
        return super()._error_message(body, text, headers)

    def _body(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """The JSON body of the Messages API request for ``request``."""
        system, messages = _messages(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens
            if request.max_tokens is not None
            else self.default_max_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = [_tool(spec) for spec in request.tools]
        output = request.output
        if output is not None:
            # a tool the model must call, its input the answer (the agent reads the
            # call of that name as the output); "any" when it may call the others first
            answer = ToolSpec(output.name, output.description, output.schema)
            body["tools"] = [*body.get("tools", ()), _tool(answer)]
            body["tool_choice"] = (
                {"type": "any"} if request.tools else {"type": "tool", "name": output.name}
            )
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if stream:
            body["stream"] = True
        body.update(request.options)
        return body

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        reply = await self._post(self.messages_path, self._body(request))
        if not isinstance(reply, Mapping):
            raise ProtocolError(self.name, "the reply is not a JSON object")
        if reply.get("type") == "error":
            raise _error_from_event(self.name, reply, 200)
        content = reply.get("content")
        if not isinstance(content, list):
            raise ProtocolError(self.name, "the reply has no content list")
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in content:
            if not isinstance(block, Mapping):
                raise ProtocolError(self.name, "a content block is not a JSON object")
            if block.get("type") == "text":
                text.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                calls.append(_tool_call(self.name, block, block.get("input", {})))
        usage = reply.get("usage")
        message_id = reply.get("id")
        return ChatResponse(
            message=Message.assistant("".join(text), calls),
            usage=_usage(usage if isinstance(usage, Mapping) else None),
            finish_reason=_finish_reason(reply.get("stop_reason")),
            model=str(reply.get("model") or request.model),
            id=message_id if isinstance(message_id, str) else None,
        )

    async def _stream(
        self, request: ChatRequest, stream: trio.abc.SendChannel[Chunk]
    ) -> ChatResponse:
        state = _StreamState(model=request.model)
        failure: ProviderError | None = None
        left_over = 0
        async with (
            self._post_stream(self.messages_path, self._body(request, stream=True)) as response,
            aclosing(iter_sse(response)) as events,
        ):
            async for event in events:
                if state.done or failure is not None:
                    # The API ends the body right after ``message_stop`` or ``error``.
                    # Reading it to its end (rather than leaving the read half done)
                    # keeps the connection reusable and lets httpx's async generators
                    # finish, which trio otherwise reports as ResourceWarnings.
                    left_over += 1
                    if left_over > _MAX_LEFT_OVER_EVENTS:
                        break
                    continue
                try:
                    await self._on_event(event.event, event.data, state, stream)
                except ProviderError as exc:
                    failure = exc
        if failure is not None:
            raise failure
        if not state.done:
            raise ProtocolError(self.name, "the stream ended without message_stop")
        return state.response()

    async def _on_event(
        self,
        name: str,
        data: str,
        state: _StreamState,
        stream: trio.abc.SendChannel[Chunk],
    ) -> None:
        """Handle one server-sent event of a Messages stream."""
        if name == "ping":
            return
        payload = parse_json(data, self.name)
        if not isinstance(payload, Mapping):
            raise ProtocolError(self.name, f"a {name!r} event is not a JSON object")
        kind = name if name != "message" else str(payload.get("type") or "")
        if kind == "error":
            raise _error_from_event(self.name, payload, 200)
        if kind == "message_start":
            message = payload.get("message")
            message = message if isinstance(message, Mapping) else {}
            if isinstance(message.get("id"), str):
                state.id = message["id"]
            state.model = str(message.get("model") or state.model)
            usage = message.get("usage")
            if isinstance(usage, Mapping):
                state.count_usage(usage)
        elif kind == "content_block_start":
            block = payload.get("content_block")
            block = block if isinstance(block, Mapping) else {}
            state.blocks[_int(payload.get("index"))] = _Block(
                type=str(block.get("type") or ""),
                id=str(block.get("id") or ""),
                name=str(block.get("name") or ""),
                input=block.get("input"),
            )
            text = block.get("text")
            if block.get("type") == "text" and isinstance(text, str) and text:
                state.text.append(text)
                await deliver(stream, Chunk(delta=text))
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            delta = delta if isinstance(delta, Mapping) else {}
            current = state.blocks.get(_int(payload.get("index")))
            if delta.get("type") == "text_delta":
                text = str(delta.get("text") or "")
                if text:
                    state.text.append(text)
                    await deliver(stream, Chunk(delta=text))
            elif delta.get("type") == "input_json_delta" and current is not None:
                current.json_parts.append(str(delta.get("partial_json") or ""))
        elif kind == "content_block_stop":
            index = _int(payload.get("index"))
            current = state.blocks.pop(index, None)
            if current is not None and current.type == "tool_use":
                call = self._finished_call(current)
                state.calls.append((index, call))
                await deliver(stream, Chunk(tool_call=call))
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                state.stop_reason = delta["stop_reason"]
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                state.count_usage(usage)
        elif kind == "message_stop":
            state.done = True
            await deliver(
                stream, Chunk(finish_reason=_finish_reason(state.stop_reason), usage=state.usage)
            )
        # unknown events (and ``ping``) are ignored, as the API's versioning asks

    def _finished_call(self, block: _Block) -> ToolCall:
        raw = "".join(block.json_parts)
        if raw.strip():
            arguments = parse_json(raw, self.name)
        elif isinstance(block.input, Mapping):
            arguments = block.input
        else:
            arguments = {}
        return _tool_call(self.name, {"id": block.id, "name": block.name}, arguments)
