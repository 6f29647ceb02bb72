"""``Metrics``: every metric callbridge exports, and the typed interface that records them.

Two kinds of figures, kept apart so the media path never pays for Prometheus:

- **Counted per call** (frames, bad messages, Palabra connects, channel overflows): the call keeps
  plain integers; at scrape time :class:`DaemonCollector` adds the live calls' ``CallCounters``
  to the totals folded in by :meth:`Metrics.call_ended`. A call folded but still registered with
  the supervisor for a moment is not counted twice.
- **Observed rarely** (an utterance's latency, one playout probe, one event-loop tick, one HTTP
  request, one ended call): ``prometheus_client`` histograms and counters, updated as they happen.

Names follow https://prometheus.io/docs/practices/naming/ (``callbridge_`` prefix, base units,
``_total`` on counters, ``_seconds`` on durations). Each ``Metrics`` owns its own
``CollectorRegistry``: no global state, so tests and several daemons in one process stay apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from callbridge import __version__
from callbridge.metrics.counters import CALL_METRICS, CallCounters
from callbridge.metrics.live import PlayoutSample, StoreFigures
from callbridge.roles import Direction, Role

__all__ = ["CallMetrics", "DaemonCollector", "LatencyStage", "LiveSource", "Metrics"]

# Speech end -> translated text ("text"), -> first translated audio heard ("first_audio"),
# -> the whole translation heard ("played").
LatencyStage = Literal["text", "first_audio", "played"]

LATENCY_BUCKETS_S: Final = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0)
PLAYOUT_BUCKETS_S: Final = (0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
_OVERFLOWS: Final = "callbridge_channel_overflows"
LOOP_LAG_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LiveSource(Protocol):
    """What the collector reads from a running daemon (``callbridge.metrics.live.LiveDaemon``)."""

    @property
    def active_calls(self) -> int: ...

    @property
    def draining(self) -> bool: ...

    def calls(self) -> Iterable[tuple[str, CallCounters]]: ...

    def counters_of(self, call_id: str) -> CallCounters: ...

    def playout(self) -> Iterable[PlayoutSample]: ...

    def store(self) -> StoreFigures: ...

    def feed_subscribers_dropped(self) -> int: ...


class CallMetrics(Protocol):
    """What call code reports. Each method is called at most a few times per second per call."""

    def call_ended(self, call_id: str, reason: str, counters: CallCounters | None = None) -> None:
        """A call ended with ``reason``; ``counters`` are its final counters (``None``: read them
        from the live daemon now, while the supervisor still knows the call)."""

    def translation_latency(
        self, direction: Direction, stage: LatencyStage, seconds: float
    ) -> None: ...

    def observe_playout_delay(self, listener: Role, seconds: float) -> None: ...


class Metrics:
    """The daemon's metrics; ``watch`` a live daemon, then scrape with :meth:`exposition`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._live: LiveSource | None = None
        self._rejected: Mapping[str, int] = {}
        self._max_calls = 0
        self._ended = CallCounters()
        self._folded: set[str] = set()
        self._calls_ended = Counter(
            "callbridge_calls_ended",
            "calls ended, by end reason (see docs/operations.md#end-reasons)",
            ["reason"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "callbridge_translation_latency_seconds",
            "from Palabra's end of speech to the translated text (stage=text), to its first "
            "audio heard (first_audio) and to the whole translation heard (played)",
            ["direction", "stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._playout = Histogram(
            "callbridge_playout_delay_seconds",
            "audio waiting in Twilio's playout buffer plus the network round trip, per listener",
            ["leg"],
            buckets=PLAYOUT_BUCKETS_S,
            registry=self.registry,
        )
        self._loop_lag = Histogram(
            "callbridge_event_loop_lag_seconds",
            "how late the event loop woke a task that asked to sleep until a given time",
            buckets=LOOP_LAG_BUCKETS_S,
            registry=self.registry,
        )
        self._http = Counter(
            "callbridge_http_requests",
            "HTTP requests answered (Twilio webhooks, pages, API), by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.registry.register(DaemonCollector(self))
        ProcessCollector(registry=self.registry)

    # ---- wiring -----------------------------------------------------------------------------

    def watch(self, live: LiveSource, rejected: Mapping[str, int], max_calls: int) -> None:
        """Read live calls, the store and the rejected-input counters from now on."""
        self._live = live
        self._rejected = rejected
        self._max_calls = max_calls

    @property
    def live(self) -> LiveSource | None:
        return self._live

    # ---- the recording interface ----------------------------------------------------------

    def call_ended(self, call_id: str, reason: str, counters: CallCounters | None = None) -> None:
        if counters is None:
            counters = self._live.counters_of(call_id) if self._live else CallCounters()
        self._ended.update(counters)
        self._calls_ended.labels(reason=reason).inc()
        live_ids = {i for i, _ in self._live.calls()} if self._live else set()
        self._folded = (self._folded & live_ids) | {call_id}

    def translation_latency(
        self, direction: Direction, stage: LatencyStage, seconds: float
    ) -> None:
        self._latency.labels(direction=str(direction), stage=stage).observe(max(0.0, seconds))

    def observe_playout_delay(self, listener: Role, seconds: float) -> None:
        self._playout.labels(leg=str(listener)).observe(max(0.0, seconds))

    def loop_lag(self, seconds: float) -> None:
        self._loop_lag.observe(max(0.0, seconds))

    def http_request(self, route: str, status: int) -> None:
        self._http.labels(route=route, status=str(status)).inc()

    def sample_playout(self) -> None:
        """Observe the playout delay each live listener measured last (called about once a
        second, so the histogram counts listener-seconds)."""
        if self._live is not None:
            for sample in self._live.playout():
                self.observe_playout_delay(sample.listener, sample.delay_s)

    # ---- scraping ---------------------------------------------------------------------------

    def call_totals(self) -> CallCounters:
        """Ended calls' counters plus every live call's, each call counted once."""
        totals = CallCounters(self._ended)
        if self._live is not None:
            for call_id, counters in self._live.calls():
                if call_id not in self._folded:
                    totals.update(counters)
        return totals

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics in the format the scraper's ``Accept`` header asks for (OpenMetrics for
        Prometheus, the classic text format 0.0.4 without one), and its content type."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class DaemonCollector(Collector):
    """Scrape-time figures: live gauges, summed call counters, the store, rejected input."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        yield _gauge("callbridge_build_info", "callbridge version", 1, version=__version__)
        totals = metrics.call_totals()
        live = metrics.live
        if live is None:
            yield from _call_families(totals)
            return
        store = live.store()
        totals[_OVERFLOWS, "transcript_store"] += store.dropped
        totals[_OVERFLOWS, "transcript_feed"] += live.feed_subscribers_dropped()
        yield from _call_families(totals)
        yield _gauge(
            "callbridge_active_calls", "calls admitted and not yet ended", live.active_calls
        )
        yield _gauge("callbridge_max_calls", "server.max_calls", metrics._max_calls)
        yield _gauge("callbridge_draining", "1 once a shutdown signal arrived", int(live.draining))
        yield from _rejected_families(metrics._rejected)
        yield from _store_families(store)


def _gauge(name: str, help_: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _counter(name: str, help_: str, values: Mapping[str, float], label: str) -> Metric:
    family = CounterMetricFamily(name, help_, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _call_families(totals: CallCounters) -> Iterator[Metric]:
    by_metric: dict[str, dict[str, float]] = {
        name: dict.fromkeys(metric.seeded, 0.0) for name, metric in CALL_METRICS.items()
    }
    for (name, label_value), count in totals.items():
        by_metric.setdefault(name, {})[label_value] = float(count)
    for name, metric in CALL_METRICS.items():
        yield _counter(name, metric.help, by_metric[name], metric.label)


def _rejected_families(rejected: Mapping[str, int]) -> Iterator[Metric]:
    values = {kind: float(count) for kind, count in rejected.items()}
    yield _counter(
        "callbridge_rejected_requests",
        "webhooks and media streams refused, by kind (bad_signature, unknown_call, ...)",
        values,
        "kind",
    )
    failures = CounterMetricFamily(
        "callbridge_signature_failures", "requests whose X-Twilio-Signature did not verify"
    )
    failures.add_metric([], float(rejected.get("bad_signature", 0)))
    yield failures


def _store_families(store: StoreFigures) -> Iterator[Metric]:
    yield _gauge("callbridge_store_queue_depth", "writes waiting for the store", store.queue_depth)
    yield _gauge("callbridge_store_queue_capacity", "store queue size", store.queue_capacity)
    yield _gauge("callbridge_store_writer_up", "1 while the writer runs", int(store.writer_alive))
    writes = CounterMetricFamily("callbridge_store_writes", "store writes committed")
    writes.add_metric([], float(store.written))
    yield writes
    failures = CounterMetricFamily("callbridge_store_write_failures", "store writes that failed")
    failures.add_metric([], float(store.failed_writes))
    yield failures
