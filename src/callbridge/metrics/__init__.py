"""Prometheus metrics: definitions and the scrape-time collector (``registry``), per-call counters
(``counters``), the adapter that reads a running daemon (``live``), the transcript-sink tap that
times translations (``sink``) and the HTTP side (``routes``)."""

from callbridge.metrics.counters import CALL_METRICS, CallCounters
from callbridge.metrics.registry import CallMetrics, LatencyStage, Metrics

__all__ = ["CALL_METRICS", "CallCounters", "CallMetrics", "LatencyStage", "Metrics"]
