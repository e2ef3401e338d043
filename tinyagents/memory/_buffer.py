"""The Memory protocol, the trimming rule and the in-process BufferMemory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..llm._types import Message

__all__ = ["BufferMemory", "Memory", "TurnStore", "trim_messages"]


@runtime_checkable
class Memory(Protocol):
    """Where an agent keeps its conversation.

    ``append`` adds messages at the end, ``messages`` returns what is kept, oldest
    first (a new list each time), and ``clear`` forgets everything. A memory may keep
    less than it was given (see :func:`trim_messages`), but what it keeps is always a
    suffix of what it was given, in order.
    """

    async def append(self, *messages: Message) -> None: ...

    async def messages(self) -> list[Message]: ...

    async def clear(self) -> None: ...


@runtime_checkable
class TurnStore(Protocol):
    """A memory that also keeps an agent's suspended turn, so that the turn outlives
    the agent's actor (and, if the store is durable, the process).

    A turn is suspended while tool calls that need approval wait for a decision (see
    :mod:`tinyagents.approval`). The agent saves its state, as text, with
    ``save_suspended_turn`` whenever it changes (before asking, after each decided
    call ran), reads it back with ``suspended_turn`` when resumed, and removes it with
    ``clear_suspended_turn`` when the turn ends. :class:`~tinyagents.memory.SQLiteMemory`
    is one; with a memory that is not, the agent keeps a suspended turn on its actor
    (lost if the actor restarts).
    """

    async def save_suspended_turn(self, state: str) -> None: ...

    async def suspended_turn(self) -> str | None: ...

    async def clear_suspended_turn(self) -> None: ...


def _window_start(messages: Sequence[Message], limit: int) -> int:
    """The index where the window of at most ``limit`` messages starts (see
    :func:`trim_messages`); ``len(messages)`` for an empty window."""
    if limit < 0:
        raise ValueError(f"the number of messages to keep must be >= 0, not {limit}")
    start = len(messages)
    unanswered: set[str | None] = set()  # calls of tool messages after i, not made after i
    for i in range(len(messages) - 1, max(len(messages) - limit, 0) - 1, -1):
        message = messages[i]
        if message.role == "tool":
            unanswered.add(message.tool_call_id)
        else:
            for call in message.tool_calls:
                unanswered.discard(call.id)
        if not unanswered:
            start = i
    return start


def trim_messages(messages: Sequence[Message], limit: int) -> list[Message]:
    """The longest suffix of ``messages`` that holds at most ``limit`` messages and in
    which every ``tool`` message answers a call made by an assistant message before it
    in the suffix.

    So an assistant message with tool calls is never separated from the results that
    answer it: when the limit would cut into such a group, the whole group goes, and
    the window may hold fewer than ``limit`` messages (none, when the last group alone
    is too big). A tool message is never the first message kept. Whether a suffix
    qualifies depends on the suffix alone, so trimming step by step as messages arrive
    gives the same window as trimming the whole history at once.

    System messages are not treated specially: they are kept or dropped like the others.
    """
    return list(messages[_window_start(messages, limit) :])


class BufferMemory:
    """Keeps the last ``n`` messages in this process, trimmed by :func:`trim_messages`
    after each :meth:`append`: never a tool call without its results, never a result
    without its call, so the window is always a valid conversation to send.

    The agent adds its system prompt itself on each turn, so a system message is not
    stored specially: appended, it is an ordinary message that ages out like the
    others. Methods never block.
    """

    __slots__ = ("_messages", "max_messages")

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"BufferMemory keeps n >= 1 messages, not {n!r}")
        self.max_messages = n
        self._messages: list[Message] = []

    def __repr__(self) -> str:
        return f"<BufferMemory {len(self._messages)}/{self.max_messages} messages>"

    def __len__(self) -> int:
        return len(self._messages)

    async def append(self, *messages: Message) -> None:
        """Add ``messages`` at the end, then drop the oldest beyond the window."""
        for message in messages:
            if not isinstance(message, Message):
                raise TypeError(f"a memory keeps Message objects, not {message!r}")
        window = self._messages[-self.max_messages :] + list(messages)
        self._messages = trim_messages(window, self.max_messages)

    async def messages(self) -> list[Message]:
        """The kept messages, oldest first."""
        return list(self._messages)

    async def clear(self) -> None:
        """Forget every message."""
        self._messages.clear()
