"""Pure DSP for callbridge: G.711 mu-law, streaming resamplers, gains, tones and WAV helpers.

Inside callbridge PCM is a 1-D ``numpy.ndarray`` of dtype int16 (``Pcm``). Twilio legs carry
8 kHz mu-law in 20 ms frames; Palabra takes and returns 24 kHz PCM s16le.

Nothing here does I/O except :func:`read_wav_mono` and :func:`write_wav`.

mu-law follows the ITU-T G.191 reference implementation of G.711 (STL ``g711.c``,
``ulaw_compress``/``ulaw_expand``): negative samples take their magnitude as a one's complement,
so the encoder is exactly symmetric. The deprecated ``audioop.lin2ulaw`` (Sun ``g711.c``) uses a
two's complement there and differs by one quantisation step for 508 of the 65,536 negative
inputs that sit on a decision boundary; decoding is identical.

Resampling must be stateful (stack-notes §3.4-3.6): one :class:`Resampler` per direction per leg,
fed every chunk in order. Resampling each 20 ms chunk on its own leaves a 50 Hz buzz of frame-edge
errors, and filterless converters (linear, zero-order hold) fold 4-12 kHz into the phone band.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import Final, TypeAlias

import attrs
import numpy as np
import samplerate
from numpy.typing import NDArray

__all__ = [
    "FRAME_MS",
    "INT16_MAX",
    "PALABRA_FRAME_BYTES",
    "PALABRA_FRAME_SAMPLES",
    "PALABRA_RATE",
    "TWILIO_FRAME_BYTES",
    "TWILIO_FRAME_SAMPLES",
    "TWILIO_RATE",
    "Pcm",
    "PcmFifo",
    "Resampler",
    "band_energy_db",
    "db_to_gain",
    "dominant_frequency",
    "downsampler_24k_to_8k",
    "hold_chime",
    "read_wav_mono",
    "samples_to_ms",
    "sine",
    "to_int16",
    "tone_power_db",
    "ulaw_decode",
    "ulaw_encode",
    "upsampler_8k_to_24k",
    "write_wav",
]

Pcm: TypeAlias = NDArray[np.int16]

TWILIO_RATE: Final = 8000  # Hz, mu-law on both Twilio legs
PALABRA_RATE: Final = 24000  # Hz, PCM s16le to and from Palabra
FRAME_MS: Final = 20  # ms per media frame (Twilio's inbound packetisation)
TWILIO_FRAME_SAMPLES: Final = TWILIO_RATE * FRAME_MS // 1000  # 160 samples per 20 ms at 8 kHz
TWILIO_FRAME_BYTES: Final = TWILIO_FRAME_SAMPLES  # mu-law: one byte per sample
PALABRA_FRAME_SAMPLES: Final = PALABRA_RATE * FRAME_MS // 1000  # 480 samples per 20 ms at 24 kHz
PALABRA_FRAME_BYTES: Final = PALABRA_FRAME_SAMPLES * 2  # s16le: two bytes per sample
INT16_MAX: Final = 32767  # full scale for dBFS figures

# libsamplerate's cheapest converter that still has a real anti-alias sinc filter:
# ~35 us per 20 ms frame, -103 dB alias rejection at 24k->8k, 2.5 ms latency (stack-notes §4).
_CONVERTER: Final = "sinc_fastest"


# ---------------------------------------------------------------------------------------------
# G.711 mu-law


def _ulaw_decode_table() -> NDArray[np.int16]:
    # ulaw_expand: magnitude = ((mantissa << 3) + 0x84) << exponent) - 0x84 on the inverted code.
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> NDArray[np.uint8]:
    # Indexed by the int16 sample viewed as uint16, so encoding is one fancy-index.
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x)
    absno = np.where(x < 0, (~x) >> 2, x >> 2) + 33  # one's complement for negatives (G.191)
    absno = np.minimum(absno, 0x1FFF)
    # segno = 1 + bit length of (absno >> 6); absno >> 6 < 128 so a small table does it.
    bit_length = np.array([int(v).bit_length() for v in range(128)], dtype=np.int32)
    segno = 1 + bit_length[absno >> 6]
    high = 8 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    table: NDArray[np.uint8] = code.astype(np.uint8)
    return table


# Module constants, never mutated: the flags make an accidental write raise.
_ULAW_DECODE: Final = _ulaw_decode_table()
_ULAW_ENCODE: Final = _ulaw_encode_table()
_ULAW_DECODE.flags.writeable = False
_ULAW_ENCODE.flags.writeable = False


def ulaw_decode(payload: bytes) -> Pcm:
    """G.711 mu-law bytes -> int16 PCM (one sample per byte). Returns a new array."""
    pcm: Pcm = _ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]
    return pcm


def ulaw_encode(pcm: Pcm) -> bytes:
    """int16 PCM -> G.711 mu-law bytes (one byte per sample).

    Error handling: a dtype other than int16 raises ``TypeError`` (a float array would be
    reinterpreted as garbage by the uint16 view).
    """
    if pcm.dtype != np.int16:
        msg = f"ulaw_encode needs int16 PCM, got {pcm.dtype}"
        raise TypeError(msg)
    return _ULAW_ENCODE[pcm.view(np.uint16)].tobytes()


# ---------------------------------------------------------------------------------------------
# Conversions and gains


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


# ---------------------------------------------------------------------------------------------
# Streaming resampling


@attrs.define
class Resampler:
    """A stateful streaming resampler: one persistent libsamplerate ``sinc_fastest`` converter.

    Feed every chunk of one stream, in order, to the same instance; any input length is accepted
    and the output length varies (libsamplerate withholds ~2.5 ms at the start as filter delay,
    then yields ``len(x) * ratio`` on average). Frame the output with :class:`PcmFifo`.

    ``flush()`` pushes out the withheld tail at the end of an utterance and resets the filter,
    so the instance can start a fresh stream.

    Resource handling: owns a small native converter state, freed with the object.
    """

    in_rate: int
    out_rate: int
    _ratio: float = attrs.field(init=False)
    _converter: samplerate.Resampler = attrs.field(init=False)
    _samples_in: int = attrs.field(init=False, default=0)
    _samples_out: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if self.in_rate <= 0 or self.out_rate <= 0:
            msg = f"sample rates must be positive, got {self.in_rate} -> {self.out_rate}"
            raise ValueError(msg)
        self._ratio = self.out_rate / self.in_rate
        self._converter = samplerate.Resampler(_CONVERTER, channels=1)

    def process(self, pcm: Pcm) -> Pcm:
        """Resample the next chunk of the stream; returns whatever output is ready (may be empty)."""
        if len(pcm) == 0:
            return np.zeros(0, dtype=np.int16)
        # float32 in int16 scale: libsamplerate is linear, so no normalisation is needed.
        out = self._converter.process(pcm.astype(np.float32), self._ratio, False)
        self._samples_in += len(pcm)
        self._samples_out += len(out)
        return to_int16(out)

    def flush(self) -> Pcm:
        """End the stream: return the withheld filter tail and reset for a new stream.

        The stream's total output then equals a one-shot conversion of the whole input
        (``floor(samples_in * out_rate / in_rate)`` samples, identical values).
        """
        # libsamplerate's end_of_input does nothing without input, so feed the zeros it would
        # assume past the end until the one-shot length is reached, and cut the excess.
        wanted = self._samples_in * self.out_rate // self.in_rate - self._samples_out
        pad = np.zeros(max(64, math.ceil(wanted / self._ratio) + 64), dtype=np.float32)
        parts: list[NDArray[np.float32]] = []
        got = 0
        while got < wanted:
            part = self._converter.process(pad, self._ratio, False)
            parts.append(part)
            got += len(part)
        self.reset()
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return to_int16(np.concatenate(parts)[:wanted])

    def reset(self) -> None:
        """Forget all state (drops the withheld tail); the next chunk starts a fresh stream."""
        self._converter.reset()
        self._samples_in = self._samples_out = 0


def upsampler_8k_to_24k() -> Resampler:
    """Twilio (8 kHz) -> Palabra (24 kHz), one per speaking leg."""
    return Resampler(TWILIO_RATE, PALABRA_RATE)


def downsampler_24k_to_8k() -> Resampler:
    """Palabra (24 kHz) -> Twilio (8 kHz), one per listening leg; its sinc filter anti-aliases."""
    return Resampler(PALABRA_RATE, TWILIO_RATE)


# ---------------------------------------------------------------------------------------------
# Framing


@attrs.define
class PcmFifo:
    """A bounded int16 sample FIFO on a preallocated ring: push any length, pop fixed frames.

    When a push would exceed ``capacity`` the OLDEST samples are dropped (so latency never grows
    past ``capacity``) and ``push`` returns how many were dropped.
    """

    capacity: int
    _buf: Pcm = attrs.field(init=False)
    _start: int = attrs.field(init=False, default=0)
    _size: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if self.capacity <= 0:
            msg = f"PcmFifo capacity must be positive, got {self.capacity}"
            raise ValueError(msg)
        self._buf = np.zeros(self.capacity, dtype=np.int16)

    def __len__(self) -> int:
        return self._size

    def push(self, pcm: Pcm) -> int:
        """Append ``pcm`` (copied); return the number of old samples dropped to make room."""
        n = len(pcm)
        if n >= self.capacity:
            dropped = self._size + n - self.capacity
            self._buf[:] = pcm[n - self.capacity :]
            self._start, self._size = 0, self.capacity
            return dropped
        dropped = max(0, self._size + n - self.capacity)
        if dropped:
            self._start = (self._start + dropped) % self.capacity
            self._size -= dropped
        end = (self._start + self._size) % self.capacity
        first = min(n, self.capacity - end)
        self._buf[end : end + first] = pcm[:first]
        self._buf[: n - first] = pcm[first:]
        self._size += n
        return dropped

    def pop_into(self, out: Pcm) -> int:
        """Move up to ``len(out)`` oldest samples into ``out``; zero the rest; return the count."""
        n = min(len(out), self._size)
        first = min(n, self.capacity - self._start)
        out[:first] = self._buf[self._start : self._start + first]
        out[first:n] = self._buf[: n - first]
        out[n:] = 0
        self._start = (self._start + n) % self.capacity
        self._size -= n
        return n

    def pop(self, n: int) -> Pcm | None:
        """Pop exactly ``n`` samples, or ``None`` (and pop nothing) if fewer are buffered."""
        if self._size < n:
            return None
        out = np.empty(n, dtype=np.int16)
        self.pop_into(out)
        return out

    def clear(self) -> int:
        """Drop everything; return how many samples were dropped."""
        dropped, self._start, self._size = self._size, 0, 0
        return dropped


# ---------------------------------------------------------------------------------------------
# Tones and analysis (simulators and end-to-end tests tell listeners apart by frequency)


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


# ---------------------------------------------------------------------------------------------
# Hold audio


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


# ---------------------------------------------------------------------------------------------
# WAV files


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
