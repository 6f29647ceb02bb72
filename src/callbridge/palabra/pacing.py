"""Input audio on its way to Palabra: a bounded buffer and a real-time schedule (sans-IO).

Palabra consumes input at wall-clock speed and warns ``AUDIO_STREAM_TOO_FAST`` when a client runs
ahead (palabra-ai-python v2.0.2 README: "Push at real-time rate"). The schedule is absolute:
chunk ``n`` is due at ``origin + n * chunk_s``,
where ``origin`` is when chunk 0 actually left, so the server never holds more than the one chunk
just sent beyond real time. A sender that fell behind (a late feeder, a slow network) catches up
only to the schedule, never past it, so catching up cannot trip the server's check.
"""

from __future__ import annotations

from collections import deque

import attrs
import numpy as np
from numpy.typing import NDArray

__all__ = ["AudioBuffer", "Pacer"]


@attrs.define
class AudioBuffer:
    """FIFO of int16 samples with a hard capacity. ``push`` is all-or-nothing: a piece that does
    not fit is refused whole, so what is buffered stays contiguous speech."""

    capacity: int
    _pieces: deque[NDArray[np.int16]] = attrs.field(factory=deque, init=False)
    _size: int = attrs.field(default=0, init=False)

    def __len__(self) -> int:
        return self._size

    def push(self, pcm: NDArray[np.int16]) -> bool:
        if self._size + len(pcm) > self.capacity:
            return False
        if len(pcm):
            self._pieces.append(pcm)
            self._size += len(pcm)
        return True

    def take(self, count: int) -> NDArray[np.int16]:
        """Up to ``count`` samples, oldest first."""
        out: list[NDArray[np.int16]] = []
        need = min(count, self._size)
        while need:
            head = self._pieces[0]
            if len(head) <= need:
                out.append(self._pieces.popleft())
            else:
                out.append(head[:need])
                self._pieces[0] = head[need:]
            taken = len(out[-1])
            need -= taken
            self._size -= taken
        if not out:
            return np.zeros(0, dtype=np.int16)
        return out[0] if len(out) == 1 else np.concatenate(out)


@attrs.define
class Pacer:
    """When the next chunk is due. ``due()`` is ``None`` until the first chunk has been sent
    (send at once); ``mark_sent(now)`` after each send."""

    chunk_s: float
    _origin: float | None = attrs.field(default=None, init=False)
    _sent: int = attrs.field(default=0, init=False)

    def due(self) -> float | None:
        if self._origin is None:
            return None
        return self._origin + self._sent * self.chunk_s

    def mark_sent(self, now: float) -> None:
        if self._origin is None:
            self._origin = now
        self._sent += 1

    def behind_s(self, now: float) -> float:
        """How far the stream lags real time (0 when on schedule)."""
        due = self.due()
        return 0.0 if due is None else max(0.0, now - due)
