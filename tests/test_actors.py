"""The actor core: spawning, names and paths, one message at a time, order per sender,
implicit senders, refs and mailbox statistics (DESIGN.md sections 2 and 3)."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from tinyagents import (
    Actor,
    ActorRef,
    ActorSystem,
    Bounded,
    Context,
    Overflow,
    StopReason,
    Unbounded,
)
from tinyagents.errors import (
    ActorNameTaken,
    ActorStartFailed,
    ActorStopped,
    InvalidActorName,
    SystemNotRunning,
)

Job = Callable[[Context], Awaitable[Any]]


class Echo(Actor):
    """Answers every message with the message itself."""

    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


class Probe(Actor):
    """Runs the async function it is sent inside its handler and answers its result."""

    async def receive(self, ctx: Context, message: Job) -> Any:
        return await message(ctx)


class Recorder(Actor):
    """Appends ``(message, ctx.sender)`` to a shared log."""

    def __init__(self, log: list[tuple[Any, ActorRef | None]]) -> None:
        self.log = log

    async def receive(self, ctx: Context, message: Any) -> Any:
        self.log.append((message, ctx.sender))
        return message


class Gated(Actor):
    """Waits for ``gate`` when handling ``"wait"``; answers every message with itself."""

    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate

    async def receive(self, ctx: Context, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        return message


# -- names and paths ---------------------------------------------------------------------


async def test_spawn_with_a_name_gives_the_path_under_user() -> None:
    async with ActorSystem("names") as system:
        ref = await system.spawn(Echo, name="echo")
        assert ref.path == "/user/echo"
        assert ref.name == "echo"
        assert ref.system_name == "names"
        assert ref.is_alive
        assert await ref.ask("hello") == "hello"
        assert system.lookup("/user/echo") == ref
        assert system.children == [ref]


async def test_spawn_without_a_name_gets_auto_names_per_parent() -> None:
    async with ActorSystem() as system:
        first = await system.spawn(Echo)
        second = await system.spawn(Echo)
        assert (first.name, first.path) == ("$1", "/user/$1")
        assert (second.name, second.path) == ("$2", "/user/$2")

        async def spawn_two(ctx: Context) -> list[ActorRef]:
            return [await ctx.spawn(Echo), await ctx.spawn(Echo)]

        parent = await system.spawn(Probe, name="p")
        kids = await parent.ask(spawn_two)
        assert [kid.path for kid in kids] == ["/user/p/$1", "/user/p/$2"]
        assert system.lookup("/user/p/$2") == kids[1]


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "/a", "a/", "$x", "$1", "a b", " a", "a\tb", "a\nb"],
)
async def test_invalid_names_are_refused_before_anything_is_created(name: str) -> None:
    made = []

    def factory() -> Actor:
        made.append(1)
        return Echo()

    async with ActorSystem() as system:
        with pytest.raises(InvalidActorName):
            await system.spawn(factory, name=name)

        async def spawn_child(ctx: Context) -> Any:
            try:
                await ctx.spawn(factory, name=name)
            except InvalidActorName as exc:
                return exc
            return None

        parent = await system.spawn(Probe, name="p")
        assert isinstance(await parent.ask(spawn_child), InvalidActorName)
        assert made == []
        assert system.children == [parent]


async def test_a_name_that_is_not_a_str_is_invalid() -> None:
    async with ActorSystem() as system:
        with pytest.raises(InvalidActorName):
            await system.spawn(Echo, name=123)  # type: ignore[arg-type]
        assert system.children == []


async def test_names_are_unique_among_siblings_only() -> None:
    async with ActorSystem() as system:
        first = await system.spawn(Echo, name="a")
        with pytest.raises(ActorNameTaken) as info:
            await system.spawn(Echo, name="a")
        assert info.value.path == "/user/a"
        assert first.is_alive
        assert system.children == [first]

        async def spawn_a(ctx: Context) -> ActorRef:
            return await ctx.spawn(Echo, name="a")

        async def spawn_a_again(ctx: Context) -> Any:
            try:
                await ctx.spawn(Echo, name="a")
            except ActorNameTaken as exc:
                return exc
            return None

        parent = await system.spawn(Probe, name="b")
        nested = await parent.ask(spawn_a)
        assert nested.path == "/user/b/a"
        assert nested != first
        taken = await parent.ask(spawn_a_again)
        assert isinstance(taken, ActorNameTaken)
        assert taken.path == "/user/b/a"


async def test_the_name_is_freed_after_the_actor_stopped() -> None:
    async with ActorSystem() as system:
        old = await system.spawn(Echo, name="a")
        await old.stop()
        assert not old.is_alive
        assert system.lookup("/user/a") is None
        new = await system.spawn(Echo, name="a")
        assert new.path == old.path == "/user/a"
        assert system.lookup("/user/a") == new
        assert await new.ask(1) == 1


async def test_hierarchical_paths_children_parent_and_lookup() -> None:
    async def spawn_named(ctx: Context, name: str) -> ActorRef:
        return await ctx.spawn(Probe, name=name)

    async def children(ctx: Context) -> list[ActorRef]:
        return ctx.children

    async def parent_of(ctx: Context) -> ActorRef | None:
        return ctx.parent

    async def me(ctx: Context) -> ActorRef:
        return ctx.self

    async with ActorSystem() as system:
        a = await system.spawn(Probe, name="a")
        b = await a.ask(functools.partial(spawn_named, name="b"))
        b2 = await a.ask(functools.partial(spawn_named, name="b2"))
        c = await b.ask(functools.partial(spawn_named, name="c"))
        assert (a.path, b.path, b2.path, c.path) == (
            "/user/a",
            "/user/a/b",
            "/user/a/b2",
            "/user/a/b/c",
        )
        assert await a.ask(children) == [b, b2]
        assert await b.ask(children) == [c]
        assert await c.ask(children) == []
        assert await a.ask(parent_of) is None
        assert await b.ask(parent_of) == a
        assert await c.ask(parent_of) == b
        assert await c.ask(me) == c
        assert system.lookup("/user/a/b/c") == c
        assert system.lookup("/user/a/b") == b
        assert system.lookup("/user/a/nope") is None
        assert system.lookup("/user/a/b/c/d") is None
        assert system.lookup("/user") is None
        assert system.lookup("/elsewhere/a") is None
        assert system.children == [a]

        await b.stop()
        assert not c.is_alive
        assert system.lookup("/user/a/b/c") is None
        assert system.lookup("/user/a/b") is None
        assert await a.ask(children) == [b2]


# -- starting --------------------------------------------------------------------------


class SlowStart(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def started(self, ctx: Context) -> None:
        await trio.sleep(3)
        self.log.append(f"started {ctx.self.path}")

    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


async def test_spawn_returns_after_the_started_hook_ran(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        before = trio.current_time()
        await system.spawn(lambda: SlowStart(log), name="slow")
        assert log == ["started /user/slow"]
        assert trio.current_time() - before == 3

        async def spawn_slow_child(ctx: Context) -> list[str]:
            await ctx.spawn(lambda: SlowStart(log), name="kid")
            return list(log)

        parent = await system.spawn(Probe, name="p")
        seen = await parent.ask(spawn_slow_child)
        assert seen == ["started /user/slow", "started /user/p/kid"]


class FailingStart(Actor):
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def started(self, ctx: Context) -> None:
        await trio.lowlevel.checkpoint()
        raise self.error

    async def receive(self, ctx: Context, message: Any) -> Any:
        return message


async def test_a_failing_started_hook_raises_actor_start_failed_from_spawn() -> None:
    error = RuntimeError("no database")
    async with ActorSystem() as system:
        with pytest.raises(ActorStartFailed) as info:
            await system.spawn(lambda: FailingStart(error), name="db")
        assert info.value.__cause__ is error
        assert info.value.error is error
        assert info.value.path == "/user/db"
        assert system.lookup("/user/db") is None
        assert system.children == []
        # the name is free again and the system goes on
        ref = await system.spawn(Echo, name="db")
        assert await ref.ask("still here") == "still here"


async def test_a_failed_start_is_reported_as_failed_and_gets_no_stopped_hook() -> None:
    error = RuntimeError("no database")
    stopped: list[str] = []

    class FailsToStart(FailingStart):
        async def stopped(self, ctx: Context) -> None:
            stopped.append(ctx.self.path)

    async with ActorSystem() as system, system.events.subscribe() as events:
        with pytest.raises(ActorStartFailed):
            await system.spawn(lambda: FailsToStart(error), name="db")
        got = []
        while True:
            try:
                got.append(events.receive_nowait())
            except trio.WouldBlock:
                break
    assert [type(event).__name__ for event in got] == ["ActorStopped"]
    assert got[0].ref.path == "/user/db"
    assert got[0].reason is StopReason.FAILED
    assert got[0].error is error
    assert stopped == []


async def test_a_failing_started_hook_of_a_child_raises_in_the_parent() -> None:
    error = RuntimeError("child cannot start")

    async def spawn_failing(ctx: Context) -> Any:
        try:
            await ctx.spawn(lambda: FailingStart(error), name="kid")
        except ActorStartFailed as exc:
            return exc, ctx.children
        return None

    async with ActorSystem() as system:
        parent = await system.spawn(Probe, name="p")
        failure, children = await parent.ask(spawn_failing)
        assert isinstance(failure, ActorStartFailed)
        assert failure.__cause__ is error
        assert failure.path == "/user/p/kid"
        assert children == []
        assert parent.is_alive


async def test_spawn_on_a_system_that_is_not_running_raises_system_not_running() -> None:
    system = ActorSystem()
    with pytest.raises(SystemNotRunning):
        await system.spawn(Echo)
    async with system:
        pass
    with pytest.raises(SystemNotRunning):
        await system.spawn(Echo)
    assert not system.running


async def test_spawn_of_a_top_level_actor_during_shutdown_raises_system_not_running() -> None:
    seen: list[BaseException] = []

    class SpawnsWhenStopping(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            return message

        async def stopped(self, ctx: Context) -> None:
            try:
                await ctx.system.spawn(Echo)
            except SystemNotRunning as exc:
                seen.append(exc)

    async with ActorSystem() as system:
        await system.spawn(SpawnsWhenStopping)
    assert len(seen) == 1


async def test_spawn_under_a_stopped_actor_raises_actor_stopped() -> None:
    async def grab_context(ctx: Context) -> Context:
        return ctx

    async with ActorSystem() as system:
        parent = await system.spawn(Probe, name="p")
        ctx = await parent.ask(grab_context)
        await parent.stop()
        with pytest.raises(ActorStopped) as info:
            await ctx.spawn(Echo, name="late")
        assert info.value.path == "/user/p"
        assert system.lookup("/user/p/late") is None
        assert ctx.children == []


async def test_spawn_from_the_stopped_hook_raises_and_the_stop_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[BaseException] = []

    class SpawnsInStopped(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            return message

        async def stopped(self, ctx: Context) -> None:
            try:
                await ctx.spawn(Echo, name="too-late")
            except ActorStopped as exc:
                seen.append(exc)

    async with ActorSystem() as system:
        ref = await system.spawn(SpawnsInStopped, name="s")
        with trio.fail_after(100):
            await ref.stop()
        assert not ref.is_alive
    assert len(seen) == 1


# -- factories ---------------------------------------------------------------------------


class EchoSpec:
    """An ActorSpec: an object with ``create_actor``."""

    def __init__(self) -> None:
        self.made = 0

    def create_actor(self) -> Actor:
        self.made += 1
        return Echo()


class Tagged(Actor):
    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def receive(self, ctx: Context, message: Any) -> Any:
        return (self.tag, message)


async def test_every_factory_form_makes_a_working_actor() -> None:
    spec = EchoSpec()
    async with ActorSystem() as system:
        by_class = await system.spawn(Echo)
        by_lambda = await system.spawn(lambda: Tagged("lambda"))
        by_partial = await system.spawn(functools.partial(Tagged, "partial"))
        by_spec = await system.spawn(spec)
        assert await by_class.ask(1) == 1
        assert await by_lambda.ask(2) == ("lambda", 2)
        assert await by_partial.ask(3) == ("partial", 3)
        assert await by_spec.ask(4) == 4
        assert spec.made == 1


@pytest.mark.parametrize(
    "factory",
    [
        pytest.param(lambda: object(), id="lambda-returning-object"),
        pytest.param(lambda: "actor", id="lambda-returning-str"),
        pytest.param(dict, id="class-that-is-not-an-actor"),
        pytest.param(Echo(), id="an-actor-instance-is-not-a-factory"),
    ],
)
async def test_a_factory_that_does_not_make_an_actor_raises_type_error(factory: Any) -> None:
    async with ActorSystem() as system:
        with pytest.raises(TypeError):
            await system.spawn(factory, name="x")
        assert system.lookup("/user/x") is None
        assert system.children == []
        ref = await system.spawn(Echo, name="x")
        assert await ref.ask("ok") == "ok"


async def test_an_actor_spec_returning_a_non_actor_raises_type_error() -> None:
    class BadSpec:
        def create_actor(self) -> Any:
            return 42

    async with ActorSystem() as system:
        with pytest.raises(TypeError):
            await system.spawn(BadSpec())
        assert system.children == []


# -- one message at a time, in order ---------------------------------------------------------


async def test_one_message_at_a_time(autojump_clock: trio.testing.MockClock) -> None:
    state = {"active": 0, "most": 0, "handled": 0}

    class Busy(Actor):
        async def receive(self, ctx: Context, message: Any) -> Any:
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
            await trio.sleep(1)
            state["active"] -= 1
            state["handled"] += 1
            return message

    async with ActorSystem() as system:
        ref = await system.spawn(Busy)

        async def sender(n: int) -> None:
            for i in range(5):
                await ref.tell((n, i))

        async def asker(n: int) -> None:
            assert await ref.ask(("ask", n)) == ("ask", n)

        with trio.fail_after(1000):
            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(sender, n)
                    nursery.start_soon(asker, n)
            await ref.ask("last")
    assert state["handled"] == 4 * 5 + 4 + 1
    assert state["most"] == 1


async def test_many_tells_from_one_task_arrive_in_order() -> None:
    log: list[tuple[Any, ActorRef | None]] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Recorder(log))
        for i in range(1000):
            await ref.tell(i)
        for i in range(1000, 1010):
            ref.tell_nowait(i)
        await ref.ask("done")
    assert [message for message, _ in log] == [*range(1010), "done"]


@pytest.mark.parametrize(
    "mailbox",
    [Unbounded(), Bounded(3), Bounded(1)],
    ids=["unbounded", "bounded-3-block", "bounded-1-block"],
)
async def test_each_senders_order_is_kept_among_several_senders(mailbox: Any) -> None:
    log: list[tuple[Any, ActorRef | None]] = []

    class SlowRecorder(Recorder):
        async def receive(self, ctx: Context, message: Any) -> Any:
            await trio.lowlevel.checkpoint()
            return await super().receive(ctx, message)

    senders, count = 6, 100
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: SlowRecorder(log), mailbox=mailbox)

        async def sender(n: int) -> None:
            for i in range(count):
                await ref.tell((n, i))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for n in range(senders):
                    nursery.start_soon(sender, n)
            await ref.ask(("done", 0))
    messages = [message for message, _ in log]
    assert len(messages) == senders * count + 1
    for n in range(senders):
        assert [i for sender_, i in messages if sender_ == n] == list(range(count))


# -- implicit sender -------------------------------------------------------------------------


async def test_the_sender_is_the_sending_actor_inside_a_handler_and_none_outside() -> None:
    log: list[tuple[Any, ActorRef | None]] = []
    async with ActorSystem() as system:
        target = await system.spawn(lambda: Recorder(log), name="target")
        other = await system.spawn(Echo, name="other")
        a = await system.spawn(Probe, name="a")

        async def tell_target(ctx: Context) -> None:
            await target.tell("told from a")
            target.tell_nowait("told_nowait from a")
            await target.ask("asked from a")
            await target.tell("told for other", sender=other)

        await a.ask(tell_target)
        await target.tell("told from outside")
        target.tell_nowait("told_nowait from outside")
        await target.ask("asked from outside")
        await target.tell("told from outside for a", sender=a)
        await target.ask("sync")

        async def from_a_task() -> None:
            await target.tell("told from a test task")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(from_a_task)
        await target.ask("sync")
    assert log == [
        ("told from a", a),
        ("told_nowait from a", a),
        ("asked from a", a),
        ("told for other", other),
        ("told from outside", None),
        ("told_nowait from outside", None),
        ("asked from outside", None),
        ("told from outside for a", a),
        ("sync", None),
        ("told from a test task", None),
        ("sync", None),
    ]


async def test_the_sender_of_a_child_is_the_child_not_its_parent() -> None:
    log: list[tuple[Any, ActorRef | None]] = []
    async with ActorSystem() as system:
        target = await system.spawn(lambda: Recorder(log), name="target")

        async def tell_target(ctx: Context) -> ActorRef:
            await target.tell("from kid")
            return ctx.self

        async def spawn_and_use_child(ctx: Context) -> ActorRef:
            kid = await ctx.spawn(Probe, name="kid")
            return await kid.ask(tell_target)

        parent = await system.spawn(Probe, name="parent")
        kid = await parent.ask(spawn_and_use_child)
        await target.ask("sync")
    assert kid.path == "/user/parent/kid"
    assert log == [("from kid", kid), ("sync", None)]


# -- refs and contexts -------------------------------------------------------------------


async def test_refs_of_the_same_actor_are_equal_and_hash_alike() -> None:
    async def me(ctx: Context) -> ActorRef:
        return ctx.self

    async with ActorSystem() as system:
        a = await system.spawn(Probe, name="a")
        b = await system.spawn(Probe, name="b")
        same = system.lookup("/user/a")
        assert same is not None
        from_inside = await a.ask(me)
        assert a == same == from_inside
        assert hash(a) == hash(same) == hash(from_inside)
        assert a != b
        assert len({a, same, from_inside, b}) == 2
        assert {a: 1}[from_inside] == 1
        assert a != "/user/a"
        assert sorted([b, a]) == [a, b]


async def test_a_new_actor_at_the_same_path_is_a_different_ref() -> None:
    async with ActorSystem() as system:
        old = await system.spawn(Echo, name="a")
        await old.stop()
        new = await system.spawn(Echo, name="a")
        assert old.path == new.path
        assert old != new
        assert old.uid != new.uid
        assert len({old, new}) == 2
        assert not old.is_alive
        assert new.is_alive


def test_refs_and_contexts_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError):
        ActorRef()
    with pytest.raises(TypeError):
        Context()


# -- statistics --------------------------------------------------------------------------


async def test_statistics_count_enqueued_processed_length_and_busy() -> None:
    gate = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Gated(gate), mailbox=Bounded(5))
        stats = ref.statistics()
        assert (stats.length, stats.capacity, stats.enqueued, stats.processed) == (0, 5, 0, 0)
        assert (stats.dropped, stats.busy) == (0, False)

        for message in ["wait", "a", "b"]:
            await ref.tell(message)
        await trio.testing.wait_all_tasks_blocked()
        stats = ref.statistics()
        assert (stats.length, stats.enqueued, stats.processed, stats.busy) == (2, 3, 0, True)

        gate.set()
        assert await ref.ask("c") == "c"
        stats = ref.statistics()
        assert (stats.length, stats.enqueued, stats.processed, stats.busy) == (0, 4, 4, False)
        assert stats.dropped == 0


async def test_statistics_of_an_unbounded_mailbox_and_of_drops() -> None:
    gate = trio.Event()
    async with ActorSystem() as system:
        unbounded = await system.spawn(Echo)
        assert unbounded.statistics().capacity == math.inf

        dropping = await system.spawn(
            lambda: Gated(gate), mailbox=Bounded(2, overflow=Overflow.DROP_NEWEST)
        )
        await dropping.tell("wait")
        await trio.testing.wait_all_tasks_blocked()
        for message in [1, 2, 3, 4]:
            await dropping.tell(message)
        stats = dropping.statistics()
        assert (stats.length, stats.capacity, stats.enqueued, stats.dropped) == (2, 2, 3, 2)
        assert stats.busy
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await dropping.ask("after") == "after"
        stats = dropping.statistics()
        assert (stats.length, stats.enqueued, stats.processed, stats.dropped) == (0, 4, 4, 2)


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mailbox", ["unbounded", 10, Overflow.BLOCK, object()])
async def test_spawn_refuses_a_mailbox_that_is_not_a_mailbox_spec(mailbox: Any) -> None:
    async with ActorSystem() as system:
        with pytest.raises(TypeError):
            await system.spawn(Echo, name="e", mailbox=mailbox)
        assert system.children == []


@pytest.mark.parametrize("supervisor", ["restart", object()])
async def test_spawn_refuses_a_supervisor_that_is_not_a_strategy(supervisor: Any) -> None:
    async with ActorSystem() as system:
        with pytest.raises(TypeError):
            await system.spawn(Echo, name="e", supervisor=supervisor)
        assert system.children == []


async def test_running_is_true_only_inside_the_block() -> None:
    system = ActorSystem("r")
    assert not system.running
    async with system:
        assert system.running
    assert not system.running


@pytest.mark.parametrize(
    "options",
    [
        {"name": ""},
        {"shutdown_timeout": -1},
        {"ask_timeout": 0},
        {"ask_timeout": -1},
        {"shutdown_timeout": math.nan},
        {"ask_timeout": math.nan},
    ],
)
def test_system_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"name|timeout"):
        ActorSystem(**options)


async def test_a_name_is_taken_while_its_actor_is_still_starting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(system.spawn, lambda: SlowStart(log), name="s"))
            await trio.testing.wait_all_tasks_blocked()
            assert log == []
            with pytest.raises(ActorNameTaken):
                await system.spawn(Echo, name="s")
        assert log == ["started /user/s"]


@pytest.mark.parametrize("name", [".", ".."])
async def test_dot_names_are_refused(name: str) -> None:
    async with ActorSystem("dots") as system:
        with pytest.raises(InvalidActorName, match="ambiguous"):
            await system.spawn(Echo, name=name)
