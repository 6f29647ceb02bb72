"""What a simulated phone said and heard, frame by frame, with wall-clock times."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import attrs
import numpy as np
from numpy.typing import NDArray

from callbridge.audio import ulaw_decode
from callbridge.sim.analysis import tone_power_db

FRAME = 160


@attrs.frozen(eq=False)
class Timeline:
    times: NDArray[np.float64]  # wall-clock time each frame was said / played
    frames: NDArray[np.int16]  # shape (n, 160)

    @classmethod
    def load(cls, path: Path) -> Timeline:
        body = json.loads(path.read_text(encoding="utf-8"))
        pcm = ulaw_decode(base64.b64decode(body["mulaw"]))
        return cls(np.asarray(body["times"], dtype=np.float64), pcm.reshape(-1, FRAME))

    def level_db(self, freq_hz: float) -> NDArray[np.float64]:
        """Each frame's level at ``freq_hz`` (dBFS)."""
        return np.array([tone_power_db(frame, freq_hz) for frame in self.frames])

    def window(self, start: float, end: float) -> Timeline:
        keep = (self.times >= start) & (self.times <= end)
        return Timeline(self.times[keep], self.frames[keep])

    def audio(self) -> NDArray[np.int16]:
        return self.frames.reshape(-1)

    def onsets(self, freq_hz: float, threshold_db: float) -> list[float]:
        """Times of the frames where the tone rises above ``threshold_db`` after being below it."""
        loud = self.level_db(freq_hz) > threshold_db
        rising = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
        return [float(self.times[i]) for i in rising]

    def first_after(self, t: float, freq_hz: float, threshold_db: float) -> float | None:
        """The first frame at or after ``t`` in which the tone is above ``threshold_db``."""
        after = self.window(t, float("inf"))
        loud = np.flatnonzero(after.level_db(freq_hz) > threshold_db)
        return float(after.times[loud[0]]) if len(loud) else None
