"""GossipCluster nodes and real HashiCorp Serf agents in one cluster, on 127.0.0.1.

Our nodes run with :class:`GossipConfig` defaults (memberlist's LAN timings, which Serf
uses too). Skipped when ``serf`` is not installed, unless ``TINYAGENTS_REQUIRE_SERF=1``:
then a missing ``serf`` FAILS these tests.

Every wait is bounded (``trio.fail_after`` or the harness's own bound); no test asserts
how long anything took.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import msgpack  # type: ignore[import-untyped]
import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.cluster import (
    GossipCluster,
    JoinFailed,
    Keyring,
    Member,
    MemberFailed,
    MemberLeft,
    MemberState,
)
from tinyagents.cluster._gossip import serf_leave_intent
from tinyagents.cluster._wire import User, decode_message, encode_message
from tinyagents.testing._serf import SerfAgent, SerfError, SerfMember

REQUIRE_SERF = os.environ.get("TINYAGENTS_REQUIRE_SERF") == "1"

needs_serf = pytest.mark.skipif(
    shutil.which("serf") is None and not REQUIRE_SERF,
    reason="HashiCorp Serf is not installed (apt-get install -y serf); "
    "set TINYAGENTS_REQUIRE_SERF=1 to fail instead of skipping",
)

WAIT = 30.0  # generous bound on every poll: failure detection alone takes several seconds


def new_key() -> bytes:
    return secrets.token_bytes(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def by_name(members: list[SerfMember]) -> dict[str, SerfMember]:
    return {member.name: member for member in members}


def ours(cluster: GossipCluster) -> dict[str, Member]:
    return {member.id: member for member in cluster.members()}


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polls state that other nodes change
            await trio.sleep(0.05)


def sees(cluster: GossipCluster, name: str, state: MemberState) -> Callable[[], bool]:
    def check() -> bool:
        node = cluster.table.nodes.get(name)
        return node is not None and node.member.state is state

    return check


def test_our_leave_intent_is_serfs_leave_message() -> None:
    intent = serf_leave_intent("ours", ltime=7)
    assert intent.payload[0] == 0  # Serf's messageLeaveType
    body = msgpack.unpackb(intent.payload[1:], raw=True)
    assert body == {b"LTime": 7, b"Node": b"ours", b"Prune": False}
    assert decode_message(encode_message(intent)) == User(intent.payload)


@asynccontextmanager
async def node(
    system: ActorSystem,
    name: str,
    *,
    tags: Mapping[str, str] | None = None,
    keyring: Keyring | None = None,
) -> AsyncIterator[GossipCluster]:
    async with GossipCluster(system, id=name, tags=tags or {}, keyring=keyring) as cluster:
        yield cluster


@needs_serf
async def test_our_node_joins_a_serf_agent_and_each_lists_the_other_with_tags() -> None:
    async with (
        ActorSystem("app") as system,
        SerfAgent("serf-a", tags={"role": "serf", "zone": "z1"}) as serf,
        node(system, "ours-a", tags={"role": "ours", "dc": "here"}) as cluster,
    ):
        assert await cluster.join(serf.address) == 1
        seen = await serf.await_status("ours-a", "alive", timeout=WAIT)
        assert seen.tags == {"role": "ours", "dc": "here"}
        assert (seen.addr, seen.port) == cluster.address
        assert seen.protocol.min <= seen.protocol.version <= seen.protocol.max
        await until(lambda: "serf-a" in ours(cluster))
        theirs = ours(cluster)["serf-a"]
        assert theirs.state is MemberState.ALIVE
        assert dict(theirs.tags) == {"role": "serf", "zone": "z1"}
        assert theirs.address == ("127.0.0.1", serf.bind_port)
        assert by_name(await serf.amembers())["serf-a"].status == "alive"


@needs_serf
async def test_a_serf_agent_joins_our_node() -> None:
    async with (
        ActorSystem("app") as system,
        node(system, "ours-b", tags={"k": "v"}) as cluster,
        SerfAgent("serf-b", tags={"from": "serf"}) as serf,
    ):
        await serf.ajoin(cluster.address)
        seen = await serf.await_status("ours-b", "alive", timeout=WAIT)
        assert seen.tags == {"k": "v"}
        await until(sees(cluster, "serf-b", MemberState.ALIVE))
        assert dict(ours(cluster)["serf-b"].tags) == {"from": "serf"}


@needs_serf
async def test_serf_marks_our_killed_node_failed() -> None:
    async with ActorSystem("app") as system, SerfAgent("serf-c") as serf:
        with trio.CancelScope() as scope:
            async with node(system, "ours-c") as cluster:
                await cluster.join(serf.address)
                await serf.await_status("ours-c", "alive", timeout=WAIT)
                scope.cancel()  # stopped without a leave
        assert scope.cancelled_caught
        failed = await serf.await_status("ours-c", "failed", timeout=WAIT)
        assert failed.port == cluster.address[1]


@needs_serf
async def test_we_mark_a_sigkilled_serf_agent_failed() -> None:
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberFailed, MemberLeft) as gone,
        node(system, "ours-d") as cluster,
        SerfAgent("serf-d", join=[f"127.0.0.1:{cluster.address[1]}"]) as serf,
    ):
        await until(sees(cluster, "serf-d", MemberState.ALIVE))
        serf.kill()
        with trio.fail_after(WAIT):
            event = await gone.receive()
        assert isinstance(event, MemberFailed)
        assert event.member.id == "serf-d"
        assert event.member.state is MemberState.FAILED
        assert cluster.local_member.state is MemberState.ALIVE


@needs_serf
async def test_a_graceful_serf_leave_is_seen_as_left() -> None:
    async with (
        ActorSystem("app") as system,
        system.events.subscribe(MemberFailed, MemberLeft) as gone,
        node(system, "ours-e") as cluster,
        SerfAgent("serf-e") as serf,
    ):
        await cluster.join(serf.address)
        await serf.await_status("ours-e", "alive", timeout=WAIT)
        await until(sees(cluster, "serf-e", MemberState.ALIVE))
        await serf.aleave()
        with trio.fail_after(WAIT):
            event = await gone.receive()
        assert isinstance(event, MemberLeft)
        assert event.member.id == "serf-e"
        assert event.member.state is MemberState.LEFT


@needs_serf
async def test_serf_sees_our_graceful_leave_as_left() -> None:
    async with ActorSystem("app") as system, SerfAgent("serf-f") as serf:
        async with node(system, "ours-f") as cluster:
            await cluster.join(serf.address)
            await serf.await_status("ours-f", "alive", timeout=WAIT)
        assert cluster.local_member.state is MemberState.LEFT
        await serf.await_status("ours-f", "left", timeout=WAIT)


@needs_serf
async def test_encrypted_with_the_same_key_our_node_and_serf_see_each_other() -> None:
    key = new_key()
    async with (
        ActorSystem("app") as system,
        SerfAgent("serf-g", encrypt_key=b64(key), tags={"enc": "yes"}) as serf,
        node(system, "ours-g", keyring=Keyring([key]), tags={"enc": "too"}) as cluster,
    ):
        await cluster.join(serf.address)
        seen = await serf.await_status("ours-g", "alive", timeout=WAIT)
        assert seen.tags == {"enc": "too"}
        await until(sees(cluster, "serf-g", MemberState.ALIVE))
        assert dict(ours(cluster)["serf-g"].tags) == {"enc": "yes"}


@needs_serf
async def test_different_keys_keep_our_node_and_serf_apart() -> None:
    async with (
        ActorSystem("app") as system,
        SerfAgent("serf-h", encrypt_key=b64(new_key())) as serf,
        node(system, "ours-h", keyring=Keyring([new_key()])) as cluster,
        node(system, "plain-h") as plain,
    ):
        with pytest.raises(JoinFailed):
            await cluster.join(serf.address)
        with pytest.raises(JoinFailed):
            await plain.join(serf.address)
        with pytest.raises(SerfError, match="join"):
            await serf.ajoin(cluster.address)
        with pytest.raises(SerfError, match="join"):
            await serf.ajoin(plain.address)
        assert [m.name for m in await serf.amembers()] == ["serf-h"]
        assert list(ours(cluster)) == ["ours-h"]
        assert list(ours(plain)) == ["plain-h"]
