"""Metrics: live calls plus folded totals, each call once; latencies from transcript events."""

from __future__ import annotations

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from callbridge.metrics import CallCounters, Metrics
from callbridge.metrics.sink import SPEECH_ENDS_KEPT, MeteredTranscriptSink
from callbridge.records import CallRecord, EndReason
from callbridge.roles import Direction, Role
from callbridge.transcripts.events import TranscriptEvent
from tests.service.fakes import FakeDaemon, store_figures

FRAMES_IN = "callbridge_media_frames_received"


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by Prometheus's own text parser."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def frames(caller: int, operator: int) -> CallCounters:
    return CallCounters({(FRAMES_IN, "caller"): caller, (FRAMES_IN, "operator"): operator})


def watched(daemon: FakeDaemon, rejected: dict[str, int] | None = None) -> Metrics:
    metrics = Metrics()
    metrics.watch(daemon, rejected or {}, max_calls=10)
    return metrics


class TestCallCounters:
    def test_live_calls_are_summed_at_scrape_time(self) -> None:
        daemon = FakeDaemon(live_calls={"a": frames(10, 5), "b": frames(1, 2)})
        samples = scrape(watched(daemon))
        assert samples["callbridge_media_frames_received_total", (("leg", "caller"),)] == 11
        assert samples["callbridge_media_frames_received_total", (("leg", "operator"),)] == 7
        assert samples["callbridge_active_calls", ()] == 2

    def test_an_ended_call_is_folded_in_once_even_while_still_registered(self) -> None:
        daemon = FakeDaemon(live_calls={"a": frames(10, 5), "b": frames(1, 2)})
        metrics = watched(daemon)
        metrics.call_ended("a", "caller_hangup")  # read from the daemon: a is still live
        samples = scrape(metrics)
        assert samples["callbridge_media_frames_received_total", (("leg", "caller"),)] == 11
        del daemon.live_calls["a"]  # the supervisor forgets it
        samples = scrape(metrics)
        assert samples["callbridge_media_frames_received_total", (("leg", "caller"),)] == 11
        assert samples["callbridge_calls_ended_total", (("reason", "caller_hangup"),)] == 1

    def test_counters_never_go_down_across_many_calls(self) -> None:
        daemon = FakeDaemon()
        metrics = watched(daemon)
        seen = []
        for i in range(5):
            call_id = f"c{i}"
            daemon.live_calls[call_id] = frames(i + 1, 0)
            seen.append(scrape(metrics)[FRAMES_IN + "_total", (("leg", "caller"),)])
            metrics.call_ended(call_id, "operator_hangup", frames(i + 1, 0))
            seen.append(scrape(metrics)[FRAMES_IN + "_total", (("leg", "caller"),)])
            del daemon.live_calls[call_id]
        assert seen == sorted(seen)
        assert seen[-1] == 15

    def test_known_labels_are_exported_at_zero_before_anything_happens(self) -> None:
        samples = scrape(watched(FakeDaemon()))
        assert samples["callbridge_media_frames_late_total", (("leg", "operator"),)] == 0
        assert (
            samples["callbridge_palabra_reconnects_total", (("direction", "caller_to_operator"),)]
            == 0
        )
        assert (
            samples["callbridge_channel_overflows_total", (("channel", "translation_queue"),)] == 0
        )


class TestDaemonFigures:
    def test_store_rejected_input_and_channel_drops(self) -> None:
        daemon = FakeDaemon(
            figures=store_figures(queue_depth=7, failed_writes=3, dropped=4), feeds_dropped=2
        )
        samples = scrape(watched(daemon, {"bad_signature": 5, "unknown_call": 1}))
        assert samples["callbridge_store_queue_depth", ()] == 7
        assert samples["callbridge_store_write_failures_total", ()] == 3
        assert samples["callbridge_signature_failures_total", ()] == 5
        assert samples["callbridge_rejected_requests_total", (("kind", "unknown_call"),)] == 1
        assert (
            samples["callbridge_channel_overflows_total", (("channel", "transcript_store"),)] == 4
        )
        assert samples["callbridge_channel_overflows_total", (("channel", "transcript_feed"),)] == 2

    def test_loop_lag_playout_and_http_are_observed(self) -> None:
        from callbridge.metrics.live import PlayoutSample

        daemon = FakeDaemon(samples=[PlayoutSample("a", Role.CALLER, 0.035)])
        metrics = watched(daemon)
        metrics.loop_lag(0.003)
        metrics.sample_playout()
        metrics.http_request("/twiml/client", 200)
        samples = scrape(metrics)
        assert samples["callbridge_event_loop_lag_seconds_count", ()] == 1
        assert samples["callbridge_event_loop_lag_seconds_bucket", (("le", "0.005"),)] == 1
        assert (
            samples["callbridge_playout_delay_seconds_bucket", (("le", "0.04"), ("leg", "caller"))]
            == 1
        )
        key = (("route", "/twiml/client"), ("status", "200"))
        assert samples["callbridge_http_requests_total", key] == 1


