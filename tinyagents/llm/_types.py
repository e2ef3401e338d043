"""The provider-neutral values of the LLM layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import trio

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Chunk",
    "Message",
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
    return dict(value) if value is not None else {}


def _calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(value)


def _messages(value: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(value)


def _specs(value: Iterable[ToolSpec]) -> tuple[ToolSpec, ...]:
    return tuple(value)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class ToolCall:
    """A call of a tool requested by the model.

    ``arguments`` is already parsed (a JSON object as a dict), whatever the dialect
    sent (OpenAI and Mistral send a JSON string, Anthropic and Ollama an object).
    ``id`` is the provider's id for the call; Ollama gives none, and the adapter makes
    one up so that a tool result can always name its call.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen
class ToolSpec:
    """A tool the model may call: a name, a description and a JSON Schema of its
    arguments (an ``object`` schema)."""

    name: str
    description: str = ""
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
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_calls)
    tool_call_id: str | None = None
    name: str | None = None

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


@attrs.frozen
class Usage:
    """Tokens a call consumed, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@attrs.frozen
class ChatRequest:
    """What to ask a model.

    ``max_tokens`` is required by Anthropic; adapters that need it use their own default
    when it is ``None``. ``options`` passes dialect-specific fields through unchanged
    into the request body (for instance ``{"seed": 1}`` or OpenRouter's ``models``).
    """

    model: str
    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    tools: tuple[ToolSpec, ...] = attrs.field(default=(), converter=_specs)
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)

    def __attrs_post_init__(self) -> None:
        if not self.model:
            raise ValueError("a ChatRequest needs a model name")
        if not self.messages:
            raise ValueError("a ChatRequest needs at least one message")


@attrs.frozen
class ChatResponse:
    """The model's answer: an assistant ``message``, the ``usage``, why it stopped
    (``finish_reason``: ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``
    or the dialect's own word) and the ``model`` that answered."""

    message: Message
    usage: Usage = Usage()
    finish_reason: str = "stop"
    model: str = ""
    id: str | None = None


@attrs.frozen
class Chunk:
    """A piece of a streamed answer.

    ``delta`` is new text. ``tool_call`` is set once per tool call, when it is complete
    (its arguments assembled). The last chunk of a stream has ``finish_reason`` and
    ``usage`` set.
    """

    delta: str = ""
    tool_call: ToolCall | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


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
