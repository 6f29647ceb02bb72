"""PcmFifo: a bounded ring that drops the oldest samples."""

from __future__ import annotations

import numpy as np

from callbridge.audio import (
    PcmFifo,
)


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
