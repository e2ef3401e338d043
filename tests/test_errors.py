"""One hierarchy of errors, each saying what happened and to which actor (tinyagents.errors)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import tinyagents.errors
from tinyagents import Actor, ActorSystem, Bounded, Context, Overflow, Stop
from tinyagents.errors import (
    ActorError,
    ActorFailed,
    ActorNameTaken,
    ActorStartFailed,
    ActorStopped,
    ActorSystemError,
    AskTimeout,
    InvalidActorName,
    MailboxError,
    MailboxFull,
    MessageDropped,
    ReplyError,
    SystemNotRunning,
    TinyAgentsError,
)


class Echo(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


class Gated(Actor):
    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        return message


class Failing(Actor):
    async def receive(self, ctx: Context, message: Any) -> Any:
        raise ValueError("broken handler")


class FailingStart(Echo):
    async def started(self, ctx: Context) -> None:
        raise OSError("no disk")


@pytest.mark.parametrize("name", tinyagents.errors.__all__)
def test_every_error_is_a_tinyagents_error(name: str) -> None:
    cls = getattr(tinyagents.errors, name)
    assert isinstance(cls, type)
    assert issubclass(cls, TinyAgentsError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (ActorError, TinyAgentsError),
        (ActorStopped, ActorError),
        (ActorFailed, ActorError),
        (ActorStartFailed, ActorError),
        (ActorNameTaken, ActorError),
        (InvalidActorName, ActorError),
        (MailboxError, TinyAgentsError),
        (MailboxFull, MailboxError),
        (MessageDropped, MailboxError),
        (AskTimeout, TinyAgentsError),
        (ReplyError, TinyAgentsError),
        (ActorSystemError, TinyAgentsError),
        (SystemNotRunning, ActorSystemError),
    ],
)
def test_the_hierarchy_is_as_documented(cls: type, base: type) -> None:
    assert issubclass(cls, base)


def test_ask_timeout_is_also_a_timeout_error() -> None:
    assert issubclass(AskTimeout, TimeoutError)


async def test_a_real_ask_timeout_is_caught_as_timeout_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate), name="slow")
        try:
            await ref.ask("wait", timeout=1.5)
        except TimeoutError as exc:
            error: BaseException = exc
        else:
            pytest.fail("the ask did not time out")
        gate.set()
    assert isinstance(error, AskTimeout)
    assert error.path == "/user/slow"
    assert error.timeout == 1.5
    assert "/user/slow" in str(error)
    assert "1.5" in str(error)


async def test_actor_stopped_from_a_real_ask_names_the_actor() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo, name="name")
        await ref.stop()
        with pytest.raises(ActorStopped) as info:
            await ref.ask("hello")
    assert info.value.path == "/user/name"
    assert "/user/name" in str(info.value)


async def test_actor_failed_from_a_real_ask_names_the_actor_and_the_error() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Failing, name="worker", supervisor=Stop())
        with pytest.raises(ActorFailed) as info:
            await ref.ask("job")
    assert info.value.path == "/user/worker"
    assert "/user/worker" in str(info.value)
    assert "broken handler" in str(info.value)
    assert isinstance(info.value.error, ValueError)


async def test_mailbox_errors_from_real_sends_name_the_actor() -> None:
    gate = trio.Event()
    async with ActorSystem() as system:
        full = await system.spawn(
            lambda: Gated(gate), name="full", mailbox=Bounded(1, overflow=Overflow.FAIL)
        )
        dropping = await system.spawn(
            lambda: Gated(gate), name="drops", mailbox=Bounded(1, overflow=Overflow.DROP_NEWEST)
        )
        for ref in (full, dropping):
            await ref.tell("wait")
        await trio.testing.wait_all_tasks_blocked()
        for ref in (full, dropping):
            await ref.tell("fill")
        with pytest.raises(MailboxFull) as full_info:
            await full.tell("more")
        with pytest.raises(MessageDropped) as dropped_info:
            await dropping.ask("more")
        gate.set()
    assert full_info.value.path == "/user/full"
    assert "/user/full" in str(full_info.value)
    assert "1" in str(full_info.value)
    assert dropped_info.value.path == "/user/drops"
    assert "/user/drops" in str(dropped_info.value)
    assert "DROP_NEWEST" in str(dropped_info.value)


async def test_spawn_errors_name_the_actor() -> None:
    async with ActorSystem("sys") as system:
        await system.spawn(Echo, name="taken")
        with pytest.raises(ActorNameTaken) as taken:
            await system.spawn(Echo, name="taken")
        with pytest.raises(ActorStartFailed) as start:
            await system.spawn(FailingStart, name="starter")
        with pytest.raises(InvalidActorName) as invalid:
            await system.spawn(Echo, name="no/slash")
    assert "/user/taken" in str(taken.value)
    assert "/user/starter" in str(start.value)
    assert "no disk" in str(start.value)
    assert "no/slash" in str(invalid.value)
    with pytest.raises(SystemNotRunning) as not_running:
        await system.spawn(Echo)
    assert "sys" in str(not_running.value)


async def test_reply_error_for_a_told_message_names_the_actor() -> None:
    errors: list[ReplyError] = []

    class Replier(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            try:
                ctx.reply("nobody asked")
            except ReplyError as exc:
                errors.append(exc)

    async with ActorSystem() as system:
        ref = await system.spawn(Replier, name="replier")
        await ref.tell("told")
        await ref.ask("sync")
    assert len(errors) == 1
    assert "/user/replier" in str(errors[0])


async def test_reply_error_for_a_second_reply_names_the_actor() -> None:
    errors: list[ReplyError] = []

    class Replier(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            ctx.reply("first")
            try:
                ctx.reply("second")
            except ReplyError as exc:
                errors.append(exc)

    async with ActorSystem() as system:
        ref = await system.spawn(Replier, name="replier")
        assert await ref.ask("q") == "first"
    assert len(errors) == 1
    assert "/user/replier" in str(errors[0])


async def test_entering_a_system_twice_names_the_system() -> None:
    system = ActorSystem("twice")
    async with system:
        pass
    with pytest.raises(ActorSystemError) as info:
        async with system:
            pass
    assert "twice" in str(info.value)
