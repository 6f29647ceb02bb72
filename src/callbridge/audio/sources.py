"""Audio we play that nobody speaks: the hold chime and WAV files."""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import Final

import numpy as np

from callbridge.audio.frames import INT16_MAX, TWILIO_FRAME_SAMPLES, TWILIO_RATE, Pcm
from callbridge.audio.levels import to_int16
from callbridge.audio.resample import Resampler
from callbridge.errors import ConfigError

__all__ = ["hold_chime", "load_hold_audio", "read_wav_mono", "write_wav"]


# Bell partials (ratio to the strike note, relative level, decay time constant in s). Inharmonic
# upper partials make it sound like a soft bell rather than a beep; all stay below 3.4 kHz.
_BELL_PARTIALS: Final = ((1.0, 1.0, 0.9), (2.0, 0.35, 0.5), (2.76, 0.18, 0.3), (4.07, 0.06, 0.2))
# (start s, note Hz): a gentle descending-then-resolving figure, 4 s long, loops seamlessly.
_CHIME_NOTES: Final = ((0.0, 659.25), (0.5, 523.25), (1.0, 587.33), (1.5, 392.0))
_CHIME_LENGTH_S: Final = 4.0
_CHIME_PEAK: Final = 0.2  # of full scale (about -14 dBFS): background, not an alarm
_CHIME_FADE_S: Final = 0.01  # attack of each strike
_CHIME_TAIL_FADE_S: Final = 1.5  # fade-out of the whole pattern
_CHIME_REST_S: Final = 0.25  # exact silence at the end of each loop


def hold_chime(rate: int = TWILIO_RATE) -> Pcm:
    """A loopable 4 s pattern of four soft bell strikes followed by a rest, at low level.

    Each strike has a 10 ms attack (no click) and decays exponentially; the pattern fades to
    exact silence before the end, so looping it back to back has no seam.
    """
    n = round(_CHIME_LENGTH_S * rate)
    out = np.zeros(n, dtype=np.float64)
    for start_s, note in _CHIME_NOTES:
        first = round(start_s * rate)
        t = np.arange(n - first, dtype=np.float64) / rate
        strike = np.zeros_like(t)
        for ratio, level, tau in _BELL_PARTIALS:
            strike += level * np.exp(-t / tau) * np.sin(2.0 * math.pi * note * ratio * t)
        strike *= np.minimum(1.0, t / _CHIME_FADE_S)
        out[first:] += strike
    # Raised-cosine fade to exact silence, then a rest, so the loop point has no seam.
    fade_end = round((_CHIME_LENGTH_S - _CHIME_REST_S) * rate)
    fade = round(_CHIME_TAIL_FADE_S * rate)
    out[fade_end - fade : fade_end] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, fade))
    out[fade_end:] = 0.0
    out *= _CHIME_PEAK * INT16_MAX / np.max(np.abs(out))
    return to_int16(out)


def read_wav_mono(path: str | Path, rate: int = TWILIO_RATE) -> Pcm:
    """Read a 16-bit PCM WAV as mono int16 at ``rate`` (channels averaged, resampled if needed).

    Error handling: a missing file raises ``FileNotFoundError``; a file that is not 16-bit PCM WAV
    raises ``ValueError`` naming the path and the problem.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, file_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        msg = f"{path}: not a readable PCM WAV file ({exc})"
        raise ValueError(msg) from exc
    if width != 2:
        msg = f"{path}: need 16-bit samples, got {8 * width}-bit"
        raise ValueError(msg)
    pcm = np.frombuffer(frames, dtype="<i2").astype(np.int16)
    if channels > 1:
        pcm = to_int16(pcm.reshape(-1, channels).mean(axis=1))
    if file_rate == rate:
        return pcm
    resampler = Resampler(file_rate, rate)
    return np.concatenate((resampler.process(pcm), resampler.flush()))


def write_wav(path: str | Path, pcm: Pcm, rate: int = TWILIO_RATE) -> None:
    """Write mono int16 PCM as a 16-bit WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())


def load_hold_audio(path: str) -> Pcm:
    """The hold loop: the WAV at ``path`` (``media.hold_audio``), or the built-in chime for "".

    Error handling: a file that cannot be used raises ``ConfigError`` naming the setting, so a
    broken setting stops the daemon at start instead of failing every call.
    """
    if not path:
        return hold_chime()
    try:
        pcm = read_wav_mono(path)
    except (OSError, ValueError, EOFError) as exc:
        msg = f"media.hold_audio: cannot use {path!r}: {exc}"
        raise ConfigError([msg]) from exc
    if len(pcm) < TWILIO_FRAME_SAMPLES:
        msg = f"media.hold_audio: {path!r} is shorter than one 20 ms frame"
        raise ConfigError([msg])
    return pcm
