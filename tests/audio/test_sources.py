"""The hold audio: a bad file stops the daemon at start."""

from __future__ import annotations

from typing import Any

import pytest


class TestHoldAudio:
    def test_bad_hold_file_is_a_config_error_at_start(self, tmp_path: Any) -> None:
        from callbridge.audio import load_hold_audio
        from callbridge.errors import ConfigError

        bad = tmp_path / "hold.wav"
        bad.write_bytes(b"not a wav")
        with pytest.raises(ConfigError, match=r"media\.hold_audio"):
            load_hold_audio(str(bad))
        with pytest.raises(ConfigError, match=r"media\.hold_audio"):
            load_hold_audio(str(tmp_path / "missing.wav"))
        assert len(load_hold_audio("")) > 8000
