"""Energy VAD and utterance segmentation: the simulator's stand-in for speech recognition.

``EnergyVad`` cuts incoming PCM into 20 ms frames and calls a frame voiced when its RMS exceeds a
threshold. ``Segmenter`` turns voiced/unvoiced frames into utterances: an utterance opens once it
has ``min_speech_s`` of voiced audio (so a click does not count), grows while speech continues
(one ``Grew`` every ``partial_interval_s`` for partial transcripts) and closes after ``hangover_s``
of silence, the task's ``segment_confirmation_silence_threshold``. All times are seconds of AUDIO
since the stream started, not wall time; the connection maps them to wall time.
"""

from __future__ import annotations

import attrs
import numpy as np

__all__ = ["Closed", "EnergyVad", "Grew", "Opened", "SegmentEvent", "Segmenter", "dbfs_to_rms"]

FRAME_S = 0.02


def dbfs_to_rms(dbfs: float) -> float:
    """RMS of int16 samples for a level in dB relative to full scale."""
    return float(32768.0 * 10.0 ** (dbfs / 20.0))


@attrs.define
class EnergyVad:
    """Voiced/unvoiced per 20 ms frame of mono int16 audio."""

    sample_rate: int
    threshold_rms: float
    start_s: float = 0.0  # audio time of the first sample fed
    _carry: np.ndarray = attrs.field(factory=lambda: np.zeros(0, dtype=np.int16))
    _frames: int = 0

    @property
    def frame_len(self) -> int:
        return max(1, round(self.sample_rate * FRAME_S))

    @property
    def frame_s(self) -> float:
        return self.frame_len / self.sample_rate

    def feed(self, samples: np.ndarray) -> list[tuple[float, bool]]:
        """(frame start in audio seconds, voiced) for every whole frame now available."""
        data = np.concatenate([self._carry, samples]) if self._carry.size else samples
        n = self.frame_len
        whole = data.size // n
        self._carry = data[whole * n :].copy()
        if whole == 0:
            return []
        frames = data[: whole * n].astype(np.float64).reshape(whole, n)
        rms = np.sqrt(np.mean(frames * frames, axis=1))
        start = self._frames
        self._frames += whole
        return [
            (self.start_s + (start + i) * n / self.sample_rate, bool(rms[i] > self.threshold_rms))
            for i in range(whole)
        ]


@attrs.frozen
class Opened:
    number: int
    start_s: float
    end_s: float


@attrs.frozen
class Grew:
    number: int
    start_s: float
    end_s: float


@attrs.frozen
class Closed:
    number: int
    start_s: float
    end_s: float


SegmentEvent = Opened | Grew | Closed


@attrs.define
class Segmenter:
    """Utterances from voiced frames; numbers count confirmed utterances from 1."""

    hangover_s: float
    min_speech_s: float = 0.1
    partial_interval_s: float = 0.5
    _count: int = 0
    _start: float | None = None
    _last_voiced_end: float = 0.0
    _voiced_s: float = 0.0
    _confirmed: bool = False
    _next_partial: float = 0.0

    @property
    def active(self) -> bool:
        """An utterance (confirmed or not) is open."""
        return self._start is not None

    @property
    def count(self) -> int:
        return self._count

    def push(self, start_s: float, duration_s: float, voiced: bool) -> list[SegmentEvent]:
        if voiced:
            return self._voiced(start_s, duration_s)
        if (
            self._start is not None
            and start_s + duration_s - self._last_voiced_end >= self.hangover_s
        ):
            return self.flush()
        return []

    def flush(self) -> list[SegmentEvent]:
        """Close the open utterance now (end of input, or no audio for the hangover)."""
        events: list[SegmentEvent] = []
        if self._start is not None and self._confirmed:
            events.append(Closed(self._count, self._start, self._last_voiced_end))
        self._start = None
        return events

    def reset(self) -> None:
        """Drop the open utterance without closing it (interrupt_task)."""
        self._start = None

    def _voiced(self, start_s: float, duration_s: float) -> list[SegmentEvent]:
        if self._start is None:
            self._start = start_s
            self._voiced_s = 0.0
            self._confirmed = False
        self._last_voiced_end = start_s + duration_s
        self._voiced_s += duration_s
        if not self._confirmed:
            if self._voiced_s + 1e-9 < self.min_speech_s:
                return []
            self._confirmed = True
            self._count += 1
            self._next_partial = self._start + self.partial_interval_s
            return [Opened(self._count, self._start, self._last_voiced_end)]
        if self._last_voiced_end + 1e-9 >= self._next_partial:
            self._next_partial += self.partial_interval_s
            return [Grew(self._count, self._start, self._last_voiced_end)]
        return []
