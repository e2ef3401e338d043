"""SQLiteMemory: conversations kept in an SQLite file, across runs."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

import trio

from ..llm._types import Message, ToolCall
from ._buffer import _window_start

__all__ = ["SQLiteMemory"]

_T = TypeVar("_T")

TABLE = "tinyagents_messages"
SUSPENDED_TABLE = "tinyagents_suspended_turns"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE TABLE IF NOT EXISTS {SUSPENDED_TABLE} (
    conversation TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""


def message_to_json(message: Message) -> dict[str, Any]:
    """``message`` as a JSON object (how memories and suspended turns store it)."""
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
            for call in message.tool_calls
        ],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
    }


def message_from_json(data: dict[str, Any]) -> Message:
    """The message :func:`message_to_json` gave ``data`` for."""
    return Message(
        data["role"],
        data.get("content", ""),
        tool_calls=tuple(
            ToolCall(call["id"], call["name"], call.get("arguments") or {})
            for call in data.get("tool_calls") or ()
        ),
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
    )


def _encode(message: Message) -> str:
    return json.dumps(message_to_json(message), ensure_ascii=False)


def _decode(text: str) -> Message:
    return message_from_json(json.loads(text))


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    # the connection is in autocommit mode; IMMEDIATE takes the write lock at once, so
    # reading the last sequence number and inserting after it cannot interleave with
    # another writer of the same file
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _tail(connection: sqlite3.Connection, conversation: str, limit: int) -> list[tuple[int, str]]:
    rows = connection.execute(
        f"SELECT seq, message FROM {TABLE} WHERE conversation = ? ORDER BY seq DESC LIMIT ?",
        (conversation, limit),
    ).fetchall()
    rows.reverse()
    return rows


class SQLiteMemory:
    """A conversation kept in an SQLite database file, so that it survives the process.

    ::

        async with SQLiteMemory("chats.db", "user-42", max_messages=200) as memory:
            agent = Agent("bot", provider, model, memory=memory)

    One table, ``tinyagents_messages``, holds the messages of every conversation, keyed
    by the conversation id and a sequence number; each message is stored as JSON (role,
    content, tool calls with their id, name and arguments, ``tool_call_id``, name).
    Several conversations, and several processes, can share one file. A second
    table, ``tinyagents_suspended_turns``, keeps the conversation's suspended turn, if
    any (a turn waiting for approval of a tool call, see :mod:`tinyagents.approval`),
    so that it can be resumed after a restart.

    With ``max_messages``, the conversation is trimmed exactly like
    :class:`~tinyagents.memory.BufferMemory` (by
    :func:`~tinyagents.memory.trim_messages`): :meth:`messages` returns at most that
    many, never splitting a tool call from its results, and :meth:`append` deletes the
    rows that fell out of the window. Without it, everything is kept.

    The instance owns one connection, opened on first use (or by ``async with``) and
    closed by :meth:`aclose`. Every database operation runs in a worker thread
    (``trio.to_thread.run_sync``) and the operations of one instance are serialised
    by a :class:`trio.Lock`, so the connection is only ever used by one thread at a
    time. An operation is not abandoned when cancelled: its thread finishes it (an
    append commits or rolls back whole) before the cancellation is delivered. After
    :meth:`aclose`, operations raise :class:`trio.ClosedResourceError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        conversation: str,
        *,
        max_messages: int | None = None,
    ) -> None:
        if not isinstance(conversation, str) or not conversation:
            raise ValueError(f"a conversation id must be a non-empty str, not {conversation!r}")
        if max_messages is not None and (
            isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1
        ):
            raise ValueError(f"max_messages must be None or >= 1, not {max_messages!r}")
        self.path = os.fspath(path)
        self.conversation = conversation
        self.max_messages = max_messages
        self._connection: sqlite3.Connection | None = None
        self._lock = trio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<SQLiteMemory {self.path!r} conversation={self.conversation!r}>"

    async def __aenter__(self) -> SQLiteMemory:
        await self._run(lambda connection: None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection. Further operations raise
        :class:`trio.ClosedResourceError`; closing again does nothing."""
        self._closed = True
        with trio.CancelScope(shield=True):  # waits only for an operation under way
            async with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            if self._closed:
                raise trio.ClosedResourceError(f"{self!r} is closed")

            def work() -> _T:
                if self._connection is None:
                    self._connection = self._open()
                return operation(self._connection)

            return await trio.to_thread.run_sync(work)

    async def append(self, *messages: Message) -> None:
        """Add ``messages`` at the end of the conversation, in one transaction, then
        delete what fell out of the ``max_messages`` window."""
        for message in messages:
            if not isinstance(message, Message):
                raise TypeError(f"a memory keeps Message objects, not {message!r}")
        payloads = [_encode(message) for message in messages]
        conversation, limit = self.conversation, self.max_messages

        def append(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                (last,) = connection.execute(
                    f"SELECT COALESCE(MAX(seq), -1) FROM {TABLE} WHERE conversation = ?",
                    (conversation,),
                ).fetchone()
                connection.executemany(
                    f"INSERT INTO {TABLE} (conversation, seq, message) VALUES (?, ?, ?)",
                    [(conversation, last + 1 + i, text) for i, text in enumerate(payloads)],
                )
                if limit is None:
                    return
                rows = _tail(connection, conversation, limit)
                start = _window_start([_decode(text) for _, text in rows], limit)
                first_kept = rows[start][0] if start < len(rows) else last + len(payloads) + 1
                connection.execute(
                    f"DELETE FROM {TABLE} WHERE conversation = ? AND seq < ?",
                    (conversation, first_kept),
                )

        if payloads:
            await self._run(append)

    async def messages(self) -> list[Message]:
        """The conversation's messages, oldest first (the ``max_messages`` window)."""
        conversation, limit = self.conversation, self.max_messages

        def read(connection: sqlite3.Connection) -> list[Message]:
            if limit is None:
                rows = connection.execute(
                    f"SELECT seq, message FROM {TABLE} WHERE conversation = ? ORDER BY seq",
                    (conversation,),
                ).fetchall()
                return [_decode(text) for _, text in rows]
            kept = [_decode(text) for _, text in _tail(connection, conversation, limit)]
            return kept[_window_start(kept, limit) :]

        return await self._run(read)

    async def clear(self) -> None:
        """Delete every message of the conversation, and its suspended turn (other
        conversations are kept)."""
        conversation = self.conversation

        def clear(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.execute(f"DELETE FROM {TABLE} WHERE conversation = ?", (conversation,))
                connection.execute(
                    f"DELETE FROM {SUSPENDED_TABLE} WHERE conversation = ?", (conversation,)
                )

        await self._run(clear)

    async def save_suspended_turn(self, state: str) -> None:
        """Keep ``state`` (the text of a suspended turn) as the conversation's
        suspended turn, replacing any (see :class:`~tinyagents.memory.TurnStore`)."""
        if not isinstance(state, str):
            raise TypeError(f"a suspended turn is stored as a str, not {state!r:.80}")
        conversation = self.conversation

        def save(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"INSERT OR REPLACE INTO {SUSPENDED_TABLE} (conversation, state) VALUES (?, ?)",
                (conversation, state),
            )

        await self._run(save)

    async def suspended_turn(self) -> str | None:
        """The conversation's suspended turn, as saved; ``None`` when there is none."""
        conversation = self.conversation

        def load(connection: sqlite3.Connection) -> str | None:
            row = connection.execute(
                f"SELECT state FROM {SUSPENDED_TABLE} WHERE conversation = ?", (conversation,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(load)

    async def clear_suspended_turn(self) -> None:
        """Forget the conversation's suspended turn (nothing if there is none)."""
        conversation = self.conversation

        def clear(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"DELETE FROM {SUSPENDED_TABLE} WHERE conversation = ?", (conversation,)
            )

        await self._run(clear)
