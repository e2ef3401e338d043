"""When a node probes and when it suspects, on the mock clock: memberlist's probe ticker
(one probe per tick, overrun ticks skipped), the UDP ack timeout not scaled by awareness,
and a probe whose TCP fallback is refused suspecting at once instead of waiting out the
probe interval. The member probed is a table entry; its packets and TCP pings are
replaced by recorders, so every instant is exact."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from tinyagents import ActorSystem
from tinyagents.cluster import Member, MemberSuspect, ProtocolVersions
from tinyagents.cluster._gossip import GossipCluster, GossipConfig, _TcpPing
from tinyagents.cluster._wire import Alive, IndirectPing, Ping, ip_to_bytes

CONFIG = GossipConfig()  # probe 1 s, ack timeout 0.5 s: memberlist's LAN timings
VSN = ProtocolVersions().to_vsn()


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _add_peer(cluster: GossipCluster, name: str, port: int) -> Member:
    cluster.table.alive(
        Alive(1, name, ip_to_bytes("127.0.0.1"), port, b"", VSN), trio.current_time()
    )
    return cluster.table.nodes[name].member


@asynccontextmanager
async def _prober(
    monkeypatch: pytest.MonkeyPatch,
    tcp: Callable[[], Awaitable[_TcpPing]],
    *,
    probe_loop: bool = False,
) -> AsyncIterator[tuple[GossipCluster, list[tuple[float, Any]]]]:
    """A node with peers b and c whose sends are recorded as ``(time, message)`` and
    whose TCP pings answer ``tcp()``; its own probe loop idles unless ``probe_loop``."""
    if not probe_loop:

        async def idle(self: GossipCluster) -> None:
            await trio.sleep_forever()

        monkeypatch.setattr(GossipCluster, "_probe_loop", idle)
    sent: list[tuple[float, Any]] = []

    async def send(addr: tuple[str, int], messages: list[Any]) -> None:
        await trio.lowlevel.checkpoint()
        sent.extend((trio.current_time(), m) for m in messages)

    async def tcp_ping(member: Member, ping: Ping) -> _TcpPing:
        return await tcp()

    async with ActorSystem("a") as system, GossipCluster(system, config=CONFIG) as cluster:
        monkeypatch.setattr(cluster, "_send", send)
        monkeypatch.setattr(cluster, "_tcp_ping", tcp_ping)
        _add_peer(cluster, "b", 1)
        _add_peer(cluster, "c", 2)
        yield cluster, sent


async def _suspected_at(cluster: GossipCluster, name: str) -> float | None:
    """Probe ``name`` once; when it was suspected, or None."""
    async with cluster._system.events.subscribe(MemberSuspect) as events:
        await cluster._probe(cluster.table.nodes[name].member)
        try:
            event = events.receive_nowait()
        except trio.WouldBlock:
            return None
        assert event.member.id == name
        return cluster.table.nodes[name].state_change


def _after(delay: float, outcome: _TcpPing) -> Callable[[], Awaitable[_TcpPing]]:
    async def answer() -> _TcpPing:
        await trio.sleep(delay)
        return outcome

    return answer


async def test_a_refused_tcp_fallback_suspects_at_once(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _prober(monkeypatch, _after(0.01, _TcpPing.REFUSED)) as (cluster, sent):
        start = trio.current_time()
        at = await _suspected_at(cluster, "b")
        # the UDP ack timeout, then the refusal: not the end of the 1 s probe interval
        assert at == pytest.approx(start + CONFIG.probe_timeout + 0.01)
        assert trio.current_time() == pytest.approx(at)
        assert cluster.stats.probes_failed == cluster.stats.probes_refused == 1
        assert cluster.table.awareness.score == 0  # a refusal is no sign of our own ill health
        assert [type(m) for _, m in sent] == [Ping, IndirectPing]  # c was asked to help


async def test_a_tcp_fallback_that_fails_otherwise_waits_out_the_interval(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _prober(monkeypatch, _after(0.01, _TcpPing.FAILED)) as (cluster, _):
        start = trio.current_time()
        at = await _suspected_at(cluster, "b")
        assert at == pytest.approx(start + CONFIG.probe_interval)
        assert cluster.stats.probes_failed == 1
        assert cluster.stats.probes_refused == 0
        assert cluster.table.awareness.score == 1  # c was expected to nack, and did not


async def test_a_tcp_ack_means_alive(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _prober(monkeypatch, _after(0.01, _TcpPing.ACKED)) as (cluster, _):
        start = trio.current_time()
        assert await _suspected_at(cluster, "b") is None
        assert trio.current_time() == pytest.approx(start + CONFIG.probe_timeout + 0.01)
        assert cluster.stats.probes_failed == 0


async def test_awareness_lengthens_the_interval_but_not_the_ack_timeout(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _prober(monkeypatch, _after(0.01, _TcpPing.FAILED)) as (cluster, sent):
        cluster.table.awareness.score = 2
        start = trio.current_time()
        at = await _suspected_at(cluster, "b")
        indirect = [when for when, m in sent if isinstance(m, IndirectPing)]
        assert indirect == [pytest.approx(start + CONFIG.probe_timeout)]
        assert at == pytest.approx(start + 3 * CONFIG.probe_interval)


async def test_probes_follow_a_ticker_and_skip_overrun_ticks(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    durations = iter([0.0, 0.2, 1.5, 0.0, 2.3, 0.0, 0.0])
    starts: list[float] = []
    done = trio.Event()

    async def probe(self: GossipCluster, target: Member) -> None:
        starts.append(trio.current_time())
        try:
            await trio.sleep(next(durations))
        except StopIteration:
            done.set()
            await trio.sleep_forever()

    monkeypatch.setattr(GossipCluster, "_probe", probe)
    async with _prober(monkeypatch, _after(0, _TcpPing.FAILED), probe_loop=True) as (_, _):
        entered = trio.current_time()
        await done.wait()
    first = starts[0]
    assert entered <= first < entered + CONFIG.probe_interval  # a random stagger
    offsets = [round(t - first, 6) for t in starts]
    # on the ticks 0, 1, 2; the probe at 2 runs to 3.5: the tick at 3 fires at 3.5,
    # the one at 4 on time; the probe at 4 runs to 6.3: ticks 5 and 6 were one tick,
    # fired at 6.3, then 7 on time
    assert offsets == [0.0, 1.0, 2.0, 3.5, 4.0, 6.3, 7.0, 8.0]


async def test_a_real_closed_port_is_refused_and_a_silent_one_is_not() -> None:
    async with ActorSystem("a") as system, GossipCluster(system, config=CONFIG) as cluster:
        with socket.socket() as probe_socket:
            probe_socket.bind(("127.0.0.1", 0))
            closed_port = probe_socket.getsockname()[1]
        closed = _add_peer(cluster, "gone", closed_port)
        ping = Ping(1, "gone", ip_to_bytes("127.0.0.1"), 1, "a")
        assert await cluster._tcp_ping(closed, ping) is _TcpPing.REFUSED

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def hang_up(stream: trio.SocketStream) -> None:
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, hang_up, listeners)
            rude = _add_peer(cluster, "rude", port)
            assert await cluster._tcp_ping(rude, ping) is _TcpPing.FAILED
            nursery.cancel_scope.cancel()
