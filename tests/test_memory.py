"""Memory (tinyagents.memory): the window rule, BufferMemory, SQLiteMemory across runs."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyagents.llm import Message, ToolCall
from tinyagents.memory import BufferMemory, Memory, SQLiteMemory, TurnStore, trim_messages

U = Message.user
A = Message.assistant


def calls(*ids: str) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(i, "lookup", {"key": i, "nested": {"list": [1, None]}}) for i in ids)


def group(*ids: str) -> list[Message]:
    """An assistant message calling ``ids``, then their results."""
    made = calls(*ids)
    return [A("", made), *(Message.tool(c, f"result {c.id}") for c in made)]


# -- the rule, by an oracle ---------------------------------------------------------------


def answered(window: Sequence[Message]) -> bool:
    """Every tool message of ``window`` answers a call made before it in ``window``."""
    made: set[str] = set()
    for message in window:
        if message.role == "tool" and message.tool_call_id not in made:
            return False
        made.update(call.id for call in message.tool_calls)
    return True


def oracle(history: Sequence[Message], n: int) -> list[Message]:
    """The longest suffix of at most n messages with every tool message answered."""
    for start in range(len(history) + 1):
        window = list(history[start:])
        if len(window) <= n and answered(window):
            return window
    raise AssertionError("the empty suffix always qualifies")


@st.composite
def histories(draw: st.DrawFn) -> list[Message]:
    """user, assistant, system messages and tool-call groups (results in any order; the
    last group may still wait for some of its results)."""
    ids = itertools.count()
    history: list[Message] = []
    kinds = draw(st.lists(st.sampled_from(["user", "assistant", "system", "tools"]), max_size=25))
    for index, kind in enumerate(kinds):
        if kind == "user":
            history.append(U(f"u{index}"))
        elif kind == "assistant":
            history.append(A(f"a{index}"))
        elif kind == "system":
            history.append(Message.system(f"s{index}"))
        else:
            made = calls(*(f"c{next(ids)}" for _ in range(draw(st.integers(1, 3)))))
            history.append(A(f"a{index}", made))
            results = draw(st.permutations(made))
            if index == len(kinds) - 1:
                results = results[: draw(st.integers(0, len(results)))]
            history.extend(Message.tool(c, f"r{c.id}") for c in results)
    return history


def chunked(history: list[Message], cuts: list[int]) -> list[list[Message]]:
    points = sorted({0, len(history), *(c % (len(history) + 1) for c in cuts)})
    return [history[a:b] for a, b in itertools.pairwise(points)]


@given(history=histories(), n=st.integers(1, 12))
def test_trim_messages_keeps_the_longest_valid_suffix(history: list[Message], n: int) -> None:
    window = trim_messages(history, n)
    assert window == oracle(history, n)
    assert len(window) <= n
    assert window == history[len(history) - len(window) :]
    assert answered(window)
    if window:
        assert window[0].role != "tool"


@given(history=histories(), n=st.integers(1, 12), cuts=st.lists(st.integers(0, 100)))
async def test_buffer_memory_window(history: list[Message], n: int, cuts: list[int]) -> None:
    memory = BufferMemory(n)
    for chunk in chunked(history, cuts):
        await memory.append(*chunk)
        kept = await memory.messages()
        # after every append, not just at the end
        assert len(kept) <= n
        assert answered(kept)
    kept = await memory.messages()
    assert kept == history[len(history) - len(kept) :]  # a suffix of the history
    assert kept == oracle(history, n)  # the longest one the rule allows


def test_trim_examples() -> None:
    u1, u2 = U("1"), U("2")
    g = group("x", "y")  # assistant, result x, result y
    history = [u1, *g, u2]
    assert trim_messages(history, 5) == history
    assert trim_messages(history, 4) == [*g, u2]
    assert trim_messages(history, 3) == [u2]  # the group goes whole
    assert trim_messages(history, 1) == [u2]
    assert trim_messages([u1, *g], 2) == []  # fewer than n: even none
    assert trim_messages([u1, *g], 3) == g
    assert trim_messages(history, 0) == []
    assert trim_messages([], 3) == []


def test_orphan_tool_messages_are_never_kept() -> None:
    orphan = Message.tool(ToolCall("gone", "lookup"), "lost result")
    nameless = Message("tool", "no id")
    assert trim_messages([U("1"), orphan, U("2")], 10) == [U("2")]
    assert trim_messages([nameless, A("ok")], 10) == [A("ok")]
    # an answer that comes before its call does not count
    early = Message.tool(ToolCall("x", "lookup"), "early")
    assert trim_messages([early, A("", calls("x"))], 10) == [A("", calls("x"))]


def test_system_messages_are_ordinary() -> None:
    history = [Message.system("be brief"), U("1"), A("2")]
    assert trim_messages(history, 2) == [U("1"), A("2")]


def test_trim_refuses_a_negative_limit() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        trim_messages([], -1)


# -- BufferMemory ---------------------------------------------------------------------


async def test_buffer_memory_keeps_the_last_n() -> None:
    memory = BufferMemory(3)
    assert isinstance(memory, Memory)
    await memory.append(U("1"), A("2"))
    await memory.append(U("3"))
    assert await memory.messages() == [U("1"), A("2"), U("3")]
    await memory.append(A("4"), U("5"))
    assert await memory.messages() == [U("3"), A("4"), U("5")]
    assert len(memory) == 3
    assert "3/3" in repr(memory)


async def test_buffer_memory_never_splits_a_tool_call_from_its_results() -> None:
    memory = BufferMemory(4)
    await memory.append(U("question"))
    for message in group("x", "y"):  # one by one, as they might arrive
        await memory.append(message)
    assert await memory.messages() == [U("question"), *group("x", "y")]
    await memory.append(A("answer"))
    assert await memory.messages() == [*group("x", "y"), A("answer")]
    await memory.append(U("next"))
    assert await memory.messages() == [A("answer"), U("next")]  # fewer than 4


async def test_messages_is_a_copy_and_clear_forgets() -> None:
    memory = BufferMemory(10)
    await memory.append(U("1"))
    got = await memory.messages()
    got.append(U("2"))
    assert await memory.messages() == [U("1")]
    await memory.clear()
    assert await memory.messages() == []
    await memory.append()
    assert await memory.messages() == []


@pytest.mark.parametrize("n", [0, -1, True, 2.5, "3"])
def test_buffer_memory_needs_a_positive_size(n: object) -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        BufferMemory(n)  # type: ignore[arg-type]


async def test_memories_keep_messages_only() -> None:
    with pytest.raises(TypeError, match="Message"):
        await BufferMemory(3).append("hello")  # type: ignore[arg-type]
    memory = SQLiteMemory(":memory:", "c")
    with pytest.raises(TypeError, match="Message"):
        await memory.append(U("ok"), "hello")  # type: ignore[arg-type]
    await memory.aclose()


# -- SQLiteMemory ---------------------------------------------------------------------

CONVERSATION = [
    Message.system("be brief"),
    U("What's the weather in Paris and Zürich? ☀"),
    A(
        "Let me look.",
        [
            ToolCall("call_1", "get_weather", {"city": "Paris", "days": 2}),
            ToolCall("call_2", "get_weather", {"city": "Zürich", "opts": {"unit": "c"}}),
        ],
    ),
    Message.tool(ToolCall("call_1", "get_weather"), "sunny"),
    Message.tool(ToolCall("call_2", "get_weather"), "error: unknown city"),
    A("Paris is sunny."),
]


async def test_sqlite_memory_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    memory = SQLiteMemory(path, "chat-1")
    assert isinstance(memory, Memory)
    await memory.append(*CONVERSATION[:2])
    await memory.append(*CONVERSATION[2:])
    await memory.aclose()

    async with SQLiteMemory(str(path), "chat-1") as again:
        got = await again.messages()
        assert got == CONVERSATION
        assert got[2].tool_calls[1].arguments == {"city": "Zürich", "opts": {"unit": "c"}}
        assert got[3].tool_call_id == "call_1"
        assert got[3].name == "get_weather"
        # appending after reopening continues the conversation in order
        await again.append(U("thanks"))
    async with SQLiteMemory(path, "chat-1") as third:
        assert await third.messages() == [*CONVERSATION, U("thanks")]


async def test_conversations_do_not_mix(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SQLiteMemory(path, "a") as a, SQLiteMemory(path, "b") as b:
        await a.append(U("for a"))
        await b.append(U("for b"), A("b's answer"))
        await a.append(A("a's answer"))
        assert await a.messages() == [U("for a"), A("a's answer")]
        assert await b.messages() == [U("for b"), A("b's answer")]
        await a.clear()
        assert await a.messages() == []
        assert await b.messages() == [U("for b"), A("b's answer")]
    async with SQLiteMemory(path, "c") as c:
        assert await c.messages() == []


async def test_sqlite_memory_trims_like_buffer_memory(tmp_path: Path) -> None:
    path = tmp_path / "trim.db"
    history = [U("1"), *group("x", "y"), A("2"), U("3"), *group("z")]
    async with SQLiteMemory(path, "t", max_messages=4) as memory:
        buffer = BufferMemory(4)
        for message in history:
            await memory.append(message)
            await buffer.append(message)
            assert await memory.messages() == await buffer.messages()
        assert await memory.messages() == [A("2"), U("3"), *group("z")]
    # rows out of the window were deleted
    with sqlite3.connect(path) as connection:
        (rows,) = connection.execute("SELECT COUNT(*) FROM tinyagents_messages").fetchone()
    connection.close()
    assert rows == 4


async def test_reading_with_a_smaller_window(tmp_path: Path) -> None:
    path = tmp_path / "window.db"
    async with SQLiteMemory(path, "w") as everything:
        await everything.append(*CONVERSATION)
    async with SQLiteMemory(path, "w", max_messages=3) as window:
        assert await window.messages() == [A("Paris is sunny.")]
    async with SQLiteMemory(path, "w", max_messages=4) as window:
        assert await window.messages() == CONVERSATION[2:]
    async with SQLiteMemory(path, "w") as everything:
        assert await everything.messages() == CONVERSATION  # reading deletes nothing


@settings(max_examples=40, deadline=None)
@given(history=histories(), n=st.integers(1, 8), cuts=st.lists(st.integers(0, 100)))
async def test_sqlite_memory_keeps_what_buffer_memory_keeps(
    history: list[Message], n: int, cuts: list[int]
) -> None:
    buffer = BufferMemory(n)
    async with SQLiteMemory(":memory:", "h", max_messages=n) as memory:
        for chunk in chunked(history, cuts):
            await memory.append(*chunk)
            await buffer.append(*chunk)
        assert await memory.messages() == await buffer.messages()


async def test_the_file_is_opened_lazily(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    memory = SQLiteMemory(path, "c")
    assert not path.exists()
    assert await memory.messages() == []
    assert path.exists()
    await memory.aclose()
    async with SQLiteMemory(tmp_path / "eager.db", "c"):
        assert (tmp_path / "eager.db").exists()


async def test_closed_memory(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "closed.db", "c")
    await memory.append(U("1"))
    await memory.aclose()
    await memory.aclose()  # again: nothing
    with pytest.raises(trio.ClosedResourceError):
        await memory.messages()
    with pytest.raises(trio.ClosedResourceError):
        await memory.append(U("2"))
    with pytest.raises(trio.ClosedResourceError):
        await memory.clear()
    never_opened = SQLiteMemory(tmp_path / "never.db", "c")
    await never_opened.aclose()
    assert not (tmp_path / "never.db").exists()


async def test_concurrent_appends(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with SQLiteMemory(path, "c") as one, SQLiteMemory(path, "c") as two:
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(one.append, U(f"one {i}"), A(f"one {i}"))
                nursery.start_soon(two.append, U(f"two {i}"), A(f"two {i}"))
        got = await one.messages()
    assert len(got) == 40
    # each append's messages stay together, in order
    for first, second in itertools.pairwise(got[::2]):
        assert first.role == second.role == "user"
    for question, answer in zip(got[::2], got[1::2], strict=True):
        assert answer == A(question.content)


async def test_a_failed_append_stores_nothing(tmp_path: Path) -> None:
    unserialisable = A("", [ToolCall("c", "f", {"when": object()})])
    async with SQLiteMemory(tmp_path / "atomic.db", "c") as memory:
        await memory.append(U("kept"))
        with pytest.raises(TypeError):
            await memory.append(U("not kept"), unserialisable)
        assert await memory.messages() == [U("kept")]


@pytest.mark.parametrize(
    ("conversation", "max_messages", "match"),
    [("", None, "conversation id"), ("c", 0, "max_messages"), ("c", True, "max_messages")],
)
def test_sqlite_memory_arguments(conversation: str, max_messages: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SQLiteMemory(":memory:", conversation, max_messages=max_messages)


def test_sqlite_memory_repr(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "r.db", "chat")
    assert "r.db" in repr(memory)
    assert "chat" in repr(memory)


async def test_sqlite_memory_keeps_a_suspended_turn_per_conversation(tmp_path: Path) -> None:
    path = tmp_path / "turns.db"
    async with SQLiteMemory(path, "a") as a, SQLiteMemory(path, "b") as b:
        assert isinstance(a, TurnStore)
        assert not isinstance(BufferMemory(3), TurnStore)
        assert await a.suspended_turn() is None
        await a.save_suspended_turn("first")
        await a.save_suspended_turn("second")  # replaces
        await b.save_suspended_turn("other")
        with pytest.raises(TypeError, match="str"):
            await a.save_suspended_turn(b"bytes")  # type: ignore[arg-type]
    async with SQLiteMemory(path, "a") as a, SQLiteMemory(path, "b") as b:
        assert await a.suspended_turn() == "second"  # kept across reopening
        await a.append(Message.user("hi"))
        await a.clear()  # forgets the messages and the suspended turn
        assert await a.suspended_turn() is None
        assert await b.suspended_turn() == "other"
        await b.clear_suspended_turn()
        await b.clear_suspended_turn()  # nothing to clear: fine
        assert await b.suspended_turn() is None
