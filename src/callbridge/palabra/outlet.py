"""The link's events on their way to the consumer: one bounded channel and its full-queue policy.

The reader must never stall for long: trio-websocket answers pings from the reader's side, so a
reader stuck behind a slow consumer would look like a dead connection. Hence, when the channel is
full, transcripts, warnings and errors are dropped at once and counted (``events_dropped``); a
speech chunk waits up to ``SPEECH_SEND_TIMEOUT_S`` for room, then is dropped, counted
(``speech_dropped``) and logged at warning level, never silently.

A part of speech that lost a chunk is cut there: its later chunks are dropped too (a sentence
never resumes in its middle after a hole) and the consumer gets ``SpeechLost`` so it can end the
utterance with what it has (``speech_cut``). ``SpeechLost`` and ``ConnectionLost`` follow the
speech policy: they wait for room, as the consumer's audio depends on them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, TypeAlias

import attrs
import trio

from callbridge.log import get_logger
from callbridge.palabra.events import (
    ConnectionLost,
    PalabraEvent,
    ServerWarning,
    SpeechChunk,
    SpeechLost,
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
# Cut parts remembered (to drop their later chunks); a part's speech lasts seconds, so a few do.
_CUT_KEPT: Final = 64

_Part: TypeAlias = tuple[str, int]  # (transcription_id, translation_part_id)


@attrs.define(eq=False)
class EventOutlet:
    """The sending side of ``PalabraLink.events`` (see the module docstring)."""

    direction: Direction
    stats: LinkStats
    _send: trio.MemorySendChannel[PalabraEvent]
    _cut: OrderedDict[_Part, None] = attrs.Factory(OrderedDict)

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
        """Count and queue ``event``; False when it was dropped (full queue, the consumer is
        gone, or a chunk of speech already cut)."""
        self._count(event)
        if isinstance(event, SpeechChunk):
            part = (event.transcription_id, event.translation_part_id)
            if part in self._cut:
                self.stats.speech_dropped += 1
                if event.last_chunk:
                    del self._cut[part]
                return False
            if await self._queue(event):
                return True
            self._count_dropped(event)
            await self.speech_lost(part, "the consumer fell behind", ended=event.last_chunk)
            return False
        if await self._queue(event):
            return True
        self._count_dropped(event)
        return False

    async def speech_lost(self, part: _Part, reason: str, *, ended: bool = False) -> None:
        """A chunk of ``part`` is lost: drop the rest of it (unless the lost chunk ``ended``
        it) and tell the consumer."""
        transcription_id, part_id = part
        self.stats.speech_cut += 1
        if not ended:
            self._cut[part] = None
            if len(self._cut) > _CUT_KEPT:
                self._cut.popitem(last=False)
        log.warning(
            "palabra_speech_cut",
            direction=self.direction.value,
            transcription_id=transcription_id,
            translation_part_id=part_id,
            reason=reason,
        )
        lost = SpeechLost(transcription_id, part_id, reason)
        if not await self._queue(lost):
            self._count_dropped(lost)

    async def _queue(self, event: PalabraEvent) -> bool:
        try:
            self._send.send_nowait(event)
            return True
        except trio.WouldBlock:
            if isinstance(event, SpeechChunk | SpeechLost | ConnectionLost):
                with trio.move_on_after(SPEECH_SEND_TIMEOUT_S):
                    await self._send.send(event)
                    return True
        except trio.BrokenResourceError:
            pass  # the consumer closed its end: it wants no more events
        return False

    def _count(self, event: PalabraEvent) -> None:
        stats = self.stats
        if isinstance(event, Transcript):
            stats.transcripts += 1
        elif isinstance(event, SpeechChunk):
            stats.speech_chunks += 1
        elif isinstance(event, ServerWarning):
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
