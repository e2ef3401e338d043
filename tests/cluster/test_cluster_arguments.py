"""The cluster services take addresses as ``"host:port"`` or ``(host, port)``, refuse
anything else (and every other wrong argument) at once with a message naming what was
expected, and let the error of their ``async with`` block out as itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from tinyagents import ActorSystem
from tinyagents.cluster import (
    GossipCluster,
    GossipConfig,
    JoinFailed,
    LocalCluster,
    MemberState,
    MetaTooLarge,
)
from tinyagents.errors import InvalidAddress

FAST = GossipConfig.scaled(0.1, tcp_timeout=10.0)
SYSTEM = ActorSystem("args")

BAD_ADDRESSES: list[tuple[object, str]] = [
    ("127.0.0.1", "no port"),
    ("127.0.0.1:http", "is not a number"),
    ("127.0.0.1:70000", r"in 0\.\.65535"),
    ("::1:7946", "needs brackets"),
    (("127.0.0.1",), "expected 'host:port'"),
    (("127.0.0.1", "7946"), "the port must be an int"),
    (7946, "expected 'host:port'"),
    (None, "expected 'host:port'"),
]


@pytest.mark.parametrize(("bind", "problem"), BAD_ADDRESSES)
def test_a_bad_bind_is_refused_naming_the_form(bind: object, problem: str) -> None:
    with pytest.raises(InvalidAddress, match=problem) as caught:
        GossipCluster(SYSTEM, bind=bind)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert "bind" in str(caught.value)


@pytest.mark.parametrize(("address", "problem"), BAD_ADDRESSES)
def test_a_bad_local_address_is_refused(address: object, problem: str) -> None:
    with pytest.raises(InvalidAddress, match=problem):
        LocalCluster(SYSTEM, address=address)  # type: ignore[arg-type]


CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: GossipCluster("system"), TypeError, "runs on an ActorSystem"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, id=""), TypeError, "id must be a non-empty str"),
    (lambda: GossipCluster(SYSTEM, id=3), TypeError, "id must be a non-empty str"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, meta=b"x", tags={}), TypeError, "meta or tags, not both"),
    (lambda: GossipCluster(SYSTEM, meta="role"), TypeError, "meta must be bytes"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, meta=b"x" * 513), MetaTooLarge, "512"),
    (lambda: GossipCluster(SYSTEM, tags=["role=x"]), TypeError, "tags must be a mapping"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, tags={"role": 1}), TypeError, "strings to strings"),  # type: ignore[dict-item]
    (lambda: GossipCluster(SYSTEM, config={}), TypeError, "config must be a GossipConfig"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, keyring=b"k" * 16), TypeError, "keyring must be a Keyring"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, label=None), TypeError, "label must be a str"),  # type: ignore[arg-type]
    (lambda: GossipCluster(SYSTEM, label="x" * 256), ValueError, "at most 255 bytes"),
    (lambda: GossipCluster(SYSTEM, versions=(1, 5)), TypeError, "versions must be a Protocol"),  # type: ignore[arg-type]
    (lambda: LocalCluster(None), TypeError, "runs on an ActorSystem"),  # type: ignore[arg-type]
    (lambda: LocalCluster(SYSTEM, tags={"a": "b"}, meta=b""), TypeError, "not both"),
]


@pytest.mark.parametrize(("make", "error", "problem"), CASES)
def test_wrong_arguments_are_refused_at_construction(
    make: Callable[[], Any], error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        make()


async def test_bind_and_seeds_may_be_host_port_strings() -> None:
    async with (
        ActorSystem("a") as a,
        ActorSystem("b") as b,
        GossipCluster(a, bind="127.0.0.1:0", config=FAST) as first,
        GossipCluster(b, bind="127.0.0.1:0", config=FAST) as second,
    ):
        assert first.address[0] == "127.0.0.1"
        assert first.address[1] > 0
        host, port = first.address
        assert await second.join(f"{host}:{port}") == 1
        with trio.fail_after(30):
            while {m.id for m in first.members()} != {"a", "b"}:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert second.table.nodes["a"].member.state is MemberState.ALIVE


async def test_a_bad_seed_is_refused_before_any_traffic() -> None:
    async with (
        ActorSystem("a") as a,
        ActorSystem("b") as b,
        GossipCluster(a, config=FAST) as cluster,
        GossipCluster(b, config=FAST) as seed,
    ):
        host, port = seed.address
        with pytest.raises(InvalidAddress, match="seed") as caught:
            await cluster.join(f"{host}:{port}", "127.0.0.1")
        assert "no port" in str(caught.value)
        assert seed.stats.streams_received == 0  # the good seed was not contacted either
        assert [m.id for m in cluster.members()] == ["a"]
        # a seed nobody answers on is a JoinFailed naming it in the host:port form
        with pytest.raises(JoinFailed, match=r"127\.0\.0\.1:9"):
            await cluster.join(("127.0.0.1", 9))


async def test_a_local_cluster_checks_seeds_before_refusing_to_join() -> None:
    async with ActorSystem("a") as a, LocalCluster(a, address="127.0.0.1:7946") as cluster:
        assert cluster.local_member.address == ("127.0.0.1", 7946)
        with pytest.raises(InvalidAddress):
            await cluster.join("nowhere")
        with pytest.raises(JoinFailed, match=r"127\.0\.0\.1:7947"):
            await cluster.join("127.0.0.1:7947")


async def test_a_gossip_cluster_lets_the_block_error_out_as_itself() -> None:
    async with ActorSystem("a") as a:
        with pytest.raises(ValueError, match="from the block") as caught:
            async with GossipCluster(a, config=FAST):
                raise ValueError("from the block")
        assert type(caught.value) is ValueError


async def test_keyboard_interrupt_through_a_gossip_cluster_stays_itself() -> None:
    with pytest.raises(KeyboardInterrupt):
        async with ActorSystem("a") as a, GossipCluster(a, config=FAST):
            raise KeyboardInterrupt


async def test_a_local_cluster_lets_the_block_error_out_as_itself() -> None:
    with pytest.raises(ValueError, match="from the block") as caught:
        async with ActorSystem("a") as a, LocalCluster(a):
            raise ValueError("from the block")
    assert type(caught.value) is ValueError
    with pytest.raises(KeyboardInterrupt):
        async with ActorSystem("b") as b, LocalCluster(b):
            raise KeyboardInterrupt
