"""The demo's ear: a translation is found in a recording despite a playout gap, and only there."""

from __future__ import annotations

import numpy as np

from callbridge.sim.demo import find_in_recording

RATE = 8000


def speech_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(seconds * RATE))
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 12 * np.pi, len(noise))) ** 2
    return noise * envelope * 3000


def test_a_20_ms_playout_gap_mid_phrase_still_counts_as_heard() -> None:
    template = speech_like(2.0, seed=1)
    half = len(template) // 2
    gap = np.zeros(RATE // 50)
    heard = np.concatenate((np.zeros(RATE), template[:half], gap, template[half:], np.zeros(RATE)))
    wrong = speech_like(4.0, seed=2)
    match = find_in_recording(template, heard, wrong, 0.0, 0.0, after=1.0)
    assert match.score > 0.9
    assert match.wrong_score < 0.3
    assert match.onset_at is not None and abs(match.onset_at - 1.0) < 0.05
