"""The hold audio: a bad file stops the daemon at start."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from callbridge.audio import hold_chime, load_hold_audio, read_wav_mono, write_wav
from callbridge.sim.analysis import band_energy_db, dominant_frequency, sine, tone_power_db


class TestHoldAudio:
    def test_bad_hold_file_is_a_config_error_at_start(self, tmp_path: Path) -> None:
        from callbridge.errors import ConfigError

        bad = tmp_path / "hold.wav"
        bad.write_bytes(b"not a wav")
        with pytest.raises(ConfigError, match=r"media\.hold_audio"):
            load_hold_audio(str(bad))
        with pytest.raises(ConfigError, match=r"media\.hold_audio"):
            load_hold_audio(str(tmp_path / "missing.wav"))
        assert len(load_hold_audio("")) > 8000


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
