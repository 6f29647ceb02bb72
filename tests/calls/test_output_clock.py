"""OutputClock: frames follow the speaker, stutters are bridged with silence, stalls skip ahead."""

from __future__ import annotations

import pytest

from callbridge.calls.output_clock import FRAME_S, GRACE_S, RESYNC_S, OutputClock


def test_a_frame_is_due_one_frame_after_the_last_and_waits_at_most_the_grace() -> None:
    clock = OutputClock()
    clock.restart(10.0)
    assert clock.slot == 10.0
    assert clock.deadline == pytest.approx(10.0 + GRACE_S)
    clock.sent(10.0, on_original=True)
    assert clock.slot == pytest.approx(10.0 + FRAME_S)


def test_an_early_original_moves_the_clock_to_the_speakers_phase() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    clock.sent(0.0, on_original=True)
    clock.sent(0.013, on_original=True)  # due at 0.020, here at 0.013: sent at once
    assert clock.slot == pytest.approx(0.033)


def test_a_late_original_within_the_grace_keeps_the_schedule() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    clock.sent(0.004, on_original=True)
    assert clock.slot == pytest.approx(FRAME_S)


def test_a_frame_without_its_original_keeps_the_schedule() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    clock.sent(clock.deadline, on_original=False)  # went out with silence
    assert clock.slot == pytest.approx(FRAME_S)


def test_a_speaker_running_ahead_never_waits() -> None:
    """Three frames stutter and then arrive at once: each is sent on arrival, and the clock
    follows the speaker from then on, however far ahead of the old schedule that is."""
    clock = OutputClock()
    clock.restart(0.0)
    for _ in range(3):  # silence at slot + grace
        clock.sent(clock.deadline, on_original=False)
    arrivals = [0.065] * 3 + [0.085 + i * FRAME_S for i in range(20)]
    for arrival in arrivals:
        assert arrival <= clock.deadline  # so the output task sends it the moment it arrives
        clock.sent(arrival, on_original=True)
    assert clock.slot == pytest.approx(arrivals[-1] + FRAME_S)


def test_a_stalled_loop_skips_ahead_instead_of_bursting() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    clock.sent(0.5, on_original=False)  # the loop woke half a second late
    assert clock.slot == 0.5
    assert clock.resyncs == 1
    clock.sent(0.5 + RESYNC_S / 2, on_original=False)  # behind, but not by a stall
    assert clock.resyncs == 1
