"""Tones and their analysis: simulators and end-to-end tests tell listeners apart by frequency.

Not on the call path; the daemon never imports this module.
"""

from __future__ import annotations

import math

import numpy as np

from callbridge.audio import INT16_MAX, TWILIO_RATE, Pcm, to_int16

__all__ = ["band_energy_db", "dominant_frequency", "sine", "tone_power_db"]


def sine(freq_hz: float, duration_s: float, rate: int = TWILIO_RATE, amplitude: float = 0.5) -> Pcm:
    """A sine starting at phase 0; ``amplitude`` is a fraction of full scale (0..1)."""
    n = round(duration_s * rate)
    t = np.arange(n, dtype=np.float64) / rate
    return to_int16(amplitude * INT16_MAX * np.sin(2.0 * math.pi * freq_hz * t))


def tone_power_db(pcm: Pcm, freq_hz: float, rate: int = TWILIO_RATE) -> float:
    """Level of the ``freq_hz`` component in dBFS (a full-scale sine reads 0 dB).

    A single-bin DFT (what a Goertzel filter computes) over a Hann window normalised by its
    coherent gain, so the amplitude of a stationary tone is exact and neighbouring tones leak
    little (sidelobes fall 18 dB/octave). Use windows of 100 ms or more to separate tones a few
    hundred Hz apart. Silence reads -200 dB (the floor, instead of -inf).
    """
    n = len(pcm)
    if n == 0:
        return -200.0
    window = np.hanning(n)
    phase = np.exp(-2j * math.pi * freq_hz / rate * np.arange(n))
    bin_value = np.dot(pcm.astype(np.float64) * window, phase)
    amplitude = 2.0 * abs(bin_value) / window.sum()
    return _amplitude_db(amplitude)


def band_energy_db(pcm: Pcm, lo_hz: float, hi_hz: float, rate: int = TWILIO_RATE) -> float:
    """RMS level of the energy between ``lo_hz`` and ``hi_hz`` in dB re a full-scale sine.

    A full-scale sine inside the band reads ~0 dB; summing FFT bins makes this robust to the
    exact tone frequency (e.g. ``band_energy_db(x, 1200, 1400)`` for "heard Spanish").
    """
    n = len(pcm)
    if n == 0:
        return -200.0
    window = np.hanning(n)
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * window)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    power = float(spectrum[(freqs >= lo_hz) & (freqs <= hi_hz)].sum())
    # Parseval with the Hann window's energy: a sine of amplitude A gives A^2/2 * sum(w^2) * n/2.
    amplitude = math.sqrt(max(power, 0.0) * 4.0 / (n * float((window**2).sum()))) if power else 0.0
    return _amplitude_db(amplitude)


def dominant_frequency(pcm: Pcm, rate: int = TWILIO_RATE) -> float:
    """Frequency (Hz) of the strongest spectral peak, refined by parabolic interpolation."""
    n = len(pcm)
    if n < 4:
        return 0.0
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(n)))
    spectrum[0] = 0.0  # DC offset is not a tone
    k = int(np.argmax(spectrum))
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denom = a - 2.0 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
    else:
        offset = 0.0
    return float((k + offset) * rate / n)


def _amplitude_db(amplitude: float) -> float:
    if amplitude <= 0.0:
        return -200.0
    return max(-200.0, 20.0 * math.log10(amplitude / INT16_MAX))
