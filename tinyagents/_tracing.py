"""OpenTelemetry traces of the runtime (the optional extra ``tinyagents[otel]``).

OpenTelemetry's API is imported here only, and only when :func:`instrument` turns
tracing on; until then (and always when the API is not installed) every helper is a
no-op, and the hot paths check one module global, :data:`tracer`, against ``None``.

The spans follow OpenTelemetry's GenAI semantic conventions:

* ``chat {model}`` (CLIENT) for each model call, from :class:`LLMCall`, the one place
  every provider goes through; it also records the call's metrics
  (:func:`~tinyagents.metrics.record_llm_call`), whether tracing is on or not;
* ``invoke_agent {name}`` (INTERNAL) for each agent or team turn (:class:`AgentTurn`);
* ``execute_tool {name}`` (INTERNAL) for each tool call (:class:`ToolExecution`);
* ``ask {actor path}`` for each ask (:func:`start_ask`), INTERNAL for a local actor and
  CLIENT for a remote one, from the ask until its reply is settled.

The trace context travels with the message, never through context variables across
tasks (a mailbox outlives any one caller): an ask keeps it on its :class:`Reply`
(``reply._trace``, an :class:`AskTrace`), the actor runs the handler under it
(:func:`receive_under`), and the transport carries it across nodes as a W3C
``traceparent`` in the envelope's trace slot (:func:`to_wire`, :func:`from_wire`). A
tell carries none.

Prompts, completions and tool arguments and results are recorded only when content
capture is on: ``instrument(capture_content=True)``, or, when that is left ``None``,
the environment variable ``TINYAGENTS_OTEL_CAPTURE_CONTENT`` set to ``1`` / ``true``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import trio

from ._metrics import record_llm_call
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate as otel_propagate
    from opentelemetry import trace as otel_trace
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .actor._base import Actor, Reply
    from .actor._cell import ActorCell, Context
    from .llm._types import ChatRequest, ChatResponse, Message, ToolCall
    from .tool import ToolResult

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "AgentTurn",
    "AskTrace",
    "LLMCall",
    "ToolExecution",
    "available",
    "capture_content",
    "from_wire",
    "instrument",
    "is_instrumented",
    "receive_under",
    "start_ask",
    "to_wire",
    "tracer",
    "uninstrument",
]

CAPTURE_CONTENT_ENV = "TINYAGENTS_OTEL_CAPTURE_CONTENT"
"""The environment variable that turns content capture on (``1``, ``true``, ``yes``)."""

tracer: Tracer | None = None
"""The tracer of tinyagents' spans while tracing is on; ``None`` when it is off."""

_capture: bool | None = None
_R = TypeVar("_R")
_loaded = False


def _load() -> bool:
    """Import OpenTelemetry's API (once); whether it is installed."""
    global _loaded, otel_context, otel_propagate, otel_trace
    if _loaded:
        return True
    try:
        from opentelemetry import context, propagate, trace
    except ImportError:
        return False
    otel_context, otel_propagate, otel_trace = context, propagate, trace
    _loaded = True
    return True


def available() -> bool:
    """Whether OpenTelemetry's API is installed (``pip install 'tinyagents[otel]'``)."""
    return _load()


def instrument(
    tracer_provider: TracerProvider | None = None, *, capture_content: bool | None = None
) -> None:
    """Turn tinyagents' spans on, sent to ``tracer_provider`` or, when it is ``None``,
    to OpenTelemetry's global tracer provider (looked up when a span starts, so a
    global provider set later is used too). ``capture_content`` records prompts,
    completions and tool arguments and results in the spans; ``None`` leaves it to
    the ``TINYAGENTS_OTEL_CAPTURE_CONTENT`` environment variable. Calling it again
    replaces both settings. The library never sets the global provider itself.

    Raises:
        ImportError: OpenTelemetry's API is not installed.
    """
    global tracer, _capture
    if not _load():
        raise ImportError("tracing needs the OpenTelemetry API: pip install 'tinyagents[otel]'")
    tracer = otel_trace.get_tracer("tinyagents", __version__, tracer_provider=tracer_provider)
    _capture = capture_content


