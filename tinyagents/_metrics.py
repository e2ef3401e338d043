"""The runtime's metrics: counters, gauges and histograms of one actor system.

A :class:`Metrics` registry belongs to each :class:`~tinyagents.ActorSystem`. Hot paths
record into it directly (a dict update, or a histogram's bisect); services that already
keep counters of their own (the transport, the gossip cluster, the replicator) add a
*collector*, a function read only when a snapshot is taken, so they cost nothing
meanwhile. :meth:`Metrics.snapshot` returns an immutable :class:`MetricsSnapshot`, which
renders as JSON (the admin endpoint's ``status``) or in Prometheus' text format.

LLM calls are recorded with :func:`record_llm_call` into the metrics of the actor system
whose actor makes the call (the actor of the current task); a call made outside any
actor is not recorded.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "DEFAULT_BUCKETS",
    "METRICS",
    "HistogramSample",
    "Metrics",
    "MetricsSnapshot",
    "Sample",
    "current_metrics",
    "record_llm_call",
]

logger = logging.getLogger("tinyagents.metrics")

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Histogram bounds in seconds, from 100 µs (a local ask) to a minute (an LLM call)."""

METRICS: Mapping[str, tuple[Kind, str]] = {
    "tinyagents_actors": ("gauge", "Live actors."),
    "tinyagents_mailbox_depth": ("gauge", "User messages queued in all mailboxes."),
    "tinyagents_messages_processed_total": ("counter", "Messages handled by actors."),
    "tinyagents_messages_dropped_total": ("counter", "Messages a mailbox overflow dropped."),
    "tinyagents_dead_letters_total": ("counter", "Dead letters, by reason."),
    "tinyagents_restarts_total": ("counter", "Actor restarts by their supervisors."),
    "tinyagents_ask_duration_seconds": ("histogram", "Time from an ask to its answer."),
    "tinyagents_llm_calls_total": ("counter", "LLM calls, by provider and model."),
    "tinyagents_llm_errors_total": ("counter", "Failed LLM calls, by provider, model, error."),
    "tinyagents_llm_tokens_total": ("counter", "Tokens reported, by provider, model, type."),
    "tinyagents_llm_duration_seconds": ("histogram", "LLM call time, by provider and model."),
    "tinyagents_gossip_probes_total": ("counter", "Members probed by the gossip cluster."),
    "tinyagents_gossip_suspicions_total": ("counter", "Probes that failed: suspicions."),
    "tinyagents_gossip_members": ("gauge", "Live (alive or suspect) gossip members."),
    "tinyagents_transport_frames_total": ("counter", "Transport frames, by direction."),
    "tinyagents_transport_bytes_total": ("counter", "Transport bytes, by direction."),
    "tinyagents_transport_refused_total": ("counter", "Connections the transport refused."),
    "tinyagents_replicator_messages_total": ("counter", "Replication messages, by kind."),
    "tinyagents_replicator_bytes_total": ("counter", "Replicated value bytes sent, by kind."),
}
"""Every metric the runtime keeps: its kind and what it counts."""


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((key, str(value)) for key, value in labels.items()))


@attrs.frozen
class Sample:
    """One counter or gauge value, with its labels."""

    name: str
    kind: Kind
    labels: Mapping[str, str]
    value: float


@attrs.frozen
class HistogramSample:
    """One histogram: ``buckets`` holds ``(upper bound, cumulative count)`` pairs, the
    last bound ``inf``; ``sum`` and ``count`` are those of every observation."""

    name: str
    labels: Mapping[str, str]
    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int
    kind: Kind = "histogram"


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def sample(self, name: str, labels: Labels) -> HistogramSample:
        cumulative = 0
        buckets = []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramSample(name, dict(labels), tuple(buckets), self.sum, self.count)


Collector = Callable[[], Iterable[Sample | HistogramSample]]


