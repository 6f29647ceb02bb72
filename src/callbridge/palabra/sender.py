"""The input side of a Palabra link: what ``feed`` buffers and the paced sender that empties it.

``feed`` appends to a bounded ``AudioBuffer`` (``palabra.input_buffer_ms``) and never blocks; a
piece that does not fit is refused whole and counted. One sender task per connection sends
``palabra.chunk_ms`` chunks on the ``Pacer``'s absolute real-time schedule (Palabra warns
``AUDIO_STREAM_TOO_FAST`` about a client that runs ahead: reference
https://github.com/PalabraAI/palabra-ai-python README, "real-time rate"). When nothing was fed
the due chunk goes out as silence, which keeps Palabra's 10 s ``SERVICE_TIMEOUT`` from firing;
when speech is flowing but the chunk is incomplete, it waits up to one chunk for the rest rather
than cut silence into the speech. The buffer outlives connections: audio fed during a reconnect
is sent on the next one.
"""

from __future__ import annotations

import math
from typing import Final

import attrs
import numpy as np
import trio
from numpy.typing import NDArray

from callbridge.log import get_logger
from callbridge.palabra.connection import Connection
from callbridge.palabra.pacing import AudioBuffer, Pacer
from callbridge.palabra.protocol import SAMPLE_RATE, encode_input_audio
from callbridge.palabra.stats import LinkStats
from callbridge.roles import Direction

__all__ = ["LinkInput", "is_speech"]

log = get_logger("callbridge.palabra")

# A rate-limited log line for repeated drops: the first, then every Nth.
_LOG_EVERY: Final = 50
# A chunk is speech for the output watchdog when its RMS is above -40 dBFS (full scale 32768):
# telephone speech sits around -20 to -30 dBFS, line noise and comfort noise well below -50.
_SPEECH_MEAN_SQUARE: Final = (32768.0 * 10 ** (-40 / 20)) ** 2


@attrs.define(eq=False)
class LinkInput:
    """24 kHz mono int16 audio on its way to Palabra (see the module docstring)."""

    direction: Direction
    stats: LinkStats
    chunk_samples: int
    _buffer: AudioBuffer
    _closing: bool = False
    _fed: trio.Event = attrs.Factory(trio.Event)
    _last_feed_at: float = -math.inf

    @classmethod
    def create(
        cls, direction: Direction, stats: LinkStats, *, chunk_ms: int, buffer_ms: int
    ) -> LinkInput:
        return cls(
            direction,
            stats,
            SAMPLE_RATE * chunk_ms // 1000,
            AudioBuffer(SAMPLE_RATE * buffer_ms // 1000),
        )

    @property
    def buffered_ms(self) -> float:
        return len(self._buffer) * 1000 / SAMPLE_RATE

    def feed(self, pcm24: NDArray[np.int16]) -> bool:
        """Queue PCM of any length (copied). Never blocks. False (and a counted drop) when the
        buffer is full or the link is closing."""
        samples = np.array(pcm24, dtype=np.int16, copy=True).reshape(-1)
        if self._closing or not self._buffer.push(samples):
            self.stats.feed_drops += 1
            self.stats.feed_dropped_ms += len(samples) * 1000 / SAMPLE_RATE
            if self.stats.feed_drops % _LOG_EVERY == 1:
                log.warning(
                    "palabra_feed_dropped",
                    direction=self.direction.value,
                    drops=self.stats.feed_drops,
                    buffered_ms=self.buffered_ms,
                    closing=self._closing,
                )
            return False
        self._last_feed_at = trio.current_time()
        self._fed.set()
        return True

    def close(self) -> None:
        """No more feeding: the sender sends what is buffered, then finishes."""
        self._closing = True
        self._fed.set()

    async def send_paced(self, conn: Connection) -> None:
        """The sender task of one connection; sets ``conn.sender_done`` however it ends."""
        chunk = self.chunk_samples
        pacer = Pacer(chunk / SAMPLE_RATE)
        try:
            while True:
                due = pacer.due()
                if due is not None:
                    await trio.sleep_until(due)
                now = trio.current_time()
                if len(self._buffer) < chunk and self._speech_pending(now, pacer.chunk_s):
                    await self._wait_for_chunk(now + pacer.chunk_s)
                if self._closing and not len(self._buffer):
                    return
                pcm = self._buffer.take(chunk)
                if len(pcm) < chunk:
                    pcm = np.concatenate((pcm, np.zeros(chunk - len(pcm), dtype=np.int16)))
                await conn.ws.send_message(encode_input_audio(pcm))
                self._count_sent(pcm, pacer.behind_s(now), conn)
                pacer.mark_sent(trio.current_time())
        finally:
            conn.sender_done.set()

    def _speech_pending(self, now: float, chunk_s: float) -> bool:
        """Speech is flowing (buffered, or fed within the last chunk): give the feeder up to one
        chunk to complete the chunk rather than pad the middle of speech with silence."""
        if self._closing:
            return False
        return len(self._buffer) > 0 or now - self._last_feed_at < chunk_s

    async def _wait_for_chunk(self, deadline: float) -> None:
        with trio.move_on_at(deadline):
            while len(self._buffer) < self.chunk_samples and not self._closing:
                self._fed = trio.Event()
                await self._fed.wait()

    def _count_sent(self, pcm: NDArray[np.int16], behind_s: float, conn: Connection) -> None:
        stats = self.stats
        stats.chunks_sent += 1
        stats.audio_ms_sent += len(pcm) * 1000 / SAMPLE_RATE
        stats.max_behind_ms = max(stats.max_behind_ms, behind_s * 1000)
        if not pcm.any():
            stats.silence_chunks_sent += 1
        elif is_speech(pcm):
            conn.unanswered_speech_s += len(pcm) / SAMPLE_RATE


def is_speech(pcm: NDArray[np.int16]) -> bool:
    """Whether a chunk is loud enough to expect Palabra to answer it (RMS above -40 dBFS)."""
    samples = pcm.astype(np.float32)
    return float(np.dot(samples, samples)) > _SPEECH_MEAN_SQUARE * len(pcm)
