"""The OpenAI Chat Completions adapter, and the base of the OpenAI-family dialects.

:class:`OpenAI` speaks ``POST {base_url}/chat/completions`` (default base
``https://api.openai.com/v1``, the root the official SDK uses) with
``Authorization: Bearer <key>``; the key comes from ``api_key`` or ``OPENAI_API_KEY``.

Mapping of a :class:`~tinyagents.llm.ChatRequest`:

* ``messages``: ``system``/``user`` as they are; an assistant message carries
  ``tool_calls`` (``{id, type: "function", function: {name, arguments: <JSON string>}}``,
  ``content`` ``null`` when it has no text); a tool result is a ``tool`` message with
  ``tool_call_id``.
* ``tools``: ``{type: "function", function: {name, description, parameters}}``.
* ``temperature`` and ``stop`` as they are. ``max_tokens`` is sent as
  ``max_completion_tokens``, the field OpenAI documents (``max_tokens`` is deprecated
  and refused by reasoning models). For an OpenAI-compatible server that only knows
  ``max_tokens``, put ``max_tokens`` (or ``max_completion_tokens``) in
  ``ChatRequest.options``: when either is there, ``ChatRequest.max_tokens`` is not
  mapped and the option is sent as given.
* ``options`` are merged into the body last, unchanged (``seed``, ``top_p``,
  ``response_format``, ``tool_choice``, ``parallel_tool_calls``, ...).

Streaming asks for ``stream_options: {include_usage: true}``, so the usage arrives in a
last chunk with ``choices: []``. A reply or stream that carries no usage (a server that
ignores ``stream_options``, or one asked without it) reports
:meth:`Usage.unknown() <tinyagents.llm.Usage.unknown>`, never a made-up zero.

Tool-call fragments are assembled per ``index`` (the first fragment carries ``id`` and
``function.name``, the next ones pieces of ``arguments``) and each call is sent as one
complete :class:`~tinyagents.llm.ToolCall` when the choice finishes. A ``data:`` frame
whose JSON has an ``error`` key raises a typed error (``status`` 200); a stream that ends
without ``data: [DONE]`` raises :class:`~tinyagents.errors.ProtocolError`. A 429 whose
code is ``insufficient_quota`` raises :class:`~tinyagents.errors.RateLimited` with
``quota_exhausted=True``.

The other OpenAI-shaped dialects (:mod:`tinyagents.llm.openrouter`,
:mod:`tinyagents.llm.mistral`) subclass :class:`OpenAI` and change only class
attributes and the small hooks marked "hook" below.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, Iterator, Mapping
from types import MappingProxyType
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
from ._http import HTTPProvider, deliver, iter_sse, parse_json, read_in_task
from ._types import (
    ChatRequest,
    ChatResponse,
    Chunk,
    Message,
    OutputFormat,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = ["OpenAI"]


class OpenAI(HTTPProvider):
    """OpenAI's Chat Completions API (see the module docstring for the mapping).

    ``OpenAI(api_key=None, base_url=None, *, timeout=..., call_timeout=None,
    headers=None, name=None, transport=None)``; ``base_url`` defaults to
    ``https://api.openai.com/v1`` and the key to ``$OPENAI_API_KEY``. Any server that
    speaks the same dialect (vLLM, llama.cpp's server, Ollama's ``/v1``) works with its
    own ``base_url``.
    """

    name = "openai"
    gen_ai_provider: ClassVar[str] = "openai"
    api_key_env = "OPENAI_API_KEY"
    default_base_url = "https://api.openai.com/v1"

    chat_path: ClassVar[str] = "/chat/completions"
    """The path of the endpoint under ``base_url``."""
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    """The body field that ``ChatRequest.max_tokens`` is sent as."""
    stream_usage_option: ClassVar[bool] = True
    """Whether a streaming request asks for ``stream_options: {include_usage: true}``."""
    tool_message_name: ClassVar[bool] = False
    """Whether a ``tool`` message also carries the tool's ``name``."""
    finish_reasons: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "stop": "stop",
            "length": "length",
            "tool_calls": "tool_calls",
            "function_call": "tool_calls",
            "content_filter": "content_filter",
        }
    )
    """The dialect's finish reasons mapped to the neutral words (others pass unchanged)."""

    # -- hooks: request ----------------------------------------------------------------

    def _wire_tool_call_id(self, call_id: str) -> str:
        """Hook: the id a tool call is sent under (both in the assistant message and in
        the tool result that answers it). Must be a pure function of ``call_id``."""
        return call_id

    def _new_tool_call_id(self) -> str:
        """Hook: an id for a tool call the provider sent without one."""
        return "call_" + uuid.uuid4().hex[:24]

    def _options(self, request: ChatRequest) -> dict[str, Any]:
        """Hook: ``ChatRequest.options`` as they go into the body (unchanged here)."""
        return dict(request.options)

    def _message(self, message: Message, names: Mapping[str, str]) -> dict[str, Any]:
        """One message in the dialect's shape. ``names`` maps the (original) tool-call
        ids of the conversation to their tool names."""
        if message.role == "assistant" and message.tool_calls:
            return {
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [self._tool_call(call) for call in message.tool_calls],
            }
        if message.role == "tool":
            call_id = message.tool_call_id or ""
            wire: dict[str, Any] = {
                "role": "tool",
                "tool_call_id": self._wire_tool_call_id(call_id),
                "content": message.content,
            }
            name = message.name or names.get(call_id)
            if self.tool_message_name and name:
                wire["name"] = name
            return wire
        return {"role": message.role, "content": message.content}

    def _tool_call(self, call: ToolCall) -> dict[str, Any]:
        """An assistant tool call in the dialect's shape (arguments as a JSON string)."""
        return {
            "id": self._wire_tool_call_id(call.id),
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
        }

    def _tool(self, spec: ToolSpec) -> dict[str, Any]:
        """A tool definition in the dialect's shape."""
        function: dict[str, Any] = {"name": spec.name, "parameters": dict(spec.parameters)}
        if spec.description:
            function["description"] = spec.description
        return {"type": "function", "function": function}

    def _response_format(self, output: OutputFormat) -> dict[str, Any]:
        """``response_format`` asking for JSON of ``output``'s schema."""
        json_schema: dict[str, Any] = {
            "name": output.name,
            "schema": dict(output.schema),
            "strict": output.strict,
        }
        if output.description:
            json_schema["description"] = output.description
        return {"type": "json_schema", "json_schema": json_schema}

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The whole request body."""
        names = {call.id: call.name for message in request.messages for call in message.tool_calls}
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [self._message(message, names) for message in request.messages],
        }
        if request.tools:
            body["tools"] = [self._tool(spec) for spec in request.tools]
        if request.output is not None:
            body["response_format"] = self._response_format(request.output)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        options = self._options(request)
        overridden = {"max_tokens", "max_completion_tokens"} & options.keys()
        if request.max_tokens is not None and not overridden:
            body[self.max_tokens_field] = request.max_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if stream:
            body["stream"] = True
            if self.stream_usage_option:
                body["stream_options"] = {"include_usage": True}
        body.update(options)
        return body

    # -- hooks: reply --------------------------------------------------------------------

    def _payload_error(self, payload: Mapping[str, Any]) -> ProviderError | None:
        """Hook: the typed error a 200 reply or stream frame reports, if it reports one
        (an ``error`` key; see :func:`_reported_error`)."""
        error = payload.get("error")
        if not error:
            return None
        if not isinstance(error, Mapping):
            error = {"message": str(error)}
        return _reported_error(self.name, error)

    def _finish_reason(self, raw: str | None, *, has_tool_calls: bool) -> str:
        """The neutral finish reason; a reported ``error`` finish raises."""
        if raw is None:
            return "tool_calls" if has_tool_calls else "stop"
        if raw == "error":
            raise ServerError(self.name, "the model stopped with finish_reason 'error'", status=200)
        return self.finish_reasons.get(raw, raw)

    def _usage(self, raw: Any) -> Usage | None:
        """The usage of a reply (``prompt_tokens``/``completion_tokens``; extra fields
        such as OpenRouter's ``cost`` are ignored), ``None`` when absent. A usage object
        that lacks one of the two counts is marked unreported (``unreported=1``), with
        the count it has."""
        if not isinstance(raw, Mapping):
            return None
        prompt, completion = _count(raw.get("prompt_tokens")), _count(raw.get("completion_tokens"))
        return Usage(prompt or 0, completion or 0, 0 if None not in (prompt, completion) else 1)

    def _parse_tool_call(self, raw: Any) -> ToolCall:
        """A whole tool call of a non-streamed reply."""
        if not isinstance(raw, Mapping):
            raise ProtocolError(self.name, f"a tool call is not an object: {raw!r:.120}")
        function = raw.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ProtocolError(self.name, f"a tool call has no function name: {raw!r:.120}")
        return ToolCall(
            str(raw.get("id") or self._new_tool_call_id()),
            function["name"],
            _arguments(function.get("arguments"), self.name),
        )

    def _parse_response(self, payload: Any) -> ChatResponse:
        """A non-streamed reply as a :class:`ChatResponse`."""
        if not isinstance(payload, Mapping):
            raise ProtocolError(self.name, f"the reply is not a JSON object: {payload!r:.120}")
        error = self._payload_error(payload)
        if error is not None:
            raise error
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ProtocolError(self.name, "the reply has no choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, Mapping):
            raise ProtocolError(self.name, "the reply's choice has no message")
        calls = tuple(self._parse_tool_call(raw) for raw in message.get("tool_calls") or ())
        content = _text(message.get("content")) or _text(message.get("refusal"))
        return ChatResponse(
            message=Message.assistant(content, calls),
            usage=self._usage(payload.get("usage")) or Usage.unknown(),
            finish_reason=self._finish_reason(
                choice.get("finish_reason"), has_tool_calls=bool(calls)
            ),
            model=str(payload.get("model") or ""),
            id=_optional_str(payload.get("id")),
        )

    # -- HTTPProvider ----------------------------------------------------------------------

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        payload = await self._post(self.chat_path, self._body(request, stream=False))
        return self._parse_response(payload)

    async def _stream(
        self, request: ChatRequest, stream: trio.abc.SendChannel[Chunk]
    ) -> ChatResponse:
        state = _StreamState(self)
        done = False
        async with (
            self._post_stream(self.chat_path, self._body(request, stream=True)) as reply,
            read_in_task(_event_data(reply)) as reader,
        ):
            async for data in reader:
                if done:
                    continue  # read to the end, so the connection can be reused
                if data.strip() == "[DONE]":
                    done = True
                    continue
                for chunk in state.feed(self._frame(data)):
                    await deliver(stream, chunk)
            if reader.error is not None and not done:
                raise reader.error  # an httpx error: _post_stream translates it
        if not done:
            raise ProtocolError(self.name, "the stream ended without 'data: [DONE]'")
        for chunk in state.flush():
            await deliver(stream, chunk)
        response = state.response()
        await deliver(stream, Chunk(finish_reason=response.finish_reason, usage=response.usage))
        return response

    def _frame(self, data: str) -> Mapping[str, Any]:
        """One ``data:`` frame as a JSON object; raises the error it reports, if any."""
        payload = parse_json(data, self.name)
        if not isinstance(payload, Mapping):
            raise ProtocolError(self.name, f"a stream event is not a JSON object: {data:.120}")
        error = self._payload_error(payload)
        if error is not None:
            raise error
        return payload


async def _event_data(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event of the body."""
    async for event in iter_sse(response):
        yield event.data


# -- helpers -------------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    """A token count: a non-negative int, else ``None`` (not reported)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(content: Any) -> str:
    """The text of a ``content`` field: a string, or a list of parts whose ``text``
    parts are joined (Mistral may send a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
    return ""


def _arguments(raw: Any, provider: str) -> dict[str, Any]:
    """Tool-call arguments as a dict: a JSON string (OpenAI) or an object (Mistral may
    send one); empty means no arguments."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str):
        value = parse_json(raw, provider)
        if isinstance(value, Mapping):
            return dict(value)
    raise ProtocolError(provider, f"tool-call arguments are not a JSON object: {raw!r:.120}")


_RATE_WORDS = frozenset({"rate_limit_exceeded", "rate_limit_error", "rate_limited", "requests"})
_QUOTA_WORDS = frozenset({"insufficient_quota", "insufficient_credits", "credit_limit_reached"})
_OVERLOAD_WORDS = frozenset({"overloaded", "overloaded_error", "server_overloaded"})
_AUTH_WORDS = frozenset({"authentication_error", "invalid_api_key", "permission_error"})
_BAD_WORDS = frozenset({"invalid_request_error", "bad_request", "invalid_function_call"})


def _reported_error(provider: str, error: Mapping[str, Any]) -> ProviderError:
    """The typed error for an error object reported with HTTP 200 (inside a stream, or
    as a 200 body): by its numeric ``code`` when it has one (OpenRouter's
    ``{code: 502, message}``), else by its ``code``/``type`` words (OpenAI's
    ``{type: "server_error"}``). ``status`` is 200; unknown errors are
    :class:`ServerError`."""
    message = str(error.get("message") or "an error was reported")
    code = error.get("code")
    kind = error.get("type")
    number: int | None = None
    if isinstance(code, int) and not isinstance(code, bool):
        number = code
    elif isinstance(code, str) and code.isdigit() and len(code) == 3:
        number = int(code)
    words = {str(word).lower() for word in (code, kind) if word}
    label = f" ({code or kind})" if (code or kind) else ""
    text = f"error reported with HTTP 200{label}: {message}"
    if number == 402 or words & _QUOTA_WORDS:
        return RateLimited(provider, text, status=200, quota_exhausted=True)
    if number == 429 or words & _RATE_WORDS:
        return RateLimited(provider, text, status=200)
    if number == 529 or words & _OVERLOAD_WORDS:
        return Overloaded(provider, text, status=200)
    if number in (401, 403) or words & _AUTH_WORDS:
        return AuthenticationError(provider, text, status=200)
    if number == 408 or "timeout" in words:
        return ProviderTimeout(provider, text, status=200)
    if (number is not None and 400 <= number < 500) or words & _BAD_WORDS:
        return BadRequest(provider, text, status=200)
    return ServerError(provider, text, status=200)


@attrs.define
class _PartialCall:
    """A tool call being assembled from stream fragments."""

    id: str = ""
    name: str = ""
    pieces: list[str] = attrs.field(factory=list)
    whole: dict[str, Any] | None = None
    done: ToolCall | None = None


class _StreamState:
    """Accumulates the chunks of one streamed answer (first choice only)."""

    def __init__(self, provider: OpenAI) -> None:
        self.provider = provider
        self.id: str | None = None
        self.model = ""
        self.text: list[str] = []
        self.calls: list[_PartialCall] = []
        self.by_index: dict[int, _PartialCall] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None

    def feed(self, payload: Mapping[str, Any]) -> Iterator[Chunk]:
        """Take one ``chat.completion.chunk``; yield the chunks it completes."""
        if self.id is None:
            self.id = _optional_str(payload.get("id"))
        if not self.model and isinstance(payload.get("model"), str):
            self.model = payload["model"]
        usage = self.provider._usage(payload.get("usage"))
        if usage is not None:
            self.usage = usage
        for choice in payload.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                text = _text(delta.get("content"))
                if text:
                    self.text.append(text)
                    yield Chunk(delta=text)
                for fragment in delta.get("tool_calls") or ():
                    if isinstance(fragment, Mapping):
                        self._fragment(fragment)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self.finish = finish
                # raises at once for a reported 'error' finish
                self.provider._finish_reason(finish, has_tool_calls=bool(self.calls))
                yield from self.flush()

    def _fragment(self, fragment: Mapping[str, Any]) -> None:
        index = fragment.get("index")
        call_id = fragment.get("id") if isinstance(fragment.get("id"), str) else ""
        current = self.by_index.get(index) if isinstance(index, int) else None
        if current is None and index is None and not call_id and self.calls:
            current = self.calls[-1]  # an index-less continuation
        if current is None or (call_id and current.id and call_id != current.id):
            current = _PartialCall()  # a new call (or a whole call reusing an index)
            self.calls.append(current)
            if isinstance(index, int):
                self.by_index[index] = current
        if call_id and not current.id:
            current.id = call_id
        function = fragment.get("function")
        if isinstance(function, Mapping):
            name = function.get("name")
            if isinstance(name, str) and name and not current.name:
                current.name = name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                current.pieces.append(arguments)
            elif isinstance(arguments, Mapping):
                current.whole = dict(arguments)

    def flush(self) -> Iterator[Chunk]:
        """The tool calls not yet sent, each complete."""
        for call in self.calls:
            if call.done is None:
                yield Chunk(tool_call=self._complete(call))

    def _complete(self, call: _PartialCall) -> ToolCall:
        if call.done is not None:
            return call.done
        provider = self.provider
        if not call.name:
            raise ProtocolError(provider.name, "a streamed tool call has no function name")
        if call.whole is not None:
            arguments = call.whole
        else:
            arguments = _arguments("".join(call.pieces), provider.name)
        call.done = ToolCall(call.id or provider._new_tool_call_id(), call.name, arguments)
        return call.done

    def response(self) -> ChatResponse:
        """The whole answer (call after :meth:`flush`)."""
        calls = tuple(self._complete(call) for call in self.calls)
        return ChatResponse(
            message=Message.assistant("".join(self.text), calls),
            usage=self.usage or Usage.unknown(),
            finish_reason=self.provider._finish_reason(self.finish, has_tool_calls=bool(calls)),
            model=self.model,
            id=self.id,
        )
