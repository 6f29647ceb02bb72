"""Gains and sample-scale conversions."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.audio import (
    db_to_gain,
    to_int16,
)


def test_db_to_gain() -> None:
    assert db_to_gain(None) == 0.0
    assert db_to_gain(0.0) == 1.0
    assert db_to_gain(20.0) == pytest.approx(10.0)
    assert db_to_gain(-6.0) == pytest.approx(0.501187, rel=1e-5)
    assert db_to_gain(-60.0) == pytest.approx(0.001)


def test_to_int16_rounds_and_saturates() -> None:
    got = to_int16(np.array([0.4, 0.6, -0.6, 40000.0, -40000.0, 32767.4]))
    assert got.tolist() == [0, 1, -1, 32767, -32768, 32767]
