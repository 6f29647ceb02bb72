"""``PcmFifo``: a bounded sample FIFO that drops the oldest samples when full."""

from __future__ import annotations

import attrs
import numpy as np

from callbridge.audio.frames import Pcm

__all__ = ["PcmFifo"]


@attrs.define
class PcmFifo:
    """A bounded int16 sample FIFO on a preallocated ring: push any length, pop fixed frames.

    When a push would exceed ``capacity`` the OLDEST samples are dropped (so latency never grows
    past ``capacity``) and ``push`` returns how many were dropped.
    """

    capacity: int
    _buf: Pcm = attrs.field(init=False)
    _start: int = attrs.field(init=False, default=0)
    _size: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if self.capacity <= 0:
            msg = f"PcmFifo capacity must be positive, got {self.capacity}"
            raise ValueError(msg)
        self._buf = np.zeros(self.capacity, dtype=np.int16)

    def __len__(self) -> int:
        return self._size

    def push(self, pcm: Pcm) -> int:
        """Append ``pcm`` (copied); return the number of old samples dropped to make room."""
        n = len(pcm)
        if n >= self.capacity:
            dropped = self._size + n - self.capacity
            self._buf[:] = pcm[n - self.capacity :]
            self._start, self._size = 0, self.capacity
            return dropped
        dropped = max(0, self._size + n - self.capacity)
        if dropped:
            self._start = (self._start + dropped) % self.capacity
            self._size -= dropped
        end = (self._start + self._size) % self.capacity
        first = min(n, self.capacity - end)
        self._buf[end : end + first] = pcm[:first]
        self._buf[: n - first] = pcm[first:]
        self._size += n
        return dropped

    def pop_into(self, out: Pcm) -> int:
        """Move up to ``len(out)`` oldest samples into ``out``; zero the rest; return the count."""
        n = min(len(out), self._size)
        first = min(n, self.capacity - self._start)
        out[:first] = self._buf[self._start : self._start + first]
        out[first:n] = self._buf[: n - first]
        out[n:] = 0
        self._start = (self._start + n) % self.capacity
        self._size -= n
        return n

    def pop(self, n: int) -> Pcm | None:
        """Pop exactly ``n`` samples, or ``None`` (and pop nothing) if fewer are buffered."""
        if self._size < n:
            return None
        out = np.empty(n, dtype=np.int16)
        self.pop_into(out)
        return out

    def clear(self) -> int:
        """Drop everything; return how many samples were dropped."""
        dropped, self._start, self._size = self._size, 0, 0
        return dropped
