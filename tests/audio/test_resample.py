"""Streaming resamplers: the call's polyphase FIR (``Up3``/``Down3``) and libsamplerate's
``Resampler``. Each must give the same stream in pieces as in one piece, keep aliasing and images
out of the phone band, and start afresh after ``flush``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import samplerate

from callbridge.audio import (
    Down3,
    Pcm,
    Resampler,
    StreamResampler,
    Up3,
    downsampler_24k_to_8k,
    upsampler_8k_to_24k,
)
from callbridge.audio.polyphase import lowpass
from callbridge.sim.analysis import sine

Make = Callable[[], StreamResampler]
UP: list[Make] = [Up3, lambda: Resampler(8000, 24000)]
DOWN: list[Make] = [Down3, lambda: Resampler(24000, 8000)]


def _stream(resampler: StreamResampler, x: Pcm, chunk: int) -> Pcm:
    parts = [resampler.process(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(parts)


def _in_pieces(resampler: StreamResampler, x: Pcm, sizes: list[int]) -> Pcm:
    parts, i, k = [], 0, 0
    while i < len(x):
        parts.append(resampler.process(x[i : i + sizes[k % len(sizes)]]))
        i += sizes[k % len(sizes)]
        k += 1
    parts.append(resampler.flush())
    return np.concatenate(parts)


def _whole(make: Make, x: Pcm) -> Pcm:
    resampler = make()
    return np.concatenate((resampler.process(x), resampler.flush()))


def _max_err_dbfs(a: np.ndarray, b: np.ndarray) -> float:
    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return 20 * math.log10(max(err, 1e-9) / 32768)


def _fft_peak(pcm: np.ndarray, freq: float, rate: int) -> float:
    """dBFS of the largest FFT bin within 20 Hz of ``freq`` (Hann window, coherent gain)."""
    n = len(pcm)
    window = np.hanning(n)
    spectrum = np.abs(np.fft.rfft(pcm * window)) * 2 / window.sum()
    freqs = np.fft.rfftfreq(n, 1 / rate)
    peak = float(spectrum[np.abs(freqs - freq) <= 20].max())
    return 20 * math.log10(max(peak, 1e-9) / 32767)


class TestContinuity:
    @pytest.mark.parametrize("make", [*UP, *DOWN])
    def test_20ms_chunks_equal_one_piece(self, make: Make) -> None:
        rate = 8000 if make in UP else 24000
        x = sine(1000, 2.0, rate, amplitude=0.5)
        whole = _whole(make, x)
        streamed = _in_pieces(make(), x, [rate // 50])
        assert len(streamed) == len(whole)
        assert _max_err_dbfs(streamed, whole) < -80.0

    @pytest.mark.parametrize("make", DOWN)
    def test_odd_chunk_sizes_still_match(self, make: Make) -> None:
        x = sine(1000, 1.0, 24000, amplitude=0.5)
        streamed = _in_pieces(make(), x, [7, 333, 1, 480, 1001, 2])
        whole = _whole(make, x)
        assert len(streamed) == len(whole)
        assert _max_err_dbfs(streamed, whole) < -80.0

    def test_stateless_per_chunk_resampling_fails_the_same_check(self) -> None:
        """Shows the continuity check bites: per-chunk resampling clicks at every frame edge."""
        x = sine(1000, 1.0, 8000, amplitude=0.5)
        chunks = [_whole(Up3, x[i : i + 160]) for i in range(0, len(x), 160)]
        stateless = np.concatenate(chunks)[:23000]
        assert _max_err_dbfs(stateless, _whole(Up3, x)[:23000]) > -60.0

    @pytest.mark.parametrize("make", UP)
    def test_flush_resets_for_a_new_stream(self, make: Make) -> None:
        up = make()
        x = sine(700, 0.5, 8000)
        first = np.concatenate((_stream(up, x, 160), up.flush()))
        second = np.concatenate((_stream(up, x, 160), up.flush()))
        assert np.array_equal(first, second)


class TestPolyphaseExactness:
    def test_up3_is_zero_stuffing_then_the_lowpass(self) -> None:
        x = (np.random.default_rng(1).standard_normal(4000) * 3000).astype(np.int16)
        stuffed = np.zeros(3 * len(x))
        stuffed[::3] = x
        reference = np.rint(np.convolve(stuffed, 3 * lowpass())[: len(stuffed)])
        assert np.array_equal(_stream(Up3(), x, 160), reference)

    def test_down3_is_the_lowpass_then_every_third_sample(self) -> None:
        x = (np.random.default_rng(2).standard_normal(12000) * 3000).astype(np.int16)
        reference = np.rint(np.convolve(x, lowpass())[: len(x)][::3])
        assert np.array_equal(_stream(Down3(), x, 481), reference)

    def test_lengths_are_exact(self) -> None:
        assert len(Up3().process(np.zeros(160, np.int16))) == 480
        down = Down3()
        assert [len(down.process(np.zeros(n, np.int16))) for n in (4, 4, 1)] == [1, 1, 1]

    def test_the_lowpass_passes_the_phone_band_and_stops_above_4khz(self) -> None:
        response = np.abs(np.fft.rfft(lowpass(), 24000))  # 1 Hz bins
        db = 20 * np.log10(np.maximum(response, 1e-12))
        assert np.all(np.abs(db[300:3201]) < 0.5)
        assert db[3400] > -1.0
        assert np.all(db[4000:] < -60.0)


class TestQuality:
    @pytest.mark.parametrize("make", UP)
    def test_output_is_int16_and_saturates(self, make: Make) -> None:
        square = np.tile(np.array([32767] * 4 + [-32768] * 4, dtype=np.int16), 200)
        out = _stream(make(), square, 160)
        assert out.dtype == np.int16
        # Gibbs overshoot of a full-scale square would wrap without saturation.
        assert out.max() == 32767
        assert out.min() == -32768

    @pytest.mark.parametrize("make", [*UP, *DOWN])
    def test_empty_input(self, make: Make) -> None:
        resampler = make()
        assert len(resampler.process(np.zeros(0, dtype=np.int16))) == 0
        assert resampler.flush().dtype == np.int16

    @pytest.mark.parametrize("make", DOWN)
    def test_anti_alias_6khz_is_40db_below_1khz(self, make: Make) -> None:
        # 8000-sample slices: 1 Hz bins, so both tones sit exactly on a bin.
        one = _stream(make(), sine(1000, 2.0, 24000, 0.5), 480)[400:8400]
        six = _stream(make(), sine(6000, 2.0, 24000, 0.5), 480)[400:8400]
        # 6 kHz folds to 2 kHz at 8 kHz; measure with plain FFT bins (independent of helpers).
        level_1k = _fft_peak(one, 1000, 8000)
        level_alias = _fft_peak(six, 2000, 8000)
        assert level_1k > -7.0
        assert level_alias - level_1k < -40.0

    @pytest.mark.parametrize("make", UP)
    def test_upsampling_images_are_40db_down(self, make: Make) -> None:
        out = _stream(make(), sine(1000, 2.0, 8000, 0.5), 160)[1200:25200]
        assert _fft_peak(out, 1000, 24000) > -7.0
        # Zero-stuffing would put images at 7 kHz and 9 kHz.
        assert _fft_peak(out, 7000, 24000) < -47.0
        assert _fft_peak(out, 9000, 24000) < -47.0


class TestLibsamplerate:
    def test_matches_a_one_shot_conversion(self) -> None:
        x = sine(1000, 2.0, 8000, amplitude=0.5)
        reference = samplerate.resample(x.astype(np.float32), 3.0, "sinc_fastest")
        assert _max_err_dbfs(_whole(lambda: Resampler(8000, 24000), x), reference) < -80.0

    def test_rejects_bad_rates(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            Resampler(0, 8000)


def test_the_call_path_uses_the_polyphase_converters() -> None:
    assert isinstance(upsampler_8k_to_24k(), Up3)
    assert isinstance(downsampler_24k_to_8k(), Down3)
