"""system.metrics(): the runtime's counters, gauges and histograms, their JSON and
Prometheus renderings, and the collectors of the services running on a system."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import trio
import trio.testing

import tinyagents as ta
from tinyagents.cluster import GossipCluster, GossipConfig, MemberFailed
from tinyagents.crdt import Replicator
from tinyagents.errors import ActorFailed
from tinyagents.metrics import METRICS, HistogramSample, MetricsSnapshot, Sample, record_llm_call
from tinyagents.transport import Transport


@pytest.fixture(autouse=True)
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Echo(ta.Actor):
    async def receive(self, ctx: ta.Context, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        if message == "slow":
            await trio.sleep(0.25)
        if message == "llm":
            record_llm_call(
                provider="openai", model="gpt-x", seconds=1.5, input_tokens=7, output_tokens=3
            )
            record_llm_call(provider="openai", model="gpt-x", seconds=0.5, error_type="RateLimited")
        return message


async def test_actors_messages_dead_letters_restarts_and_ask_latency() -> None:
    async with ta.ActorSystem("m") as system:
        empty = system.metrics()
        assert empty.value("tinyagents_actors") == 0
        assert empty.value("tinyagents_messages_processed_total") == 0
        echo = await system.spawn(Echo, name="echo")
        parent = await system.spawn(Echo, name="other")
        for _ in range(3):
            assert await echo.ask("hi") == "hi"
        assert await echo.ask("slow") == "slow"
        with pytest.raises(ActorFailed):
            await echo.ask("boom")  # restarted by the default supervisor
        assert await echo.ask("after") == "after"  # handled by the new instance
        await parent.stop()
        parent.tell_nowait("to a stopped actor")  # a dead letter
        snapshot = system.metrics()
        assert snapshot.value("tinyagents_actors") == 1
        assert snapshot.value("tinyagents_messages_processed_total") == 6
        assert snapshot.value("tinyagents_restarts_total") == 1
        assert snapshot.value("tinyagents_dead_letters_total", reason="recipient_stopped") == 1
        assert snapshot.value("tinyagents_mailbox_depth") == 0
        asks = snapshot.histogram("tinyagents_ask_duration_seconds")
        assert asks is not None
        assert asks.count == 6
        # the mock clock: "slow" took 0.25 s, "after" waited for the restart's backoff
        assert asks.sum >= 0.25
        assert asks.buckets[-1] == (math.inf, 6)
        assert dict(asks.buckets)[0.1] >= 4  # the others took (almost) no time
        counts = [count for _, count in asks.buckets]
        assert counts == sorted(counts)  # cumulative
        await echo.stop()
        # a stopped actor's counts stay in the totals
        assert system.metrics().value("tinyagents_messages_processed_total") == 6


async def test_llm_calls_are_counted_for_the_system_of_the_calling_actor() -> None:
    record_llm_call(provider="openai", model="gpt-x", seconds=1)  # outside any actor: nothing
    async with ta.ActorSystem("a") as a, ta.ActorSystem("b") as b:
        echo = await a.spawn(Echo)
        await echo.ask("llm")
        snapshot = a.metrics()
        assert snapshot.value("tinyagents_llm_calls_total", provider="openai", model="gpt-x") == 2
        assert snapshot.value("tinyagents_llm_errors_total", error="RateLimited") == 1
        assert snapshot.value("tinyagents_llm_tokens_total", type="input") == 7
        assert snapshot.value("tinyagents_llm_tokens_total", type="output") == 3
        latency = snapshot.histogram("tinyagents_llm_duration_seconds", provider="openai")
        assert latency is not None
        assert (latency.count, latency.sum) == (2, 2.0)
        assert b.metrics().value("tinyagents_llm_calls_total") == 0


async def test_services_add_their_counters_while_they_run() -> None:
    async with ta.ActorSystem("a") as system:
        async with (
            Transport(system),
            GossipCluster(system, config=GossipConfig.scaled(0.1)) as cluster,
            Replicator(system, cluster),
        ):
            await trio.sleep(1)
            snapshot = system.metrics()
            names = {sample.name for sample in snapshot.samples}
            assert {
                "tinyagents_transport_frames_total",
                "tinyagents_transport_bytes_total",
                "tinyagents_gossip_probes_total",
                "tinyagents_gossip_members",
                "tinyagents_replicator_messages_total",
            } <= names
            assert snapshot.value("tinyagents_gossip_members") == 1
        names = {sample.name for sample in system.metrics().samples}
        assert not any(
            name.startswith(("tinyagents_transport", "tinyagents_gossip")) for name in names
        )


def test_prometheus_text_and_json() -> None:
    snapshot = MetricsSnapshot(
        (
            Sample("tinyagents_dead_letters_total", "counter", {"reason": 'a "b"\n'}, 2),
            Sample("tinyagents_actors", "gauge", {}, 3),
            HistogramSample(
                "tinyagents_ask_duration_seconds", {}, ((0.5, 1), (math.inf, 2)), 1.75, 2
            ),
        )
    )
    text = snapshot.to_prometheus()
    assert text.splitlines() == [
        "# HELP tinyagents_dead_letters_total Dead letters, by reason.",
        "# TYPE tinyagents_dead_letters_total counter",
        'tinyagents_dead_letters_total{reason="a \\"b\\"\\n"} 2',
        "# HELP tinyagents_actors Live actors.",
        "# TYPE tinyagents_actors gauge",
        "tinyagents_actors 3",
        "# HELP tinyagents_ask_duration_seconds Time from an ask to its answer.",
        "# TYPE tinyagents_ask_duration_seconds histogram",
        'tinyagents_ask_duration_seconds_bucket{le="0.5"} 1',
        'tinyagents_ask_duration_seconds_bucket{le="+Inf"} 2',
        "tinyagents_ask_duration_seconds_sum 1.75",
        "tinyagents_ask_duration_seconds_count 2",
    ]
    assert text.endswith("\n")
    assert snapshot.to_json()[2] == {
        "name": "tinyagents_ask_duration_seconds",
        "kind": "histogram",
        "labels": {},
        "buckets": [[0.5, 1], ["+Inf", 2]],
        "sum": 1.75,
        "count": 2,
    }
    assert MetricsSnapshot(()).to_prometheus() == ""


def test_every_metric_name_is_a_valid_prometheus_name_and_described() -> None:
    for name, (kind, help_text) in METRICS.items():
        assert re.fullmatch(r"tinyagents_[a-z_]+", name)
        assert kind in ("counter", "gauge", "histogram")
        assert name.endswith("_total") == (kind == "counter"), name
        assert help_text.endswith(".")


async def test_a_broken_collector_does_not_hide_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    async with ta.ActorSystem("a") as system:

        def broken() -> list[Sample]:
            raise RuntimeError("broken")

        system._metrics.add_collector(broken)
        assert system.metrics().value("tinyagents_actors") == 0
        assert "a collector failed" in caplog.text


async def test_mailbox_depth_counts_the_messages_queued_now() -> None:
    holding = trio.Event()
    release = trio.Event()

    class Blocker(ta.Actor):
        async def receive(self, ctx: ta.Context, message: Any) -> Any:
            if message == "hold":
                holding.set()
                await release.wait()
            return message

    async with ta.ActorSystem("a") as system:
        blocker = await system.spawn(Blocker)
        other = await system.spawn(Blocker)
        blocker.tell_nowait("hold")
        await holding.wait()  # handling "hold": the mailbox is empty again
        assert system.metrics().value("tinyagents_mailbox_depth") == 0
        for i in range(3):
            blocker.tell_nowait(i)
        assert system.metrics().value("tinyagents_mailbox_depth") == 3
        assert await other.ask("a free actor") == "a free actor"
        assert system.metrics().value("tinyagents_mailbox_depth") == 3
        release.set()
        assert await blocker.ask("after") == "after"
        assert system.metrics().value("tinyagents_mailbox_depth") == 0


async def test_a_member_stopped_without_leaving_is_counted_as_a_suspicion() -> None:
    config = GossipConfig.scaled(0.1)
    async with (
        ta.ActorSystem("a") as system_a,
        GossipCluster(system_a, config=config) as a,
        ta.ActorSystem("b") as system_b,
        system_a.events.subscribe(MemberFailed) as failures,
    ):
        with trio.CancelScope() as stop_b:
            async with GossipCluster(system_b, config=config) as b:
                assert await b.join(a.address) == 1
                while len(a.members()) < 2:  # noqa: ASYNC110 - changed by a's gossip tasks
                    await trio.sleep(0.1)
                await trio.sleep(2)  # twenty probe intervals: every probe answered
                assert system_a.metrics().value("tinyagents_gossip_probes_total") > 0
                assert system_a.metrics().value("tinyagents_gossip_suspicions_total") == 0
                stop_b.cancel()  # b stops without leaving, as a crash would
        failed = await failures.receive()  # suspected first, then failed
        assert failed.member.id == "b"
        assert system_a.metrics().value("tinyagents_gossip_suspicions_total") >= 1
        assert system_a.metrics().value("tinyagents_gossip_members") == 1
