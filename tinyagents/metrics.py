"""The runtime's metrics, read with ``system.metrics()``.

A snapshot (:class:`MetricsSnapshot`) holds every counter and gauge as a
:class:`Sample` and every histogram as a :class:`HistogramSample`, named as in
:data:`METRICS` (Prometheus style: ``tinyagents_dead_letters_total{reason="..."}``).
It renders as JSON (:meth:`MetricsSnapshot.to_json`, what the admin endpoint's
``status`` carries) or in Prometheus' text format (:meth:`MetricsSnapshot.to_prometheus`,
what ``GET /metrics`` on the admin port serves).

LLM calls made by actors are counted by provider and model; a provider of your own can
report its calls with :func:`record_llm_call`.
"""

from ._metrics import DEFAULT_BUCKETS as DEFAULT_BUCKETS
from ._metrics import METRICS as METRICS
from ._metrics import HistogramSample as HistogramSample
from ._metrics import MetricsSnapshot as MetricsSnapshot
from ._metrics import Sample as Sample
from ._metrics import record_llm_call as record_llm_call

__all__ = [
    "DEFAULT_BUCKETS",
    "METRICS",
    "HistogramSample",
    "MetricsSnapshot",
    "Sample",
    "record_llm_call",
]
