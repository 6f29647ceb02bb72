"""``callbridge demo`` end to end: the command `make run` runs, as a subprocess, checked by ear.

The check is on the audio each phone heard, independently of the demo's own summary: each
script turn's translated audio (24 kHz, resampled to 8 kHz) must occur in the LISTENER's
recording (normalised cross-correlation peak well above chance), in turn order, and must not
occur in the speaker's own recording (nobody hears their own translation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from callbridge.audio import read_wav_mono
from callbridge.sim.palabra.script import DEFAULT_SCRIPT

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_S = 150.0
# Heard audio is the translation after 24->8 kHz resampling and mu-law: it matches at ~0.99.
# The wrong listener's recording peaks at ~0.1-0.25 (other speech, chance alignments).
RIGHT_MIN = 0.7
WRONG_MAX = 0.5

Signal = NDArray[np.float64]


def _ncc_peak(template: Signal, x: Signal) -> tuple[float, int]:
    """(peak normalised cross-correlation, lag in samples) of ``template`` slid over ``x``."""
    n = len(template)
    assert 0 < n <= len(x)
    size = 1 << (len(x) + n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(template, size)), size)
    corr = corr[: len(x) - n + 1]
    cumulative = np.concatenate(([0.0], np.cumsum(x * x)))
    energy = cumulative[n:] - cumulative[:-n]
    usable = energy > 1e-3 * energy.max()
    scores = np.where(usable, corr / np.sqrt(np.maximum(energy, 1e-9) * (template @ template)), 0)
    lag = int(np.argmax(scores))
    return float(scores[lag]), lag


def _ncc_in_pieces(template: Signal, x: Signal, pieces: int = 8) -> tuple[float, int]:
    """Mean of the pieces' peaks (quiet pieces left out), and the lag of the first piece. A
    20 ms playout gap on a busy machine shifts what follows it: matched whole, a gap mid-phrase
    halves the score though every word was heard; in pieces it costs one piece."""
    size = len(template) // pieces
    bounds = [(k * size, (k + 1) * size) for k in range(pieces)]
    loudest = max(float(template[a:b] @ template[a:b]) for a, b in bounds)
    found = [
        (*_ncc_peak(template[a:b], x), a)
        for a, b in bounds
        if float(template[a:b] @ template[a:b]) >= 1e-2 * loudest
    ]
    score = float(np.mean([f[0] for f in found]))
    return score, found[0][1] - found[0][2]


def _wav(path: Path) -> Signal:
    assert path.is_file(), f"missing {path}"
    return read_wav_mono(path, 8000).astype(np.float64)


def test_demo_plays_the_script_and_each_side_hears_the_other_translated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "callbridge", "demo", "--out", str(out), "--timeout", "120"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    wall_s = time.monotonic() - started
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    print(f"demo wall time: {wall_s:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transcript page: http://127.0.0.1:" in result.stdout
    assert "End reason: caller_hangup" in result.stdout

    script = json.loads(DEFAULT_SCRIPT.read_text(encoding="utf-8"))
    heard = {p: _wav(out / f"{p}-heard.wav") for p in ("caller", "operator")}
    last_lag = {"caller": -1, "operator": -1}
    for k, turn in enumerate(script["turns"]):
        speaker = turn["speaker"]
        listener = "operator" if speaker == "caller" else "caller"
        translated = _wav(DEFAULT_SCRIPT.parent / turn["translated_audio"])
        right, lag = _ncc_in_pieces(translated, heard[listener])
        wrong, _ = _ncc_peak(translated, heard[speaker])
        assert right > RIGHT_MIN, f"turn {k}: the {listener} did not hear it ({right:.2f})"
        assert wrong < WRONG_MAX, (
            f"turn {k}: the {speaker} heard their own translation ({wrong:.2f})"
        )
        assert lag > last_lag[listener], f"turn {k}: heard out of order"
        last_lag[listener] = lag
        # The translated text reached the transcript (the demo prints it as recognised/translated).
        assert turn["translated_text"] in result.stdout
