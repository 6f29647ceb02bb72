from __future__ import annotations

import numpy as np

from callbridge.palabra.pacing import AudioBuffer, Pacer


class TestAudioBuffer:
    def test_fifo_across_pieces(self) -> None:
        buffer = AudioBuffer(capacity=100)
        assert buffer.push(np.arange(0, 30, dtype=np.int16))
        assert buffer.push(np.arange(30, 50, dtype=np.int16))
        assert np.array_equal(buffer.take(25), np.arange(0, 25))
        assert np.array_equal(buffer.take(100), np.arange(25, 50))
        assert len(buffer) == 0
        assert len(buffer.take(10)) == 0

    def test_capacity_is_all_or_nothing(self) -> None:
        buffer = AudioBuffer(capacity=10)
        assert buffer.push(np.zeros(8, dtype=np.int16))
        assert not buffer.push(np.zeros(3, dtype=np.int16))
        assert len(buffer) == 8
        assert buffer.push(np.zeros(2, dtype=np.int16))


class TestPacer:
    def test_absolute_schedule_from_the_first_send(self) -> None:
        pacer = Pacer(chunk_s=0.32)
        assert pacer.due() is None
        pacer.mark_sent(10.0)
        assert pacer.due() == 10.32
        pacer.mark_sent(10.5)  # late: the schedule does not move
        assert pacer.due() == 10.0 + 2 * 0.32
        assert pacer.behind_s(10.7) == 10.7 - 10.64
        assert pacer.behind_s(10.0) == 0.0
