"""Conversions between sample scales, gains and durations."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from callbridge.audio.frames import TWILIO_RATE, Pcm

__all__ = ["db_to_gain", "samples_to_ms", "to_int16"]


def to_int16(samples: NDArray[np.floating]) -> Pcm:
    """Round float samples (int16 scale) to int16, saturating instead of wrapping."""
    out = np.rint(samples)
    np.clip(out, -32768, 32767, out=out)
    pcm: Pcm = out.astype(np.int16)
    return pcm


def db_to_gain(db: float | None) -> float:
    """Decibels -> linear amplitude gain; ``None`` means the source is off (gain 0.0)."""
    if db is None:
        return 0.0
    return float(10.0 ** (db / 20.0))


def samples_to_ms(samples: int, rate: int = TWILIO_RATE) -> float:
    """Duration of ``samples`` at ``rate`` in milliseconds."""
    return samples * 1000.0 / rate
