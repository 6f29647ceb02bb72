"""Real-time pacing checks on the input audio, and audio time -> wall time mapping.

The real service consumes audio at wall-clock speed and warns when a client drifts
(https://docs.palabra.ai/docs/streaming_api; the thresholds are not documented anywhere, so
these are ours):

- ``AUDIO_STREAM_TOO_FAST``: the audio received since the stream (re)started leads the wall clock
  by more than ``max(too_fast_lead_s, one chunk + 100 ms)``. A correctly paced client that sends
  each chunk on schedule ("first chunk immediate", the v2 SDK's ``paced_chunks``) leads by at
  most one chunk, so it never trips this; the extra 100 ms absorbs loopback and scheduler jitter.
- ``AUDIO_STREAM_TOO_SLOW``: chunks keep arriving but the audio lags the wall clock by more than
  ``too_slow_lag_s``. After the warning the baseline restarts, so the next one needs fresh drift.
- ``AUDIO_STREAM_STALLED``: no chunk for ``stall_after_s`` (once per gap). The next chunk restarts
  the baseline, because the real recognizer does not get the lost time back either.

Each code is sent at most once per ``repeat_s``.
"""

from __future__ import annotations

import bisect

import attrs

__all__ = ["STALLED", "TOO_FAST", "TOO_SLOW", "AudioTimeline", "PacingMonitor"]

TOO_FAST = "AUDIO_STREAM_TOO_FAST"
TOO_SLOW = "AUDIO_STREAM_TOO_SLOW"
STALLED = "AUDIO_STREAM_STALLED"
_JITTER_S = 0.1


@attrs.define
class PacingMonitor:
    too_fast_lead_s: float = 0.4
    too_slow_lag_s: float = 1.0
    stall_after_s: float = 1.0
    repeat_s: float = 1.0
    _anchor_at: float | None = None
    _anchor_audio: float = 0.0
    _audio_s: float = 0.0
    _last_chunk_at: float | None = None
    _stalled: bool = False
    _last_sent: dict[str, float] = attrs.Factory(dict)

    def reset(self) -> None:
        """Forget the baseline (pause/resume): the next chunk starts a new one."""
        self._anchor_at = None
        self._last_chunk_at = None
        self._stalled = False

    def on_chunk(self, now: float, duration_s: float) -> str | None:
        """Account one chunk received at ``now`` (trio clock); return a warning code or None."""
        gap = None if self._last_chunk_at is None else now - self._last_chunk_at
        if self._anchor_at is None or (gap is not None and gap > self.stall_after_s):
            self._anchor_at, self._anchor_audio = now, self._audio_s
        self._audio_s += duration_s
        self._last_chunk_at = now
        self._stalled = False
        lead = (self._audio_s - self._anchor_audio) - (now - self._anchor_at)
        if lead > max(self.too_fast_lead_s, duration_s + _JITTER_S):
            return self._throttle(TOO_FAST, now)
        if -lead > self.too_slow_lag_s:
            self._anchor_at, self._anchor_audio = now, self._audio_s
            return self._throttle(TOO_SLOW, now)
        return None

    def check_stall(self, now: float) -> str | None:
        if self._last_chunk_at is None or self._stalled:
            return None
        if now - self._last_chunk_at > self.stall_after_s:
            self._stalled = True
            return self._throttle(STALLED, now)
        return None

    def _throttle(self, code: str, now: float) -> str | None:
        last = self._last_sent.get(code)
        if last is not None and now - last < self.repeat_s:
            return None
        self._last_sent[code] = now
        return code


@attrs.define
class AudioTimeline:
    """Maps audio time to the wall time it was 'spoken' at.

    A chunk covering audio [a, b) that arrives at wall time w was, for a real-time client, spoken
    over [w - (b - a), w); so audio time x inside it maps to ``w - (b - x)``. Only the last few
    hundred chunks are kept.
    """

    _ends: list[float] = attrs.Factory(list)
    _walls: list[float] = attrs.Factory(list)
    _keep: int = 2000

    def add(self, audio_end_s: float, wall: float) -> None:
        self._ends.append(audio_end_s)
        self._walls.append(wall)
        if len(self._ends) > 2 * self._keep:
            del self._ends[: self._keep]
            del self._walls[: self._keep]

    def wall_at(self, audio_s: float) -> float | None:
        if not self._ends:
            return None
        i = min(bisect.bisect_left(self._ends, audio_s), len(self._ends) - 1)
        return self._walls[i] - (self._ends[i] - audio_s)
