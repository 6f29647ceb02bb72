"""What the fake Twilio measures per stream for load tests: lateness, jitter and tone onsets.

**Lateness** is measured against the listener's own 20 ms playout clock, the ticks at which
Twilio plays the stream's buffer. A media message is late when the buffer ran dry before it
came: a tick found no audio (an underrun the simulator itself was not late for), so the
listener heard a gap. :class:`LatenessMeter` gives such a message the time from that tick's
deadline to its arrival; every other message is on time (0). Messages after it are not late
again: they play on the shifted schedule, which shows as added latency instead.

**Jitter** ignores the buffer and looks at arrivals alone. The app sends a listener's audio in
messages that, played back to back, make a continuous track: message *i* starts
``position_i`` ms into it (its bytes before it / 8, at 8 kHz mu-law). On a steady clock,
``arrival_i - position_i`` (the message's *phase*) is constant; :class:`JitterMeter` reports
``phase_i - min(phase_j)`` over the messages of the last ``window_s`` seconds (j <= i), 0 for a
message on the best recent schedule. A frame the app leaves out on purpose (a playout trim
removing a frame that stood in Twilio's buffer) also shows as 20 ms of jitter, for ``window_s``,
since arrivals alone cannot tell it from a late frame; lateness can. Payloads of any length work
(a 40 ms message advances the position by 40 ms).

**Tone onsets.** In tone mode every party and every translation has its own frequency, so a
listener's recording tells who was heard when (see docs/simulators.md). :class:`ToneOnsets`
measures, for each played 20 ms frame, the level of a few frequencies (one DFT bin each: every
tone of the simulators completes a whole number of cycles in 160 samples at 8 kHz, so the bins do
not leak into each other) and records the wall-clock time a frequency rises above a threshold
after at least ``gap_frames`` of quiet. Paired with the time the speaker's burst was sent, or the
time Palabra sent the translation, that is the latency the listener experiences.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

__all__ = ["JitterMeter", "LatenessMeter", "MsHistogram", "ToneOnsets"]

BIN_MS = 0.5  # histogram resolution
MAX_MS = 1000.0  # later than this lands in the last bin (max_ms keeps the exact value)
RATE = 8000
FRAME_SAMPLES = 160


class MsHistogram:
    """Counts of millisecond values (lateness, jitter) in ``BIN_MS`` bins, mergeable across
    streams."""

    def __init__(self) -> None:
        self.counts = np.zeros(int(MAX_MS / BIN_MS) + 1, np.int64)
        self.zeros = 0  # values of exactly 0 (also counted in the first bin)
        self.max_ms = 0.0

    def add(self, value_ms: float) -> None:
        self.counts[min(int(value_ms / BIN_MS), len(self.counts) - 1)] += 1
        self.zeros += value_ms == 0.0
        self.max_ms = max(self.max_ms, value_ms)

    def merge(self, other: MsHistogram) -> None:
        self.counts += other.counts
        self.zeros += other.zeros
        self.max_ms = max(self.max_ms, other.max_ms)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def percentile_ms(self, q: float) -> float | None:
        """Upper edge of the bin holding the ``q``-quantile (0 < q <= 1), at most the maximum;
        0 when it is a value of exactly 0; None when empty."""
        total = self.count
        if total == 0:
            return None
        rank = math.ceil(q * total)
        if rank <= self.zeros:
            return 0.0  # on time: exactly 0, not the first bin's upper edge
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min((index + 1) * BIN_MS, self.max_ms)

    def over(self, limit_ms: float) -> int:
        """Messages at least ``limit_ms`` late."""
        return int(self.counts[int(limit_ms / BIN_MS) :].sum())

    def summary(self) -> dict[str, float | int | None]:
        return {
            "messages": self.count,
            "p50_ms": self.percentile_ms(0.50),
            "p99_ms": self.percentile_ms(0.99),
            "max_ms": round(self.max_ms, 2),
            "over_20ms": self.over(20.0),
        }


class JitterMeter:
    """Arrival jitter of one stream's outbound media (see the module docstring); ``window``
    holds the histogram since the last :meth:`reset_window`."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._position_ms = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (arrival s, phase ms), rising phase
        self.window = MsHistogram()

    def media(self, arrival_s: float, audio_bytes: int) -> float:
        """Account one media message (``arrival_s`` on any seconds clock); returns its jitter
        in ms."""
        phase = arrival_s * 1000.0 - self._position_ms
        self._position_ms += audio_bytes / (RATE / 1000)
        recent = self._recent
        # A monotonic deque: the front is the minimum phase of the window.
        while recent and recent[-1][1] >= phase:
            recent.pop()
        recent.append((arrival_s, phase))
        while recent[0][0] < arrival_s - self.window_s:
            recent.popleft()
        jitter = phase - recent[0][1]
        self.window.add(jitter)
        return jitter

    def reset_window(self) -> MsHistogram:
        """Start a new measurement window; returns the one that ended."""
        ended, self.window = self.window, MsHistogram()
        return ended


