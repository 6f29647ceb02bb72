"""Tone-mode voice of the fake Twilio: bursts of one frequency, frames shared between voices.

Each party says bursts of its own frequency (500 Hz caller, 800 Hz operator by default: see
docs/simulators.md), so a listener's recording tells who was heard when.
"""

from __future__ import annotations

import functools
import math

import attrs
import numpy as np

from callbridge.sim.twilio.audio import FRAME_BYTES, FRAME_S, RATE, SILENCE_BYTE, ulaw_encode

__all__ = ["ToneVoice", "tone_frame"]


@attrs.define
class ToneVoice:
    """Bursts of ``freq_hz``: ``start_delay_s`` silence, then ``on_s`` tone / ``off_s`` silence.

    ``burst_started`` tells whether the frame just returned began a burst. When the bursts
    repeat exactly (a whole number of frames per period, and of tone cycles per period) the
    frames of one period are computed once and shared by every voice alike, so a simulator
    driving a hundred streams does not synthesise each frame again.
    """

    freq_hz: float
    on_s: float = 1.2
    off_s: float = 1.8
    start_delay_s: float = 0.3
    level_dbfs: float = -12.0
    burst_started: bool = False
    _index: int = 0  # frames said so far

    def next_frame(self) -> bytes:
        index = self._index
        self._index += 1
        period = _tone_period(
            self.freq_hz, self.on_s, self.off_s, self.start_delay_s, self.level_dbfs
        )
        if period is not None and index >= period.first:
            phase = (index - period.first) % len(period.frames)
            self.burst_started = phase in period.starts
            return period.frames[phase]
        frame = tone_frame(
            self.freq_hz, self.on_s, self.off_s, self.start_delay_s, self.level_dbfs, index
        )
        self.burst_started = _burst_starts_in(index, self.on_s, self.off_s, self.start_delay_s)
        return frame


def tone_frame(
    freq_hz: float, on_s: float, off_s: float, start_delay_s: float, level_dbfs: float, index: int
) -> bytes:
    """Frame ``index`` of a :class:`ToneVoice`, computed from scratch (160 mu-law bytes)."""
    n = np.arange(index * FRAME_BYTES, (index + 1) * FRAME_BYTES)
    t = n / RATE - start_delay_s
    on = (t >= 0) & (np.mod(t, on_s + off_s) < on_s)
    amp = 32767 * 10 ** (level_dbfs / 20)
    pcm = np.where(on, amp * np.sin(2 * math.pi * freq_hz * n / RATE), 0.0)
    frame = bytearray(ulaw_encode(pcm.astype(np.int16)))
    # Exact zero must be the mu-law idle code 0xFF, not its +0 twin 0x7F.
    for i in np.flatnonzero(~on):
        frame[i] = SILENCE_BYTE
    return bytes(frame)


def _burst_starts_in(index: int, on_s: float, off_s: float, start_delay_s: float) -> bool:
    """Whether a burst begins within frame ``index`` (its first sample, or a later one)."""
    t0, t1 = index * FRAME_S - start_delay_s, (index + 1) * FRAME_S - start_delay_s
    if t1 <= 0:
        return False
    period = on_s + off_s
    k = math.ceil(max(t0, 0.0) / period - 1e-9)  # the first burst starting at or after t0
    return k * period < t1 - 1e-9


@attrs.frozen
class _TonePeriod:
    first: int  # frames before the periodic part (the start delay, rounded up)
    frames: tuple[bytes, ...]  # one period
    starts: frozenset[int]  # phases (indexes into frames) where a burst begins


@functools.cache
def _tone_period(
    freq_hz: float, on_s: float, off_s: float, start_delay_s: float, level_dbfs: float
) -> _TonePeriod | None:
    period_frames = (on_s + off_s) / FRAME_S
    cycles = freq_hz * (on_s + off_s)
    if abs(period_frames - round(period_frames)) > 1e-6 or abs(cycles - round(cycles)) > 1e-6:
        return None  # not periodic in whole frames: computed frame by frame
    first = math.ceil(start_delay_s / FRAME_S - 1e-9)
    args = (freq_hz, on_s, off_s, start_delay_s, level_dbfs)
    indexes = range(first, first + round(period_frames))
    frames = tuple(tone_frame(*args, i) for i in indexes)
    starts = frozenset(
        p for p, i in enumerate(indexes) if _burst_starts_in(i, on_s, off_s, start_delay_s)
    )
    return _TonePeriod(first, frames, starts)