class Metrics:
    """The metrics of one actor system (``system.metrics()`` takes a snapshot).

    Not thread-safe, like everything of a trio run. Names must be among
    :data:`METRICS`; recording never raises for a known name.
    """

    def __init__(self) -> None:
        self._counters: dict[tuple[str, Labels], float] = {}
        self._histograms: dict[tuple[str, Labels], _Histogram] = {}
        self._collectors: list[Collector] = []

    def inc(self, name: str, amount: float = 1, /, **labels: str) -> None:
        """Add ``amount`` to the counter ``name`` with ``labels``."""
        self._add((name, _labels(labels) if labels else ()), amount)

    def _add(self, key: tuple[str, Labels], amount: float) -> None:
        """``inc`` with its key made (labels sorted by name, values str)."""
        self._counters[key] = self._counters.get(key, 0) + amount

    def histogram(
        self, name: str, /, buckets: tuple[float, ...] = DEFAULT_BUCKETS, **labels: str
    ) -> _Histogram:
        """The histogram ``name`` with ``labels`` (created on first use), whose
        ``observe(value)`` records one value."""
        return self._histogram_at((name, _labels(labels) if labels else ()), buckets)

    def _histogram_at(
        self, key: tuple[str, Labels], buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> _Histogram:
        """``histogram`` with its key made (as for :meth:`_add`)."""
        found = self._histograms.get(key)
        if found is None:
            found = self._histograms[key] = _Histogram(buckets)
        return found

    def add_collector(self, collector: Collector) -> None:
        """Call ``collector`` at each snapshot for more samples (until removed)."""
        self._collectors.append(collector)

    def remove_collector(self, collector: Collector) -> None:
        """Stop calling ``collector``; removing one that is not there does nothing."""
        if collector in self._collectors:
            self._collectors.remove(collector)

    def snapshot(self) -> MetricsSnapshot:
        """Every metric now. Collectors that raise are skipped (and do not stop the
        snapshot)."""
        samples: list[Sample | HistogramSample] = [
            Sample(name, METRICS[name][0] if name in METRICS else "counter", dict(labels), value)
            for (name, labels), value in self._counters.items()
        ]
        samples.extend(
            histogram.sample(name, labels) for (name, labels), histogram in self._histograms.items()
        )
        for collector in list(self._collectors):
            try:
                samples.extend(collector())
            except Exception:  # a broken collector must not hide the rest
                logger.exception("metrics: a collector failed: %r", collector)
        samples.sort(key=lambda s: (s.name, sorted(s.labels.items())))
        return MetricsSnapshot(tuple(samples))


@attrs.frozen
class MetricsSnapshot:
    """The metrics of one actor system at one moment (from ``system.metrics()``)."""

    samples: tuple[Sample | HistogramSample, ...]

    def value(self, name: str, /, **labels: str) -> float:
        """The sum of the counter or gauge ``name`` over the samples whose labels
        include ``labels`` (0 when there is none); a histogram gives its count."""
        total = 0.0
        for sample in self.samples:
            if sample.name == name and all(
                sample.labels.get(key) == value for key, value in labels.items()
            ):
                total += sample.value if isinstance(sample, Sample) else sample.count
        return total

    def histogram(self, name: str, /, **labels: str) -> HistogramSample | None:
        """The first histogram ``name`` whose labels include ``labels``, or ``None``."""
        for sample in self.samples:
            if (
                isinstance(sample, HistogramSample)
                and sample.name == name
                and all(sample.labels.get(key) == value for key, value in labels.items())
            ):
                return sample
        return None

    def to_json(self) -> list[dict[str, Any]]:
        """The samples as JSON-ready dicts (``name``, ``kind``, ``labels``, then
        ``value``, or ``buckets`` as ``[bound, cumulative count]`` pairs with the last
        bound ``"+Inf"``, ``sum`` and ``count``)."""
        out: list[dict[str, Any]] = []
        for sample in self.samples:
            item: dict[str, Any] = {
                "name": sample.name,
                "kind": sample.kind,
                "labels": dict(sample.labels),
            }
            if isinstance(sample, Sample):
                item["value"] = sample.value
            else:
                item["buckets"] = [
                    ["+Inf" if math.isinf(bound) else bound, count]
                    for bound, count in sample.buckets
                ]
                item["sum"] = sample.sum
                item["count"] = sample.count
            out.append(item)
        return out

    def to_prometheus(self) -> str:
        """The samples in Prometheus' text exposition format (version 0.0.4)."""
        lines: list[str] = []
        described: set[str] = set()
        for sample in self.samples:
            if sample.name not in described:
                described.add(sample.name)
                help_text = METRICS.get(sample.name, (sample.kind, ""))[1]
                lines.append(f"# HELP {sample.name} {_escape_help(help_text)}")
                lines.append(f"# TYPE {sample.name} {sample.kind}")
            if isinstance(sample, Sample):
                lines.append(
                    f"{sample.name}{_render_labels(sample.labels)} {_number(sample.value)}"
                )
                continue
            for bound, count in sample.buckets:
                le = "+Inf" if math.isinf(bound) else _number(bound)
                labels = _render_labels({**sample.labels, "le": le})
                lines.append(f"{sample.name}_bucket{labels} {count}")
            labels = _render_labels(sample.labels)
            lines.append(f"{sample.name}_sum{labels} {_number(sample.sum)}")
            lines.append(f"{sample.name}_count{labels} {sample.count}")
        return "\n".join(lines) + "\n" if lines else ""


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _render_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    parts = []
    for key, value in sorted(labels.items()):
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{key}="{escaped}"')
    return "{" + ",".join(parts) + "}"


# -- LLM calls -------------------------------------------------------------------------


def current_metrics() -> Metrics | None:
    """The metrics of the actor system whose actor runs the current task, if any."""
    from .actor._ref import current_cell

    cell = current_cell.get()
    return None if cell is None else cell.system._metrics


def record_llm_call(
    *,
    provider: str,
    model: str,
    seconds: float,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    error_type: str | None = None,
) -> None:
    """Count one LLM call into the current actor system's metrics (nothing outside an
    actor): the call, its time, its tokens where the provider reported them, and its
    error's type name if it failed. Never raises."""
    metrics = current_metrics()
    if metrics is None:
        return
    # the label tuples made here, sorted by name as _labels makes them: once per call
    model_label, provider_label = ("model", str(model)), ("provider", str(provider))
    labels = (model_label, provider_label)
    metrics._add(("tinyagents_llm_calls_total", labels), 1)
    metrics._histogram_at(("tinyagents_llm_duration_seconds", labels)).observe(seconds)
    if error_type is not None:
        errors = (("error", str(error_type)), model_label, provider_label)
        metrics._add(("tinyagents_llm_errors_total", errors), 1)
    if input_tokens:
        tokens = (model_label, provider_label, ("type", "input"))
        metrics._add(("tinyagents_llm_tokens_total", tokens), input_tokens)
    if output_tokens:
        tokens = (model_label, provider_label, ("type", "output"))
        metrics._add(("tinyagents_llm_tokens_total", tokens), output_tokens)
