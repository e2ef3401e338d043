"""The local name registry."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

import tinyagents as ta
from tinyagents.errors import ActorStopped, NameRegistered


class Idle(ta.Actor):
    async def receive(self, ctx: ta.Context, message: Any) -> None:
        pass


async def test_register_lookup_list_and_unregister() -> None:
    async with ta.ActorSystem("reg") as system:
        a = await system.spawn(Idle, name="a")
        b = await system.spawn(Idle, name="b")
        registry = system.registry
        registry.register("billing", a)
        registry.register("audit", a)
        registry.register("billing", a)  # the same pair again: nothing changes
        registry.register("search", b)
        assert registry.lookup("billing") == a
        assert registry.lookup("nobody") is None
        assert registry.items() == [("audit", a), ("billing", a), ("search", b)]
        assert list(registry) == ["audit", "billing", "search"]
        assert registry.names_of(a) == ["audit", "billing"]
        assert "search" in registry
        assert len(registry) == 3
        assert registry.unregister("audit") == a
        assert registry.unregister("audit") is None
        assert registry.names_of(a) == ["billing"]


async def test_a_taken_name_is_an_error() -> None:
    async with ta.ActorSystem("taken") as system:
        a = await system.spawn(Idle, name="a")
        b = await system.spawn(Idle, name="b")
        system.registry.register("svc", a)
        with pytest.raises(NameRegistered, match="/user/a") as info:
            system.registry.register("svc", b)
        assert info.value.name == "svc"
        assert system.registry.lookup("svc") == a
        with pytest.raises(ValueError, match="non-empty"):
            system.registry.register("", b)


async def test_names_are_forgotten_when_the_actor_stops() -> None:
    async with ta.ActorSystem("forget") as system:
        a = await system.spawn(Idle, name="a")
        system.registry.register("svc", a)
        system.registry.register("other", a)
        await a.stop()
        assert system.registry.lookup("svc") is None
        assert len(system.registry) == 0
        with pytest.raises(ActorStopped, match="cannot register"):
            system.registry.register("svc", a)
        fresh = await system.spawn(Idle, name="a")
        system.registry.register("svc", fresh)  # the name is free again
        assert system.registry.lookup("svc") == fresh


async def test_names_of_failed_children_are_forgotten() -> None:
    class Boom(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> None:
            raise RuntimeError("boom")

    async with ta.ActorSystem("failed") as system:
        ref = await system.spawn(Boom, supervisor=ta.Stop())
        system.registry.register("boom", ref)
        ref.tell_nowait("x")
        await trio.testing.wait_all_tasks_blocked()
        assert not ref.is_alive
        assert system.registry.lookup("boom") is None
