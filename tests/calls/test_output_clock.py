"""OutputClock: frames follow the speaker, stutters are bridged with silence, stalls skip ahead."""

from __future__ import annotations

import pytest

from callbridge.audio import FRAME_S
from callbridge.calls.output_clock import (
    GRACE_DECAY_PER_S,
    GRACE_S,
    MAX_GRACE_S,
    RESYNC_S,
    OutputClock,
)


def play(clock: OutputClock, arrivals: list[float]) -> list[bool]:
    """Drive the clock as the output task does: each frame goes out when its original arrives
    (if by the deadline) or at the deadline with silence. Returns, per frame, whether it had its
    original."""
    had: list[bool] = []
    queue = sorted(arrivals)
    now = 0.0
    while queue:
        if queue[0] <= clock.deadline:
            now = max(now, queue.pop(0))
            had.append(True)
        else:
            now = max(now, clock.deadline)
            had.append(False)
        clock.sent(now, on_original=had[-1])
    return had


def jittery(frames: int, late: dict[int, float], start: float = 0.0) -> list[float]:
    """Arrival times of frames every 20 ms from ``start``; ``late[i]`` delays frame i, and the
    frames after it wait behind it (TCP keeps order)."""
    arrivals, held = [], 0.0
    for i in range(frames):
        due = start + i * FRAME_S
        held = max(held, due + late.get(i, 0.0))
        arrivals.append(max(due, held))
    return arrivals


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


def test_silence_for_frames_that_then_arrive_widens_the_grace_to_cover_them() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    had = play(clock, jittery(50, {10: 0.035}))
    assert not all(had)  # the first 35 ms hiccup: silence went out for it
    assert clock.late_originals == 1
    assert clock.grace_s >= 0.035
    had = play(clock, jittery(50, {10: 0.035}, start=1.0))
    assert all(had)  # the same hiccup again: waited for, nothing stands in Twilio's buffer
    assert clock.late_originals == 1


def test_the_grace_never_widens_past_the_maximum() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    play(clock, jittery(50, {10: 0.055}))  # 55 ms late + margin: over the maximum
    assert clock.widest_grace_s == MAX_GRACE_S
    assert clock.grace_s <= MAX_GRACE_S


def test_frames_that_never_come_do_not_widen_the_grace() -> None:
    """A leg that skips its silent frames, then resumes on its own clock: a gap, not jitter."""
    clock = OutputClock()
    clock.restart(0.0)
    arrivals = [i * FRAME_S for i in range(10)] + [i * FRAME_S - 0.012 for i in range(60, 80)]
    had = play(clock, arrivals)
    assert had.count(False) >= 40
    assert clock.grace_s == GRACE_S
    assert clock.late_originals == 0


def test_a_widened_grace_narrows_again_while_the_leg_behaves() -> None:
    clock = OutputClock()
    clock.restart(0.0)
    play(clock, jittery(50, {10: 0.035}))
    widened = clock.widest_grace_s
    assert widened >= 0.035
    play(clock, jittery(500, {}, start=1.0))  # ten quiet seconds
    assert GRACE_S <= clock.grace_s <= widened - 9 * GRACE_DECAY_PER_S
    assert clock.widest_grace_s == widened
