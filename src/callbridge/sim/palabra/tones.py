"""Tone-mode speech: a sine per target language, cut into Palabra's 200 ms output chunks.

Tests tell who heard what by frequency (the brief's table), so the tone depends only on the
TARGET language of a translation. A short raised-cosine fade at both ends avoids clicks that would
otherwise smear energy over every frequency and confuse a spectral check.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_S",
    "DEFAULT_TONE_HZ",
    "OUTPUT_RATE",
    "TONE_HZ",
    "split_chunks",
    "tone_for",
    "tone_pcm",
]

OUTPUT_RATE = 24000  # Palabra's output: PCM s16le, 24 kHz, mono ("fixed by the server")
CHUNK_S = 0.2  # output_audio_data carries 200 ms per chunk (observed live)
CHUNK_BYTES = int(OUTPUT_RATE * CHUNK_S) * 2  # 4800 samples = 9600 bytes
TONE_HZ: dict[str, float] = {"en": 2000.0, "es": 1300.0, "ru": 1300.0, "de": 1500.0, "fr": 1700.0}
DEFAULT_TONE_HZ = 1100.0
_AMPLITUDE = 0.3  # of full scale: loud enough for any VAD, far from clipping when mixed
_FADE_S = 0.01


def tone_for(language: str) -> float:
    """Tone of a target language; regional variants (``es-mx``) use their base language."""
    base = language.lower().replace("_", "-").split("-")[0]
    return TONE_HZ.get(base, DEFAULT_TONE_HZ)


def tone_pcm(frequency_hz: float, duration_s: float, *, rate: int = OUTPUT_RATE) -> bytes:
    """A faded sine as PCM s16le mono bytes."""
    count = max(1, round(duration_s * rate))
    t = np.arange(count, dtype=np.float64) / rate
    wave = np.sin(2.0 * np.pi * frequency_hz * t) * _AMPLITUDE
    fade = min(round(_FADE_S * rate), count // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    samples: np.ndarray = np.round(wave * 32767.0).astype("<i2")
    return samples.tobytes()


def split_chunks(pcm: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    """Cut into equal chunks; the last one is padded with silence to the full size."""
    if not pcm:
        return [bytes(chunk_bytes)]
    chunks = [pcm[i : i + chunk_bytes] for i in range(0, len(pcm), chunk_bytes)]
    chunks[-1] = chunks[-1].ljust(chunk_bytes, b"\x00")
    return chunks
