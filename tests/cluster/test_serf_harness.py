"""The Serf interop harness (``tinyagents.testing._serf``) proved with Serf alone.

Real ``serf agent`` processes on 127.0.0.1: join, tags, graceful leave, failure detection
after SIGKILL, and encryption. Skipped when ``serf`` is not installed
(``apt-get install -y serf``), unless ``TINYAGENTS_REQUIRE_SERF=1``: then a missing
``serf`` FAILS these tests (CI sets it).

Waits poll the agents with a bound (their own real timers drive them); no test asserts
how long anything took.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil

import pytest

from tinyagents.testing._serf import (
    SerfAgent,
    SerfError,
    SerfMember,
    SerfNotInstalled,
    SerfProtocol,
    parse_members,
    serf_binary,
)

REQUIRE_SERF = os.environ.get("TINYAGENTS_REQUIRE_SERF") == "1"

needs_serf = pytest.mark.skipif(
    shutil.which("serf") is None and not REQUIRE_SERF,
    reason="HashiCorp Serf is not installed (apt-get install -y serf); "
    "set TINYAGENTS_REQUIRE_SERF=1 to fail instead of skipping",
)

WAIT = 30.0  # generous bound on every poll: failure detection alone takes several seconds


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def by_name(members: list[SerfMember]) -> dict[str, SerfMember]:
    return {member.name: member for member in members}


# -- without serf -----------------------------------------------------------------


def test_a_missing_serf_names_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SerfNotInstalled, match=r"apt-get install -y serf"):
        serf_binary()
    with pytest.raises(SerfNotInstalled), SerfAgent("nowhere"):
        pass


def test_members_json_is_parsed_into_records() -> None:
    text = """{"members": [
        {"name": "a", "addr": "127.0.0.1:7946", "port": 7946, "tags": {"role": "x"},
         "status": "alive", "protocol": {"max": 5, "min": 2, "version": 5}},
        {"name": "b", "addr": "[::1]:7947", "port": 7947, "tags": {},
         "status": "failed", "protocol": {"max": 5, "min": 2, "version": 4}},
        {"name": "c", "addr": "10.0.0.3", "port": 7948, "tags": {},
         "status": "left", "protocol": {"max": 5, "min": 2, "version": 5}}
    ]}"""
    assert parse_members(text) == [
        SerfMember("a", "127.0.0.1", 7946, {"role": "x"}, "alive", SerfProtocol(2, 5, 5)),
        SerfMember("b", "::1", 7947, {}, "failed", SerfProtocol(2, 5, 4)),
        SerfMember("c", "10.0.0.3", 7948, {}, "left", SerfProtocol(2, 5, 5)),
    ]
    with pytest.raises(SerfError, match="unexpected"):
        parse_members("Error connecting to Serf agent")


# -- with serf --------------------------------------------------------------------


@needs_serf
async def test_two_agents_join_and_list_each_other_alive_with_tags() -> None:
    async with (
        SerfAgent("alpha", tags={"role": "first", "zone": "z1"}) as alpha,
        SerfAgent("beta", tags={"role": "second"}, join=[alpha]) as beta,
    ):
        assert alpha.address.startswith("127.0.0.1:")
        await alpha.await_status("beta", "alive", timeout=WAIT)
        await beta.await_status("alpha", "alive", timeout=WAIT)
        for agent in (alpha, beta):
            seen = by_name(await agent.amembers())
            assert set(seen) == {"alpha", "beta"}
            assert seen["alpha"].tags == {"role": "first", "zone": "z1"}
            assert seen["beta"].tags == {"role": "second"}
            assert (seen["alpha"].addr, seen["alpha"].port) == ("127.0.0.1", alpha.bind_port)
            assert (seen["beta"].addr, seen["beta"].port) == ("127.0.0.1", beta.bind_port)
            for member in seen.values():
                assert member.status == "alive"
                assert member.protocol.min <= member.protocol.version <= member.protocol.max


@needs_serf
def test_graceful_leave_is_seen_as_left() -> None:
    """The blocking API: ``with``, ``join()``, ``leave()``, ``wait_status()``."""
    with SerfAgent("stays", tags={"k": "v"}) as stays, SerfAgent("goes") as goes:
        goes.join(stays)
        stays.wait_status("goes", "alive", timeout=WAIT)
        goes.leave()
        left = stays.wait_status("goes", "left", timeout=WAIT)
        assert (left.addr, left.port) == ("127.0.0.1", goes.bind_port)
        assert by_name(stays.members())["stays"].status == "alive"


@needs_serf
async def test_a_sigkilled_agent_is_seen_as_failed() -> None:
    async with SerfAgent("survivor") as survivor, SerfAgent("victim", join=[survivor]) as victim:
        await survivor.await_status("victim", "alive", timeout=WAIT)
        victim.kill()
        failed = await survivor.await_status("victim", "failed", timeout=WAIT)
        assert failed.port == victim.bind_port
        assert by_name(await survivor.amembers())["survivor"].status == "alive"


@needs_serf
async def test_encrypted_agents_with_the_same_key_see_each_other() -> None:
    key = new_key()
    async with (
        SerfAgent("secret-a", encrypt_key=key) as a,
        SerfAgent("secret-b", encrypt_key=key, tags={"enc": "yes"}) as b,
    ):
        await b.ajoin(a)
        member = await a.await_status("secret-b", "alive", timeout=WAIT)
        assert member.tags == {"enc": "yes"}
        await b.await_status("secret-a", "alive", timeout=WAIT)


@needs_serf
async def test_agents_with_different_keys_do_not_join() -> None:
    async with (
        SerfAgent("key-one", encrypt_key=new_key()) as one,
        SerfAgent("key-two", encrypt_key=new_key()) as two,
        SerfAgent("plain") as plain,
    ):
        with pytest.raises(SerfError, match="join"):
            await two.ajoin(one)
        with pytest.raises(SerfError, match="join"):
            await plain.ajoin(one)
        for agent in (one, two, plain):
            assert [m.name for m in await agent.amembers()] == [agent.name]


@needs_serf
async def test_an_agent_whose_startup_join_fails_raises_with_its_log() -> None:
    async with SerfAgent("lonely", encrypt_key=new_key()) as lonely:
        with pytest.raises(SerfError, match=r"exited with status 1(.|\n)*Failed to join"):
            async with SerfAgent("outsider", join=[lonely]):
                pass  # pragma: no cover
