"""PlayoutProbe: probe marks measure Twilio's buffer; a standing frame is dropped, once."""

from __future__ import annotations

import pytest

from callbridge.calls.playout import PROBE_EVERY, PlayoutProbe


def run_probes(probe: PlayoutProbe, delay_s: float, probes: int, start: float = 0.0) -> float:
    """Send frames every 20 ms; every probe comes back ``delay_s`` after it was sent."""
    now = start
    for _ in range(probes * PROBE_EVERY):
        now += 0.02
        name = probe.after_frame(now)
        if name is not None:
            probe.on_echo(name, now + delay_s)
    return now


def test_probe_marks_go_out_every_probe_every_frames() -> None:
    probe = PlayoutProbe(target_s=0.02)
    names = [probe.after_frame(i * 0.02) for i in range(1, 3 * PROBE_EVERY + 1)]
    sent = [n for n in names if n is not None]
    assert sent == ["p:1", "p:2", "p:3"]
    assert names.index("p:1") == PROBE_EVERY - 1


def test_short_buffer_is_left_alone() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.029, probes=5)  # within half a frame of the target
    assert not probe.should_skip(quiet=True, now=now)
    assert probe.trimmed == 0


def test_standing_frame_is_dropped_at_the_next_quiet_frame_once() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.055, probes=3)
    assert not probe.should_skip(quiet=False, now=now)  # speech: wait for a quiet frame
    assert probe.should_skip(quiet=True, now=now + 0.1)
    assert not probe.should_skip(quiet=True, now=now + 0.12)  # one frame per decision
    assert probe.trimmed == 1


def test_trim_happens_anyway_when_no_quiet_frame_comes() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.08, probes=3)
    assert not probe.should_skip(quiet=False, now=now + 0.5)
    assert probe.should_skip(quiet=False, now=now + 1.1)


def test_one_fast_probe_in_the_window_means_no_standing_frame() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.06, probes=2)
    now = run_probes(probe, delay_s=0.01, probes=1, start=now)
    assert not probe.should_skip(quiet=True, now=now)


def test_unknown_or_forgotten_echoes_are_ignored() -> None:
    probe = PlayoutProbe(target_s=0.02)
    probe.on_echo("p:99", 1.0)
    assert probe.last_delay_s is None


def test_a_frame_standing_from_the_start_is_trimmed_by_the_target() -> None:
    """No floor without the frame was ever seen: phase 12 ms + one standing frame."""
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.032, probes=3)
    assert probe.should_skip(quiet=True, now=now)
    now = run_probes(probe, delay_s=0.012, probes=3, start=now)  # it helped: keep aiming
    assert not probe.should_skip(quiet=True, now=now)
    now = run_probes(probe, delay_s=0.032, probes=3, start=now)  # and creep is trimmed again
    assert probe.should_skip(quiet=True, now=now)
    assert probe.trimmed == 2


def test_creep_above_the_floor_is_trimmed_even_below_target() -> None:
    probe = PlayoutProbe(target_s=0.2)
    now = run_probes(probe, delay_s=0.011, probes=3)
    assert not probe.should_skip(quiet=True, now=now)
    now = run_probes(probe, delay_s=0.031, probes=3, start=now)  # a frame crept in
    assert probe.should_skip(quiet=True, now=now)


def test_long_network_path_stops_target_trimming_after_a_useless_trim() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.09, probes=3)  # 90 ms round trip, nothing buffered
    assert probe.should_skip(quiet=True, now=now)
    now = run_probes(probe, delay_s=0.09, probes=3, start=now)  # the trim changed nothing
    assert not probe.should_skip(quiet=True, now=now)
    now = run_probes(probe, delay_s=0.09, probes=6, start=now)
    assert not probe.should_skip(quiet=True, now=now)
    assert probe.trimmed == 1


def test_a_floor_no_trim_can_reach_is_moved_up_after_a_useless_trim() -> None:
    """Frames reaching Twilio around its tick: a lucky one set a 3 ms floor, most wait 23 ms."""
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.003, probes=1)
    now = run_probes(probe, delay_s=0.023, probes=3, start=now)
    assert probe.should_skip(quiet=True, now=now)  # looks like a frame crept in
    now = run_probes(probe, delay_s=0.023, probes=3, start=now)  # it had not
    assert probe.floor_s == pytest.approx(0.023)
    now = run_probes(probe, delay_s=0.023, probes=30, start=now)
    assert not probe.should_skip(quiet=True, now=now)
    assert probe.trimmed == 1
    now = run_probes(probe, delay_s=0.043, probes=3, start=now)  # a real standing frame
    assert probe.should_skip(quiet=True, now=now)


def test_a_delay_that_grew_meanwhile_does_not_count_against_the_trim() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.004, probes=3)
    now = run_probes(probe, delay_s=0.024, probes=3, start=now)
    assert probe.should_skip(quiet=True, now=now)
    now = run_probes(probe, delay_s=0.044, probes=3, start=now)  # another frame crept in
    assert probe.floor_s == pytest.approx(0.004)  # still the floor: keep trimming toward it
    assert probe.should_skip(quiet=True, now=now)


def test_a_long_backlog_asks_for_a_clear_not_a_trim() -> None:
    probe = PlayoutProbe(target_s=0.02)
    now = run_probes(probe, delay_s=0.01, probes=3)
    now = run_probes(probe, delay_s=1.2, probes=3, start=now)
    assert probe.clear_pending
    assert not probe.trim_pending
    in_flight = None
    while in_flight is None:  # a probe sent before the clear, not yet echoed
        now += 0.02
        in_flight = probe.after_frame(now)
    probe.cleared()
    assert not probe.clear_pending
    assert probe.clears == 1
    probe.on_echo("p:6", now)  # an echo forced out by the clear: forgotten, not measured
    probe.on_echo(in_flight, now + 0.001)
    assert probe.last_delay_s == pytest.approx(1.2)