class LatenessMeter:
    """Lateness of one stream's outbound media against the listener's playout ticks (see the
    module docstring); ``window`` holds the histogram since the last :meth:`reset_window`."""

    def __init__(self) -> None:
        self._dry_since: float | None = None  # deadline of the first tick of an underrun
        self.window = MsHistogram()

    def ran_dry(self, deadline_s: float) -> None:
        """A playout tick due at ``deadline_s`` found the buffer empty (not the simulator's
        fault)."""
        if self._dry_since is None:
            self._dry_since = deadline_s

    def media(self, arrival_s: float) -> float:
        """Account one media message (same clock as the ticks); returns its lateness in ms."""
        lateness = 0.0
        if self._dry_since is not None:
            lateness = max(0.0, (arrival_s - self._dry_since) * 1000.0)
            self._dry_since = None
        self.window.add(lateness)
        return lateness

    def reset_window(self) -> MsHistogram:
        ended, self.window = self.window, MsHistogram()
        return ended


class ToneOnsets:
    """Onsets of ``freqs_hz`` in played frames (see the module docstring)."""

    def __init__(
        self, freqs_hz: tuple[float, ...], threshold_dbfs: float = -45.0, gap_frames: int = 10
    ) -> None:
        self.freqs_hz = freqs_hz
        n = np.arange(FRAME_SAMPLES)
        angles = 2 * np.pi * np.outer(n, freqs_hz) / RATE
        # Amplitude of a full-scale sine at f = 1.0 after this scaling.
        scale = 2.0 / FRAME_SAMPLES / 32768.0
        self._basis: npt.NDArray[np.float64] = np.hstack([np.cos(angles), np.sin(angles)]) * scale
        self._threshold = 10 ** (threshold_dbfs / 20)
        self._gap = gap_frames
        self._quiet = np.full(len(freqs_hz), gap_frames, np.int64)  # frames below, so far
        self.onsets: dict[float, list[float]] = {f: [] for f in freqs_hz}

    def frame(self, pcm: npt.NDArray[np.int16] | None, at: float) -> None:
        """One played frame (None: silence) at wall-clock ``at``."""
        if pcm is None:
            self._quiet += 1
            return
        parts = pcm.astype(np.float64) @ self._basis
        k = len(self.freqs_hz)
        loud = np.hypot(parts[:k], parts[k:]) > self._threshold
        for index in np.flatnonzero(loud & (self._quiet >= self._gap)):
            self.onsets[self.freqs_hz[index]].append(at)
        self._quiet = np.where(loud, 0, self._quiet + 1)

    def take(self) -> dict[str, list[float]]:
        """Onsets since the last call, by frequency (JSON keys), then forgotten."""
        taken = {f"{f:g}": times for f, times in self.onsets.items()}
        self.onsets = {f: [] for f in self.freqs_hz}
        return taken
