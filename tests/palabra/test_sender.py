"""The input side (``sender.py``): the bounded buffer and the paced sender."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from callbridge.palabra.protocol import SAMPLE_RATE
from callbridge.palabra.sender import is_speech
from tests.palabra.fake_server import FakePalabra
from tests.palabra.helpers import (
    GUARD_S,
    feed_realtime,
    make_config,
    open_link,
    received_nonzero_s,
    speech,
    too_fast,
)


class TestPacing:
    async def test_sixty_seconds_realtime_no_too_fast(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await feed_realtime(link, 60.0)
        conn = fake.connections[0]
        assert too_fast(fake) == 0
        assert conn.max_ahead_s <= 0.320 + 1e-6
        assert received_nonzero_s(fake) == pytest.approx(60.0)
        assert link.stats.feed_drops == 0

    async def test_bursty_and_all_at_once_feeding_stays_paced(self, autojump_clock: Any) -> None:
        """A late feeder (1 s bursts) and 4 s fed at once are sent at real time, not in bursts."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                for _ in range(10):
                    await trio.sleep(1.0)
                    assert link.feed(speech(1.0))
                await trio.sleep(2.0)
                assert link.feed(speech(4.0))
                await trio.sleep(5.0)
        assert too_fast(fake) == 0
        assert received_nonzero_s(fake) == pytest.approx(14.0)

    async def test_audio_fed_right_after_ready_is_not_lost(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                link.feed(speech(0.7))
        assert received_nonzero_s(fake) == pytest.approx(0.7)
        assert fake.connections[0].audio_before_ready == 0

    async def test_idle_keepalive_thirty_seconds_before_audio(self, autojump_clock: Any) -> None:
        """Ringing for 30 s with no audio: real-time silence keeps the task alive."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await trio.sleep(30.0)
                await feed_realtime(link, 2.0)
        conn = fake.connections[0]
        assert "SERVICE_TIMEOUT" not in conn.errors_sent
        assert conn.closed_by_server is None
        assert len(fake.connections) == 1 and link.stats.reconnects == 0
        assert link.stats.silence_chunks_sent >= 90
        assert received_nonzero_s(fake) == pytest.approx(2.0)

    async def test_feed_buffer_is_bounded(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, input_buffer_ms=1000)) as link,
            ):
                assert link.feed(speech(0.9))
                assert not link.feed(speech(0.2))
                assert link.stats.feed_drops == 1


def test_speech_for_the_output_watchdog_is_above_minus_40_dbfs() -> None:
    """A full-scale sine is -3 dBFS RMS; scaled to -37 and -43 dBFS it is speech and is not."""
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE
    sine = np.sin(2 * np.pi * 440 * t) * 32767

    def at(dbfs: float) -> np.ndarray[Any, np.dtype[np.int16]]:
        return (sine * 10 ** ((dbfs + 3) / 20)).astype(np.int16)

    assert is_speech(at(-37.0))
    assert not is_speech(at(-43.0))
    assert not is_speech(np.zeros(2400, np.int16))
