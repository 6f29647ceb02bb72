"""Tone synthesis and analysis used by the simulators and end-to-end tests."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.sim.analysis import band_energy_db, dominant_frequency, sine, tone_power_db


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