def uninstrument() -> None:
    """Turn tinyagents' spans off (spans already started still end)."""
    global tracer, _capture
    tracer = None
    _capture = None


def is_instrumented() -> bool:
    """Whether tinyagents' spans are on."""
    return tracer is not None


def capture_content() -> bool:
    """Whether spans record message contents now (see :func:`instrument`)."""
    if _capture is not None:
        return _capture
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _error_type(error: BaseException) -> str:
    """The ``error.type`` of ``error``: its type's qualified name."""
    return type(error).__qualname__


def _fail(span: Span, error: BaseException) -> None:
    span.set_attribute("error.type", _error_type(error))
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, str(error)[:500] or None))


class _Active:
    """A started span made current in this task until it ends."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.token = otel_context.attach(otel_trace.set_span_in_context(span))

    def end(self, error: BaseException | None) -> None:
        if error is not None:
            _fail(self.span, error)
        otel_context.detach(self.token)
        self.span.end()


def _start(name: str, kind: Any, attributes: Mapping[str, Any]) -> _Active | None:
    if tracer is None:
        return None
    return _Active(tracer.start_span(name, kind=kind, attributes=dict(attributes)))


# -- contents ----------------------------------------------------------------------------


def _parts(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        ]
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "content": message.content})
    for call in message.tool_calls:
        parts.append(
            {
                "type": "tool_call",
                "id": call.id,
                "name": call.name,
                "arguments": dict(call.arguments),
            }
        )
    return parts


def _messages_json(messages: Iterable[Message]) -> str:
    return json.dumps(
        [{"role": m.role, "parts": _parts(m)} for m in messages], ensure_ascii=False, default=str
    )


def _output_json(message: Message, finish_reason: str) -> str:
    return json.dumps(
        [{"role": message.role, "parts": _parts(message), "finish_reason": finish_reason}],
        ensure_ascii=False,
        default=str,
    )


def _tokens(response: ChatResponse) -> tuple[int | None, int | None]:
    """The input and output tokens the provider reported for one call (``None`` for a
    count it did not report)."""
    usage = response.usage
    input_tokens = usage.input_tokens if usage.known or usage.input_tokens else None
    output_tokens = usage.output_tokens if usage.known or usage.output_tokens else None
    return input_tokens, output_tokens


# -- model calls -------------------------------------------------------------------------


class LLMCall:
    """One model call: ``with LLMCall(...) as call: return call.done(response)``.

    Around the provider's whole work (a streamed call ends when its stream does), it
    records the call's metrics into the calling actor's system (the time, by
    ``trio.current_time()``, the tokens reported, the error's type name) and, while
    tracing is on, a ``chat {model}`` span: ``gen_ai.operation.name``,
    ``gen_ai.provider.name`` (``provider``), ``gen_ai.request.model`` and the request's
    temperature and max tokens, ``server.address`` / ``server.port`` (from
    ``base_url``), and on the answer ``gen_ai.response.model``, ``gen_ai.response.id``,
    ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` /
    ``output_tokens`` (only those reported); a failure sets ``error.type`` and the
    span's status to ERROR. ``name`` (the provider's own name) labels the metrics and
    is the span's ``tinyagents.provider.name``. Never raises on its own.
    """

    __slots__ = ("_active", "_model", "_name", "_start", "response")

    def __init__(
        self, name: str, provider: str, request: ChatRequest, base_url: str | None = None
    ) -> None:
        self._name = name
        self._model = request.model
        self.response: ChatResponse | None = None
        self._start = trio.current_time()
        self._active: _Active | None = None
        if tracer is None:
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request.model,
            "tinyagents.provider.name": name,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if base_url:
            url = urlsplit(base_url)
            if url.hostname:
                attributes["server.address"] = url.hostname
                port = url.port or {"https": 443, "http": 80}.get(url.scheme)
                if port is not None:
                    attributes["server.port"] = port
        if capture_content():
            system = [m for m in request.messages if m.role == "system"]
            if system:
                attributes["gen_ai.system_instructions"] = json.dumps(
                    [{"type": "text", "content": m.content} for m in system], ensure_ascii=False
                )
            attributes["gen_ai.input.messages"] = _messages_json(
                m for m in request.messages if m.role != "system"
            )
        self._active = _start(f"chat {request.model}", otel_trace.SpanKind.CLIENT, attributes)

    def __enter__(self) -> LLMCall:
        return self

    def done(self, response: ChatResponse) -> ChatResponse:
        """Keep ``response`` as the call's answer, and return it."""
        self.response = response
        return response

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        seconds = trio.current_time() - self._start
        response = self.response if error is None else None
        input_tokens = output_tokens = None
        active = self._active
        if response is not None:
            input_tokens, output_tokens = _tokens(response)
            if active is not None:
                span = active.span
                if input_tokens is not None:
                    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
                if output_tokens is not None:
                    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
                span.set_attribute("gen_ai.response.model", response.model or self._model)
                span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
                if response.id:
                    span.set_attribute("gen_ai.response.id", response.id)
                if capture_content():
                    span.set_attribute(
                        "gen_ai.output.messages",
                        _output_json(response.message, response.finish_reason),
                    )
        if active is not None:
            active.end(error)
        record_llm_call(
            provider=self._name,
            model=response.model if response is not None and response.model else self._model,
            seconds=seconds,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            error_type=None if error is None else _error_type(error),
        )


# -- agent turns and tool calls ------------------------------------------------------------


class AgentTurn:
    """One agent's (or team's) turn: ``with AgentTurn(...) as turn: return
    turn.done(response)``. While tracing is on, an ``invoke_agent {name}`` span, current
    for the turn (its model calls and tool calls are its children):
    ``gen_ai.operation.name``, ``gen_ai.agent.name``, ``gen_ai.agent.id`` (``agent_id``),
    ``gen_ai.request.model`` and ``gen_ai.provider.name`` when given, the response's
    total usage, and ``error.type`` on failure; with content capture, the prompt and
    the answer."""

    __slots__ = ("_active",)

    def __init__(
        self,
        name: str,
        prompt: str,
        *,
        agent_id: str | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        self._active: _Active | None = None
        if tracer is None:
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
        }
        if agent_id is not None:
            attributes["gen_ai.agent.id"] = agent_id
        if model is not None:
            attributes["gen_ai.request.model"] = model
        if provider is not None:
            attributes["gen_ai.provider.name"] = provider
        if capture_content():
            attributes["gen_ai.input.messages"] = json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": prompt}]}],
                ensure_ascii=False,
            )
        self._active = _start(f"invoke_agent {name}", otel_trace.SpanKind.INTERNAL, attributes)

    def __enter__(self) -> AgentTurn:
        return self

    def done(self, response: _R) -> _R:
        """Record what the turn answered (a :class:`~tinyagents.agent.Response`), and
        return it."""
        active = self._active
        if active is not None:
            usage = getattr(response, "usage", None)
            message = getattr(response, "message", None)
            span = active.span
            if usage is not None:
                if usage.known or usage.input_tokens:
                    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
                if usage.known or usage.output_tokens:
                    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            if message is not None and capture_content():
                span.set_attribute("gen_ai.output.messages", _output_json(message, "stop"))
        return response

    def failed(self, error: BaseException) -> None:
        """Mark the turn failed with ``error`` (when the error is handled inside it)."""
        if self._active is not None:
            _fail(self._active.span, error)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._active is not None:
            self._active.end(error)


class ToolExecution:
    """One tool call: ``with ToolExecution(call) as execution: return
    execution.done(result)``. While tracing is on, an ``execute_tool {name}`` span:
    ``gen_ai.operation.name``, ``gen_ai.tool.name``, ``gen_ai.tool.type``,
    ``gen_ai.tool.call.id``; a result that is an error (or an exception) sets
    ``error.type`` and the status ERROR; with content capture,
    ``gen_ai.tool.call.arguments`` and ``gen_ai.tool.call.result``."""

    __slots__ = ("_active",)

    def __init__(self, call: ToolCall) -> None:
        self._active: _Active | None = None
        if tracer is None:
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.type": "function",
        }
        if call.id:
            attributes["gen_ai.tool.call.id"] = call.id
        if capture_content():
            attributes["gen_ai.tool.call.arguments"] = json.dumps(
                dict(call.arguments), ensure_ascii=False, default=str
            )
        self._active = _start(f"execute_tool {call.name}", otel_trace.SpanKind.INTERNAL, attributes)

    def __enter__(self) -> ToolExecution:
        return self

    def done(self, result: ToolResult) -> ToolResult:
        """Record ``result``, and return it."""
        active = self._active
        if active is not None:
            span = active.span
            if capture_content():
                span.set_attribute("gen_ai.tool.call.result", result.content)
            if result.is_error:
                error = result.error
                span.set_attribute(
                    "error.type", _error_type(error) if error is not None else "ToolError"
                )
                span.set_status(
                    otel_trace.Status(otel_trace.StatusCode.ERROR, result.content[:500])
                )
        return result

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._active is not None:
            self._active.end(error)


# -- asks ----------------------------------------------------------------------------------


class AskTrace:
    """The trace context an ask carries on its reply: the ``context`` its handler runs
    under, and the ``span`` of the ask (``None`` on the node that received a remote
    ask), ended when the reply is settled."""

    __slots__ = ("context", "span")

    def __init__(self, context: OtelContext, span: Span | None) -> None:
        self.context = context
        self.span = span

    def end(self, error: BaseException | None) -> None:
        """End the ask's span (once), failed with ``error`` if it is not ``None``."""
        span = self.span
        if span is None:
            return
        self.span = None
        if error is not None:
            _fail(span, error)
        span.end()

    def abandoned(self) -> None:
        """End the ask's span (once): the asker was cancelled (``error.type``
        ``Cancelled``)."""
        span = self.span
        if span is None:
            return
        self.span = None
        span.set_attribute("error.type", "Cancelled")
        span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, "the asker was cancelled"))
        span.end()


def start_ask(cell: ActorCell, reply: Reply) -> None:
    """Start the span of an ask to ``cell`` (a child of the caller's current span) and
    put its context on ``reply``. Call only while :data:`tracer` is not ``None``."""
    assert tracer is not None
    remote = cell.is_remote
    attributes: dict[str, Any] = {
        "tinyagents.actor.path": cell.path,
        "tinyagents.message.type": type(reply.message).__qualname__,
    }
    if remote:
        attributes["tinyagents.actor.node"] = cell.node
    span = tracer.start_span(
        f"ask {cell.path}",
        kind=otel_trace.SpanKind.CLIENT if remote else otel_trace.SpanKind.INTERNAL,
        attributes=attributes,
    )
    reply._trace = AskTrace(otel_trace.set_span_in_context(span), span)


async def receive_under(trace: AskTrace, actor: Actor, ctx: Context, message: object) -> Any:
    """``actor.receive(ctx, message)`` with ``trace``'s context current."""
    token = otel_context.attach(trace.context)
    try:
        return await actor.receive(ctx, message)
    finally:
        otel_context.detach(token)


def to_wire(trace: AskTrace) -> dict[str, str] | None:
    """The ask's trace context for the transport envelope: the text map of
    OpenTelemetry's propagators (by default W3C ``traceparent`` and ``tracestate``,
    and ``baggage``), or ``None`` when there is nothing to carry."""
    carrier: dict[str, str] = {}
    otel_propagate.inject(carrier, context=trace.context)
    return carrier or None


def from_wire(value: object) -> AskTrace | None:
    """The trace context a remote ask brought (what :func:`to_wire` made), or ``None``
    when tracing is off here or ``value`` carries none."""
    if tracer is None or not isinstance(value, dict) or not value:
        return None
    carrier = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    return AskTrace(otel_propagate.extract(carrier), None)
