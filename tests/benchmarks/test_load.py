"""The load benchmark's own arithmetic: loop-lag p99, latency pairing, profile stages, verdicts."""

from __future__ import annotations

import math
from typing import Any

import pytest
from benchmarks.load import latency, metrics, output, profile
from benchmarks.load.sweep import Criteria, per_instance


def test_loop_lag_p99_is_read_from_the_windows_own_buckets() -> None:
    before = {0.001: 900.0, 0.005: 990.0, 0.025: 1000.0, math.inf: 1000.0}
    # In the window: 100 observations, 98 under 1 ms, 2 between 5 and 25 ms.
    after = {0.001: 998.0, 0.005: 1088.0, 0.025: 1100.0, math.inf: 1100.0}
    assert metrics.lag_p99_ms(before, after) == pytest.approx(25.0)
    assert metrics.lag_p99_ms(None, after) is None
    assert metrics.lag_p99_ms(after, after) is None  # nothing observed


def stream(url: str, said: list[float], heard: dict[str, list[float]]) -> dict[str, Any]:
    return {"url": url, "said_onsets": said, "heard_onsets": heard}


def test_streams_pair_into_calls_and_bursts_into_original_latencies() -> None:
    streams = [
        stream("ws://127.0.0.1:8001/media/c1/caller", [10.0, 16.0], {"800": [13.02]}),
        stream("ws://127.0.0.1:8001/media/c1/operator", [13.0], {"500": [10.03, 16.5]}),
        stream("ws://127.0.0.1:8001/media/c2/caller", [10.0], {}),  # no operator: left out
    ]
    calls = latency.group_streams(streams)
    assert list(calls) == ["c1"] and calls["c1"].daemon_url == "http://127.0.0.1:8001"
    result = latency.original_latencies(calls, window_end=30.0)
    assert sorted(result.samples_ms) == [20.0, 30.0, 500.0] and result.missing == 0
    # A burst said in the window's last second may not have been heard yet: not counted.
    assert latency.original_latencies(calls, window_end=16.5).summary()["count"] == 2


def test_translations_are_timed_to_the_listeners_tone_and_unheard_ones_are_missing() -> None:
    calls = latency.group_streams(
        [
            stream("ws://h:1/media/c1/caller", [], {"2000": [20.05]}),
            stream("ws://h:1/media/c1/operator", [], {"1300": [11.04]}),
        ]
    )
    palabra = {
        "connections": [
            {"utterances": [{"transcription_id": "u1", "first_audio_chunk_at": 11.0}]},
            {"utterances": [{"transcription_id": "u2", "first_audio_chunk_at": 20.0},
                            {"transcription_id": "u3", "first_audio_chunk_at": 25.0}]},
        ]
    }  # fmt: skip
    speakers = {"u1": ("c1", "caller"), "u2": ("c1", "operator"), "u3": ("c1", "operator")}
    result = latency.translated_latencies(
        calls, palabra, speakers, {"caller": "en", "operator": "es"}, (0.0, 40.0)
    )
    assert sorted(result.samples_ms) == [40.0, 50.0] and result.missing == 1


@pytest.mark.parametrize(
    ("leaf", "stage"),
    [
        ("process (callbridge/audio/resample.py:62)", "resampling (libsamplerate)"),
        ("get_events (trio/_core/_io_epoll.py:243)", profile.POLL_STAGE),
        ("unrolled_run (trio/_core/_run.py:2866)", "trio runtime (scheduler, cancel scopes, channels, sockets)"),
        ("extend (hypercorn/protocol/ws_stream.py:146)", "hypercorn / quart / wsproto / h11"),
        ("_handle (callbridge/calls/media.py:120)", "callbridge (own code)"),
    ],
)  # fmt: skip
def test_profile_samples_are_staged_by_their_innermost_frame(leaf: str, stage: str) -> None:
    assert profile.stage_of(leaf) == stage


def test_a_step_fails_on_any_criterion() -> None:
    ok = {
        "lateness": {"p99_ms": 0.0},
        "late_frames": 0,
        "dropped_frames": 0,
        "daemon_cpu_pct": 50.0,
        "bridged": 10,
        "calls": 10,
    }
    criteria = Criteria()
    assert criteria.failures(ok) == []
    assert criteria.failures(ok | {"lateness": {"p99_ms": 20.0}}) == ["lateness p99 >= 20 ms"]
    assert criteria.failures(ok | {"late_frames": 1}) == ["late frames"]
    assert criteria.failures(ok | {"daemon_cpu_pct": 96.0}) == ["core saturated"]
    assert Criteria(late_frames=5).failures(ok | {"late_frames": 5}) == []


def test_several_instances_report_their_calls_and_cpu_each() -> None:
    rows = per_instance([4, 3, 0], [0.31, 0.24, 0.005])
    assert rows == [
        {"calls": 4, "cpu_pct": 31.0, "cpu_ms_per_call_s": 77.5},
        {"calls": 3, "cpu_pct": 24.0, "cpu_ms_per_call_s": 80.0},
        {"calls": 0, "cpu_pct": 0.5, "cpu_ms_per_call_s": 0.0},
    ]
    step = {"calls": 7, "per_instance": rows}
    assert output.instances_text(step) == "per instance: 4 / 3 / 0 calls, 31 / 24 / 0 % CPU "
    table = output.instances_table([step])
    assert table[-1] == "| 7 | 4, 31.0, 77.50 | 3, 24.0, 80.00 | 0, 0.5, 0.00 |"
    one = {"calls": 7, "per_instance": rows[:1]}
    assert output.instances_text(one) == "" and output.instances_table([one]) == []
