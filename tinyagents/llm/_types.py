"""The provider-neutral values of the LLM layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import trio

from .._validate import check_int, check_items, check_number, check_strings

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Chunk",
    "Message",
    "OutputFormat",
    "Provider",
    "Role",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = ("system", "user", "assistant", "tool")


def _role(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _ROLES:
        raise ValueError(f"a message role must be one of {_ROLES}, not {value!r}")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping (a dict), not {value!r:.80}")
    return dict(value)


def _calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return check_items(value, ToolCall, "tool_calls")


def _messages(value: Iterable[Message]) -> tuple[Message, ...]:
    return check_items(value, Message, "ChatRequest messages")


def _specs(value: Iterable[ToolSpec]) -> tuple[ToolSpec, ...]:
    return check_items(value, ToolSpec, "ChatRequest tools")


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return check_strings(value, "stop")


def _string(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        owner = type(instance).__name__
        raise TypeError(f"{owner} {attribute.name} must be a string, not {value!r:.80}")


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _string(instance, attribute, value)
    if not value:
        raise ValueError(f"{type(instance).__name__} {attribute.name} must not be empty")


def _optional_string(
    instance: object, attribute: attrs.Attribute[str | None], value: object
) -> None:
    if value is not None and not isinstance(value, str):
        owner = type(instance).__name__
        raise TypeError(f"{owner} {attribute.name} must be a string or None, not {value!r:.80}")


@attrs.frozen
class ToolCall:
    """A call of a tool requested by the model.

    ``arguments`` is already parsed (a JSON object as a dict), whatever the dialect
    sent (OpenAI and Mistral send a JSON string, Anthropic and Ollama an object).
    ``id`` is the provider's id for the call; Ollama gives none, and the adapter makes
    one up so that a tool result can always name its call.
    """

    id: str = attrs.field(validator=_string)
    name: str = attrs.field(validator=_name)
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen
class ToolSpec:
    """A tool the model may call: a name, a description and a JSON Schema of its
    arguments (an ``object`` schema)."""

    name: str = attrs.field(validator=_name)
    description: str = attrs.field(default="", validator=_string)
    parameters: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}}, converter=_frozen_mapping
    )


@attrs.frozen
class Message:
    """One message of a conversation.

    * ``system`` / ``user``: ``content`` is the text.
    * ``assistant``: ``content`` is the text (may be empty) and ``tool_calls`` the calls
      it requested.
    * ``tool``: the result of one call: ``content`` is the result, ``tool_call_id`` names
      the call and ``name`` the tool.
    """

    role: Role = attrs.field(validator=_role)
    content: str = attrs.field(default="", validator=_string)
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_calls)
    tool_call_id: str | None = attrs.field(default=None, validator=_optional_string)
    name: str | None = attrs.field(default=None, validator=_optional_string)

    def __attrs_post_init__(self) -> None:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only an assistant message has tool_calls, not a {self.role} one")

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message."""
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        """A user message."""
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: Sequence[ToolCall] = ()) -> Message:
        """An assistant message, perhaps with tool calls."""
        return cls("assistant", content, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, call: ToolCall, content: str) -> Message:
        """The result of ``call``."""
        return cls("tool", content, tool_call_id=call.id, name=call.name)


def _token_count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    check_int(value, f"Usage {attribute.name} (an int >= 0)", minimum=0)


@attrs.frozen(repr=False)
class Usage:
    """Tokens consumed, as the provider reported them.

    * ``input_tokens``, ``output_tokens``: the tokens reported (for a total, the sums
      of what was reported).
    * ``unreported``: how many model calls counted here did not report their usage,
      wholly or in part (a stream that never carried a usage object, a reply without
      one). ``0`` means every count is known; otherwise the token counts are only a
      lower bound. :meth:`unknown` is the usage of one call that reported none.

    Adding usages adds all three fields, so a total that includes an unknown usage
    stays marked: ``Usage(5, 2) + Usage.unknown() == Usage(5, 2, unreported=1)``,
    whose :attr:`known` is false. ``Usage()`` is the zero (the start of a sum), and
    ``sum(usages, Usage())`` (or ``sum(usages)``) totals any number of them.
    """

    input_tokens: int = attrs.field(default=0, validator=_token_count)
    output_tokens: int = attrs.field(default=0, validator=_token_count)
    unreported: int = attrs.field(default=0, validator=_token_count)

    @classmethod
    def unknown(cls) -> Usage:
        """The usage of one model call whose provider did not report it."""
        return cls(0, 0, unreported=1)

    @property
    def known(self) -> bool:
        """Whether every call counted here reported its usage (``unreported == 0``)."""
        return self.unreported == 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (of what was reported)."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.unreported + other.unreported,
        )

    def __radd__(self, other: object) -> Usage:
        """``0 + usage`` is ``usage``, so that ``sum(usages)`` works."""
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __repr__(self) -> str:
        unreported = f", unreported={self.unreported}" if self.unreported else ""
        return (
            f"Usage(input_tokens={self.input_tokens}, "
            f"output_tokens={self.output_tokens}{unreported})"
        )

    def __str__(self) -> str:
        """``"12 in / 40 out tokens"``; ``"usage not reported"`` for an unknown usage;
        ``"at least 12 in / 40 out tokens (1 call did not report usage)"`` for a total
        with unreported parts."""
        if self.known:
            return f"{self.input_tokens} in / {self.output_tokens} out tokens"
        calls = "1 call" if self.unreported == 1 else f"{self.unreported} calls"
        if self.total_tokens == 0:
            return "usage not reported" + ("" if self.unreported == 1 else f" ({calls})")
        return (
            f"at least {self.input_tokens} in / {self.output_tokens} out tokens "
            f"({calls} did not report usage)"
        )