def event(kind: str, ts: float, **data: object) -> TranscriptEvent:
    return TranscriptEvent(
        call_id="c1",
        kind=kind,  # type: ignore[arg-type]
        direction=Direction.CALLER_TO_OPERATOR,
        utterance_id="u1",
        text="hola",
        language="es",
        ts=ts,
        data=data,
    )


class Hub:
    def __init__(self) -> None:
        self.events: list[object] = []

    def publish(self, event: object) -> None:
        self.events.append(event)

    def call_updated(self, record: CallRecord) -> None:
        self.events.append(record.status)


class TestMeteredSink:
    def test_speech_end_to_text_and_to_heard_are_observed_per_direction(self) -> None:
        metrics, hub = watched(FakeDaemon()), Hub()
        sink = MeteredTranscriptSink(hub, metrics)
        sink.publish(event("partial", 99.0))
        sink.publish(event("final", 100.5, speech_end_at=100.0))
        sink.publish(event("translation", 100.8))
        sink.publish(event("audio_started", 101.2))
        sink.publish(event("played", 103.0, played_at=102.5))
        assert len(hub.events) == 5  # everything still reaches the hub
        samples = scrape(metrics)
        text = (("direction", "caller_to_operator"), ("stage", "text"))
        first = (("direction", "caller_to_operator"), ("stage", "first_audio"))
        played = (("direction", "caller_to_operator"), ("stage", "played"))
        assert samples["callbridge_translation_latency_seconds_sum", text] == pytest.approx(0.8)
        assert samples["callbridge_translation_latency_seconds_sum", first] == pytest.approx(1.2)
        assert samples["callbridge_translation_latency_seconds_sum", played] == 2.5
        assert samples["callbridge_translation_latency_seconds_count", played] == 1

    def test_the_last_call_update_folds_the_call_with_its_reason(self) -> None:
        daemon = FakeDaemon(live_calls={"c1": frames(3, 4)})
        metrics, hub = watched(daemon), Hub()
        sink = MeteredTranscriptSink(hub, metrics)
        record = CallRecord(id="c1", caller_sid="CA1", caller_number="+1", caller_language="en",
                            operator_language="es")  # fmt: skip
        sink.call_updated(record)
        record.status, record.end_reason = "ended", EndReason.NO_OPERATOR
        sink.call_updated(record)
        del daemon.live_calls["c1"]
        samples = scrape(metrics)
        assert samples["callbridge_calls_ended_total", (("reason", "no_operator"),)] == 1
        assert samples[FRAMES_IN + "_total", (("leg", "operator"),)] == 4
        assert hub.events == ["ringing", "ended"]


class TestMeteredSinkMemory:
    def test_utterances_never_heard_are_forgotten_past_a_bound(self) -> None:
        """Captions mode, a clear or an overflow leave finals without a ``played``: a long call
        must not keep every one of them (issue 12 §4)."""
        metrics = watched(FakeDaemon())
        sink = MeteredTranscriptSink(Hub(), metrics)
        unheard = 10 * SPEECH_ENDS_KEPT
        for n in range(unheard):
            sink.publish(utterance_event("final", f"u{n}", 100.0 + n, speech_end_at=100.0 + n))
        # The oldest was forgotten: its late "played" is not measured...
        sink.publish(utterance_event("played", "u0", 5000.0, played_at=5000.0))
        played = (("direction", "caller_to_operator"), ("stage", "played"))
        assert scrape(metrics).get(("callbridge_translation_latency_seconds_count", played), 0) == 0
        # ...while the newest within the bound still is.
        last = unheard - 1
        sink.publish(utterance_event("played", f"u{last}", 100.0 + last + 2.0))
        assert scrape(metrics)["callbridge_translation_latency_seconds_count", played] == 1
        assert scrape(metrics)["callbridge_translation_latency_seconds_sum", played] == 2.0


def utterance_event(kind: str, uid: str, ts: float, **data: object) -> TranscriptEvent:
    return attrs.evolve(event(kind, ts, **data), utterance_id=uid)
