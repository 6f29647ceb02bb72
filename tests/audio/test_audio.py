"""callbridge.audio: G.711, streaming resamplers, gains, tones, hold chime, WAV files, FIFO."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import samplerate

from callbridge import audio
from callbridge.audio import (
    PcmFifo,
    Resampler,
    db_to_gain,
    downsampler_24k_to_8k,
    g711,
    hold_chime,
    read_wav_mono,
    to_int16,
    ulaw_decode,
    ulaw_encode,
    upsampler_8k_to_24k,
    write_wav,
)
from callbridge.sim.analysis import band_energy_db, dominant_frequency, sine, tone_power_db

# --- An independent G.711 reference: a loop-by-loop transcription of the ITU-T G.191 STL
# g711.c (ulaw_compress / ulaw_expand), deliberately sharing no code with the numpy tables.


def ref_ulaw_compress(sample: int) -> int:
    absno = (((~sample) >> 2) + 33) if sample < 0 else ((sample >> 2) + 33)
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    if sample >= 0:
        code |= 0x0080
    return code


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x0080 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


class TestUlaw:
    def test_decode_matches_g711_for_all_256_codes(self) -> None:
        got = ulaw_decode(bytes(range(256)))
        assert got.dtype == np.int16
        assert got.tolist() == [ref_ulaw_expand(c) for c in range(256)]

    def test_encode_matches_g711_for_all_65536_inputs(self) -> None:
        pcm = np.arange(-32768, 32768, dtype=np.int16)
        got = ulaw_encode(pcm)
        assert isinstance(got, bytes)
        assert list(got) == [ref_ulaw_compress(s) for s in range(-32768, 32768)]

    def test_reference_spot_values(self) -> None:
        """Guards the reference itself with well-known G.711 facts."""
        assert ref_ulaw_compress(0) == 0xFF  # positive zero
        assert ref_ulaw_compress(-1) == 0x7F  # one's complement: -1 is negative zero
        assert ref_ulaw_expand(0x00) == -32124  # largest negative
        assert ref_ulaw_expand(0x80) == 32124
        assert ref_ulaw_expand(0xFF) == 0

    def test_encode_of_decode_is_identity_except_negative_zero(self) -> None:
        codes = bytes(range(256))
        again = ulaw_encode(ulaw_decode(codes))
        assert [c for c, d in zip(codes, again, strict=True) if c != d] == [0x7F]

    def test_encode_rejects_non_int16(self) -> None:
        with pytest.raises(TypeError, match="int16"):
            ulaw_encode(np.zeros(4, dtype=np.float32))

    def test_tables_are_read_only(self) -> None:
        with pytest.raises(ValueError, match="read-only"):
            g711._ULAW_DECODE[0] = 1


def test_constants() -> None:
    assert (audio.TWILIO_RATE, audio.PALABRA_RATE, audio.FRAME_MS) == (8000, 24000, 20)
    assert audio.TWILIO_FRAME_SAMPLES == audio.TWILIO_FRAME_BYTES == 160
    assert audio.PALABRA_FRAME_SAMPLES == 480
    assert audio.PALABRA_FRAME_BYTES == 960


# --- Resampling


def _stream(resampler: Resampler, x: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.process(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(parts)


def _one_shot(x: np.ndarray, ratio: float) -> np.ndarray:
    out: np.ndarray = samplerate.resample(x.astype(np.float32), ratio, "sinc_fastest")
    return out.astype(np.float64)


def _max_err_dbfs(a: np.ndarray, b: np.ndarray) -> float:
    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return 20 * math.log10(max(err, 1e-9) / 32768)


class TestResampler:
    @pytest.mark.parametrize(
        ("make", "rate", "ratio"),
        [(upsampler_8k_to_24k, 8000, 3.0), (downsampler_24k_to_8k, 24000, 1 / 3)],
    )
    def test_20ms_chunks_match_one_shot(self, make: object, rate: int, ratio: float) -> None:
        x = sine(1000, 2.0, rate, amplitude=0.5)
        resampler = make()  # type: ignore[operator]
        streamed = _stream(resampler, x, rate // 50)
        reference = _one_shot(x, ratio)
        # The streaming converter withholds its filter delay (~2.5 ms) until flushed.
        assert len(reference) - 100 < len(streamed) < len(reference)
        assert _max_err_dbfs(streamed, reference[: len(streamed)]) < -80.0
        tail = resampler.flush()
        whole = np.concatenate((streamed, tail))
        assert len(whole) == len(reference)
        assert _max_err_dbfs(whole, reference) < -80.0

    def test_odd_chunk_sizes_still_match(self) -> None:
        x = sine(1000, 1.0, 24000, amplitude=0.5)
        down = downsampler_24k_to_8k()
        sizes = [7, 333, 1, 480, 1001, 2]
        parts, i, k = [], 0, 0
        while i < len(x):
            parts.append(down.process(x[i : i + sizes[k % len(sizes)]]))
            i += sizes[k % len(sizes)]
            k += 1
        parts.append(down.flush())
        whole = np.concatenate(parts)
        reference = _one_shot(x, 1 / 3)
        assert len(whole) == len(reference)
        assert _max_err_dbfs(whole, reference) < -80.0

    def test_stateless_per_chunk_resampling_fails_the_same_check(self) -> None:
        """Shows the continuity check bites: per-chunk resampling clicks at every frame edge."""
        x = sine(1000, 1.0, 8000, amplitude=0.5)
        chunks = [_one_shot(x[i : i + 160], 3.0) for i in range(0, len(x), 160)]
        stateless = np.concatenate(chunks)
        reference = _one_shot(x, 3.0)
        assert _max_err_dbfs(stateless[:23000], reference[:23000]) > -60.0

    def test_flush_resets_for_a_new_stream(self) -> None:
        up = upsampler_8k_to_24k()
        x = sine(700, 0.5, 8000)
        first = np.concatenate((_stream(up, x, 160), up.flush()))
        second = np.concatenate((_stream(up, x, 160), up.flush()))
        assert np.array_equal(first, second)

    def test_output_is_int16_and_saturates(self) -> None:
        up = upsampler_8k_to_24k()
        square = np.tile(np.array([32767] * 4 + [-32768] * 4, dtype=np.int16), 200)
        out = _stream(up, square, 160)
        assert out.dtype == np.int16
        # Gibbs overshoot of a full-scale square would wrap without saturation.
        assert out.max() == 32767
        assert out.min() == -32768

    def test_empty_input(self) -> None:
        up = upsampler_8k_to_24k()
        assert len(up.process(np.zeros(0, dtype=np.int16))) == 0
        assert len(up.flush()) == 0

    def test_anti_alias_6khz_is_40db_below_1khz(self) -> None:
        # 8000-sample slices: 1 Hz bins, so both tones sit exactly on a bin.
        one = _stream(downsampler_24k_to_8k(), sine(1000, 2.0, 24000, 0.5), 480)[400:8400]
        six = _stream(downsampler_24k_to_8k(), sine(6000, 2.0, 24000, 0.5), 480)[400:8400]
        # 6 kHz folds to 2 kHz at 8 kHz; measure with plain FFT bins (independent of helpers).
        level_1k = _fft_peak(one, 1000, 8000)
        level_alias = _fft_peak(six, 2000, 8000)
        assert level_1k > -7.0
        assert level_alias - level_1k < -40.0

    def test_upsampling_images_are_40db_down(self) -> None:
        out = _stream(upsampler_8k_to_24k(), sine(1000, 2.0, 8000, 0.5), 160)[1200:25200]
        assert _fft_peak(out, 1000, 24000) > -7.0
        # Zero-stuffing would put images at 7 kHz and 9 kHz.
        assert _fft_peak(out, 7000, 24000) < -47.0
        assert _fft_peak(out, 9000, 24000) < -47.0

    def test_rejects_bad_rates(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            Resampler(0, 8000)


def _fft_peak(pcm: np.ndarray, freq: float, rate: int) -> float:
    """dBFS of the largest FFT bin within 20 Hz of ``freq`` (Hann window, coherent gain)."""
    n = len(pcm)
    window = np.hanning(n)
    spectrum = np.abs(np.fft.rfft(pcm * window)) * 2 / window.sum()
    freqs = np.fft.rfftfreq(n, 1 / rate)
    peak = float(spectrum[np.abs(freqs - freq) <= 20].max())
    return 20 * math.log10(max(peak, 1e-9) / 32767)


# --- Gains, conversions, tone analysis


def test_db_to_gain() -> None:
    assert db_to_gain(None) == 0.0
    assert db_to_gain(0.0) == 1.0
    assert db_to_gain(20.0) == pytest.approx(10.0)
    assert db_to_gain(-6.0) == pytest.approx(0.501187, rel=1e-5)
    assert db_to_gain(-60.0) == pytest.approx(0.001)


def test_to_int16_rounds_and_saturates() -> None:
    got = to_int16(np.array([0.4, 0.6, -0.6, 40000.0, -40000.0, 32767.4]))
    assert got.tolist() == [0, 1, -1, 32767, -32768, 32767]


class TestToneAnalysis:
    def test_sine_level_and_shape(self) -> None:
        x = sine(1000, 0.1, 8000, amplitude=0.5)
        assert len(x) == 800
        assert x.dtype == np.int16
        assert x[0] == 0
        assert abs(int(x.max()) - 16384) <= 1

    def test_tone_power_reads_level_in_dbfs(self) -> None:
        assert tone_power_db(sine(1000, 0.2, 8000, 1.0), 1000) == pytest.approx(0.0, abs=0.01)
        assert tone_power_db(sine(1300, 0.2, 8000, 0.5), 1300) == pytest.approx(-6.02, abs=0.01)
        # Off-bin frequency (not a multiple of 1/duration) still reads right.
        assert tone_power_db(sine(1037, 0.2, 8000, 0.5), 1037) == pytest.approx(-6.02, abs=0.05)

    def test_tone_power_separates_the_simulator_tones(self) -> None:
        mix = sine(500, 0.2, 8000, 0.1) + sine(1300, 0.2, 8000, 0.5)
        assert tone_power_db(mix, 1300) == pytest.approx(-6.02, abs=0.1)
        assert tone_power_db(mix, 500) == pytest.approx(-20.0, abs=0.1)
        assert tone_power_db(mix, 800) < -60.0
        assert tone_power_db(mix, 2000) < -60.0

    def test_silence_reads_floor(self) -> None:
        assert tone_power_db(np.zeros(800, dtype=np.int16), 1000) == -200.0
        assert tone_power_db(np.zeros(0, dtype=np.int16), 1000) == -200.0
        assert band_energy_db(np.zeros(800, dtype=np.int16), 100, 3000) == -200.0

    def test_band_energy(self) -> None:
        x = sine(1300, 0.5, 8000, 0.5)
        assert band_energy_db(x, 1200, 1400) == pytest.approx(-6.02, abs=0.1)
        assert band_energy_db(x, 1900, 2100) < -60.0

    def test_dominant_frequency(self) -> None:
        mix = sine(800, 0.5, 8000, 0.5) + sine(2000, 0.5, 8000, 0.1)
        assert dominant_frequency(mix) == pytest.approx(800, abs=1.0)
        assert dominant_frequency(sine(1700, 0.3, 24000, 0.3), 24000) == pytest.approx(
            1700, abs=1.0
        )
        assert dominant_frequency(np.zeros(2, dtype=np.int16)) == 0.0


# --- Hold chime


class TestHoldChime:
    def test_shape_and_level(self) -> None:
        chime = hold_chime()
        assert chime.dtype == np.int16
        assert len(chime) == 4 * 8000
        peak = int(np.abs(chime).max())
        assert 0.15 * 32767 < peak <= 0.2 * 32767 + 1  # soft: about -14 dBFS at the peak

    def test_loops_without_a_seam(self) -> None:
        chime = hold_chime()
        assert chime[0] == 0
        assert not chime[-160:].any()  # faded to exact silence before the loop point
        # Each strike has a 10 ms attack: the loop restarts from near silence, not at full level.
        assert np.abs(chime[:8]).max() < 0.1 * np.abs(chime).max()

    def test_energy_is_in_the_phone_band(self) -> None:
        chime = hold_chime()
        assert band_energy_db(chime, 3400, 4000) < band_energy_db(chime, 300, 3400) - 40

    def test_other_rates(self) -> None:
        assert len(hold_chime(24000)) == 4 * 24000


# --- WAV files


class TestWav:
    def test_round_trip(self, tmp_path: Path) -> None:
        x = sine(440, 0.25, 8000)
        write_wav(tmp_path / "a.wav", x, 8000)
        assert np.array_equal(read_wav_mono(tmp_path / "a.wav", 8000), x)
        with wave.open(str(tmp_path / "a.wav")) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)

    def test_resamples_to_requested_rate(self, tmp_path: Path) -> None:
        write_wav(tmp_path / "b.wav", sine(1000, 1.0, 24000, 0.5), 24000)
        got = read_wav_mono(tmp_path / "b.wav", 8000)
        assert len(got) == 8000
        assert dominant_frequency(got) == pytest.approx(1000, abs=1.0)
        assert tone_power_db(got[200:-200], 1000) == pytest.approx(-6.02, abs=0.1)

    def test_stereo_is_averaged(self, tmp_path: Path) -> None:
        left = np.full(100, 1000, dtype=np.int16)
        right = np.full(100, 3000, dtype=np.int16)
        with wave.open(str(tmp_path / "s.wav"), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(np.column_stack((left, right)).astype("<i2").tobytes())
        assert read_wav_mono(tmp_path / "s.wav", 8000).tolist() == [2000] * 100

    def test_rejects_8_bit(self, tmp_path: Path) -> None:
        with wave.open(str(tmp_path / "c.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(1)
            wav.setframerate(8000)
            wav.writeframes(bytes(100))
        with pytest.raises(ValueError, match="16-bit"):
            read_wav_mono(tmp_path / "c.wav")

    def test_rejects_non_wav(self, tmp_path: Path) -> None:
        (tmp_path / "d.wav").write_bytes(b"this is not a wav file at all")
        with pytest.raises(ValueError, match="not a readable PCM WAV"):
            read_wav_mono(tmp_path / "d.wav")

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            read_wav_mono(tmp_path / "missing.wav")


# --- FIFO


class TestPcmFifo:
    def test_push_pop_across_the_wrap(self) -> None:
        fifo = PcmFifo(10)
        values = iter(range(1000))
        expected: list[int] = []
        for size in (3, 4, 5, 2, 7, 1):
            chunk = np.array([next(values) for _ in range(size)], dtype=np.int16)
            assert fifo.push(chunk) == 0
            expected.extend(chunk.tolist())
            got = fifo.pop(3)
            assert got is not None
            assert got.tolist() == expected[:3]
            del expected[:3]
            assert len(fifo) == len(expected)

    def test_overflow_drops_oldest(self) -> None:
        fifo = PcmFifo(5)
        assert fifo.push(np.arange(4, dtype=np.int16)) == 0
        assert fifo.push(np.arange(10, 13, dtype=np.int16)) == 2
        got = fifo.pop(5)
        assert got is not None
        assert got.tolist() == [2, 3, 10, 11, 12]

    def test_push_larger_than_capacity_keeps_the_newest(self) -> None:
        fifo = PcmFifo(4)
        fifo.push(np.arange(2, dtype=np.int16))
        assert fifo.push(np.arange(10, 20, dtype=np.int16)) == 8
        got = fifo.pop(4)
        assert got is not None
        assert got.tolist() == [16, 17, 18, 19]

    def test_pop_into_zero_pads_and_pop_waits(self) -> None:
        fifo = PcmFifo(8)
        fifo.push(np.array([5, 6], dtype=np.int16))
        assert fifo.pop(3) is None
        assert len(fifo) == 2
        out = np.full(4, 99, dtype=np.int16)
        assert fifo.pop_into(out) == 2
        assert out.tolist() == [5, 6, 0, 0]
        assert fifo.clear() == 0

    def test_push_copies(self) -> None:
        fifo = PcmFifo(8)
        chunk = np.array([1, 2, 3], dtype=np.int16)
        fifo.push(chunk)
        chunk[:] = 0
        got = fifo.pop(3)
        assert got is not None
        assert got.tolist() == [1, 2, 3]