def _temperature(instance: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        check_number(value, "ChatRequest temperature (None or a number >= 0)", minimum=0.0)


def _max_tokens(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None:
        check_int(value, "ChatRequest max_tokens (None or an int >= 1)", minimum=1)


@attrs.frozen
class OutputFormat:
    """The shape the answer must have: a JSON Schema (an ``object`` schema) under a
    ``name``, sent the way each dialect supports best.

    * OpenAI, Mistral, OpenRouter: ``response_format`` of type ``json_schema`` (strict
      when the schema allows it: every property required, no extra properties); the
      answer's text is the JSON.
    * Anthropic: a tool of that ``name`` whose input schema it is, which the model is
      made to call (``tool_choice``); the answer is that call, its arguments the JSON.
    * Ollama: ``format``, the schema itself; the answer's text is the JSON.
    """

    name: str = attrs.field(validator=_name)
    schema: Mapping[str, Any] = attrs.field(converter=_frozen_mapping)
    description: str = attrs.field(default="", validator=_string)

    @property
    def strict(self) -> bool:
        """Whether the schema fits OpenAI's strict mode: each object lists every
        property as required and allows no others."""
        return _strict(self.schema)


def _strict(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        if schema.get("type") == "object":
            properties = schema.get("properties", {})
            if schema.get("additionalProperties", True) is not False:
                return False
            if set(schema.get("required", ())) != set(properties):
                return False
        return all(_strict(value) for value in schema.values())
    if isinstance(schema, list | tuple):
        return all(_strict(value) for value in schema)
    return True


def _output(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, OutputFormat):
        raise TypeError(f"ChatRequest output must be None or an OutputFormat, not {value!r:.80}")


@attrs.frozen
class ChatRequest:
    """What to ask a model.

    ``max_tokens`` is required by Anthropic; adapters that need it use their own default
    when it is ``None``. ``options`` passes dialect-specific fields through unchanged
    into the request body (for instance ``{"seed": 1}`` or OpenRouter's ``models``).
    ``output``, an :class:`OutputFormat`, asks for an answer of that shape.
    """

    model: str = attrs.field(validator=_string)
    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    tools: tuple[ToolSpec, ...] = attrs.field(default=(), converter=_specs)
    temperature: float | None = attrs.field(default=None, validator=_temperature)
    max_tokens: int | None = attrs.field(default=None, validator=_max_tokens)
    stop: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    output: OutputFormat | None = attrs.field(default=None, validator=_output)

    def __attrs_post_init__(self) -> None:
        if not self.model:
            raise ValueError("a ChatRequest needs a model name")
        if not self.messages:
            raise ValueError("a ChatRequest needs at least one message")


@attrs.frozen
class ChatResponse:
    """The model's answer: an assistant ``message``, the ``usage``, why it stopped
    (``finish_reason``: ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``
    or the dialect's own word) and the ``model`` that answered.

    ``usage`` defaults to :meth:`Usage.unknown`: a response that does not say what it
    consumed has not reported it (a provider that knows it used nothing says
    ``Usage()``)."""

    message: Message = attrs.field(validator=attrs.validators.instance_of(Message))
    usage: Usage = attrs.field(factory=Usage.unknown, validator=attrs.validators.instance_of(Usage))
    finish_reason: str = attrs.field(default="stop", validator=_string)
    model: str = attrs.field(default="", validator=_string)
    id: str | None = attrs.field(default=None, validator=_optional_string)


@attrs.frozen
class Chunk:
    """A piece of a streamed answer.

    ``delta`` is new text. ``tool_call`` is set once per tool call, when it is complete
    (its arguments assembled). The last chunk of a stream has ``finish_reason`` and
    ``usage`` set.
    """

    delta: str = attrs.field(default="", validator=_string)
    tool_call: ToolCall | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(ToolCall))
    )
    finish_reason: str | None = attrs.field(default=None, validator=_optional_string)
    usage: Usage | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Usage))
    )


@runtime_checkable
class Provider(Protocol):
    """A chat model behind some API.

    ``chat`` sends ``request`` and returns the whole answer. With ``stream``, every
    :class:`Chunk` is also sent to that channel as it arrives, and the channel is
    closed exactly once when ``chat`` ends, whichever way it ends (answer, error or
    cancellation). A provider is safe for concurrent use by many tasks.

    Raises subclasses of :class:`~tinyagents.errors.ProviderError`.
    """

    name: str

    async def chat(
        self,
        request: ChatRequest,
        *,
        stream: trio.abc.SendChannel[Chunk] | None = None,
    ) -> ChatResponse: ...
