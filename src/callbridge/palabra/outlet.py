"""The link's events on their way to the consumer: one bounded channel and its full-queue policy.

The reader must never stall for long: trio-websocket answers pings from the reader's side, so a
reader stuck behind a slow consumer would look like a dead connection. Hence, when the channel is
full, transcripts, warnings and errors are dropped at once and counted (``events_dropped``); a
speech chunk waits up to ``SPEECH_SEND_TIMEOUT_S`` for room, then is dropped, counted
(``speech_dropped``) and logged at warning level, never silently.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from callbridge.log import get_logger
from callbridge.palabra.events import (
    LanguageDetected,
    PalabraEvent,
    ServerError,
    SpeechChunk,
    Transcript,
)
from callbridge.palabra.stats import LinkStats
from callbridge.roles import Direction

__all__ = ["EVENTS_QUEUE", "SPEECH_SEND_TIMEOUT_S", "EventOutlet"]

log = get_logger("callbridge.palabra")

# Events queued for the consumer: ~50 s of 200 ms speech chunks, far beyond a healthy lag.
EVENTS_QUEUE: Final = 256
# How long the reader waits for a stuck consumer before dropping (and counting) a speech chunk.
# Longer would stall the reader, and trio-websocket stops answering pings behind a stalled reader.
SPEECH_SEND_TIMEOUT_S: Final = 2.0
# A rate-limited log line for repeated drops: the first, then every Nth.
_LOG_EVERY: Final = 50


@attrs.define(eq=False)
class EventOutlet:
    """The sending side of ``PalabraLink.events`` (see the module docstring)."""

    direction: Direction
    stats: LinkStats
    _send: trio.MemorySendChannel[PalabraEvent]

    @classmethod
    def open(
        cls, direction: Direction, stats: LinkStats
    ) -> tuple[EventOutlet, trio.MemoryReceiveChannel[PalabraEvent]]:
        """An outlet and the consumer's end of its channel (``EVENTS_QUEUE`` events)."""
        send, receive = trio.open_memory_channel[PalabraEvent](EVENTS_QUEUE)
        return cls(direction, stats, send), receive

    def close(self) -> None:
        """The link has ended: the consumer's ``async for`` finishes."""
        self._send.close()

    async def emit(self, event: PalabraEvent) -> bool:
        """Count and queue ``event``; False when it was dropped (full queue, or the consumer is
        gone)."""
        self._count(event)
        try:
            self._send.send_nowait(event)
            return True
        except trio.WouldBlock:
            if isinstance(event, SpeechChunk):
                with trio.move_on_after(SPEECH_SEND_TIMEOUT_S):
                    await self._send.send(event)
                    return True
        except trio.BrokenResourceError:
            pass  # the consumer closed its end: it wants no more events
        self._count_dropped(event)
        return False

    def _count(self, event: PalabraEvent) -> None:
        stats = self.stats
        if isinstance(event, Transcript):
            stats.transcripts += 1
        elif isinstance(event, SpeechChunk):
            stats.speech_chunks += 1
        elif not isinstance(event, ServerError | LanguageDetected):
            stats.warnings += 1

    def _count_dropped(self, event: PalabraEvent) -> None:
        stats = self.stats
        if isinstance(event, SpeechChunk):
            stats.speech_dropped += 1
            log.warning(
                "palabra_speech_dropped",
                direction=self.direction.value,
                transcription_id=event.transcription_id,
                dropped=stats.speech_dropped,
            )
            return
        stats.events_dropped += 1
        if stats.events_dropped % _LOG_EVERY == 1:
            log.warning(
                "palabra_events_dropped",
                direction=self.direction.value,
                dropped=stats.events_dropped,
            )
