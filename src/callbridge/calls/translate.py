"""``Translator``: the Palabra duplex task of one direction.

In: the speaker's receive task hands over each 8 kHz original (``feed``). Frames are gathered
into batches of ``FEED_BATCH_MS``, each upsampled to Palabra's 24 kHz at once by one persistent
polyphase FIR, and fed to the link, which paces whole ``palabra.chunk_ms`` chunks to Palabra.
A batch is well below a chunk: the link takes speech as "still flowing" only if it was fed within
the last chunk, and a batch as long as a chunk let it send a chunk of silence into the middle of
speech whenever its schedule and the batches drifted apart (the Palabra simulator then heard
gaps, and translated speech came in fragments that kept the original ducked).

Out: the link's events. Translated speech is downsampled to 8 kHz by one persistent resampler and
queued, by utterance, in the listener's mixer (``voice`` mode only: in ``captions`` the listener
hears the original alone); each part of a translation is its own utterance, in part order
(``parts.py``). Transcripts become transcript events for the page, a translation's parts joined.
Warnings and errors are counted by code and logged once each. A language Palabra detected
(``LanguageDetected``) goes to ``on_language``.

A started utterance never blocks the listener's queue. Speech arrives for one utterance at a
time (one resampler stream), and that utterance is ended, with what it has, as soon as the link
says no more will come: ``ConnectionLost`` (a reconnect), ``SpeechLost`` (a lost chunk), or the
first chunk of another utterance. Ending pushes the resampler's tail as its last chunk, so the
mixer plays what arrived, finishes it and restores the original's level; logged
(``translation_cut``, warning) and counted (``cut``). The first chunk of a later part of the same
transcription ends the earlier part the same way, but whole: not a cut. The mixer's own stall limit covers the rest (no
audio for a second).

The link runs the task ``run`` is given (this call's languages); ``update_task`` changes it in
place. ``run`` may run again after it was cancelled (``calls.translation.CallTranslation`` stops
and restarts a call's translators when its languages say so).

Error handling: the link raising (``PalabraUnavailable`` past its reconnect budget, a rejected
task) or its events ending ends the call (``translation_failed``).

Resource handling: the link lives inside ``run`` (``async with open_link``), so it is closed, with
its goodbye, whenever the call's nursery is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import trio

from callbridge.audio import (
    FRAME_MS,
    TWILIO_FRAME_SAMPLES,
    TWILIO_RATE,
    Pcm,
    downsampler_24k_to_8k,
    upsampler_8k_to_24k,
)
from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.output import ListenerOutput
from callbridge.calls.parts import TranslationParts, transcription_of, utterance_key
from callbridge.calls.ports import LinkOpener, TranslatorLink
from callbridge.config import DirectionMode
from callbridge.errors import PalabraUnavailable
from callbridge.log import get_logger
from callbridge.palabra.events import (
    ConnectionLost,
    LanguageDetected,
    PalabraEvent,
    ServerError,
    ServerWarning,
    SpeechChunk,
    SpeechLost,
    Transcript,
)
from callbridge.palabra.link import LinkStats
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction
from callbridge.transcripts.events import TranscriptEvent

__all__ = ["FEED_BATCH_MS", "Translator", "feed_batch_samples"]

log = get_logger("callbridge.translate")

FEED_BATCH_MS: Final = 100  # 5 frames: a fifth of the resampler calls, 100 ms at most held


def feed_batch_samples(chunk_ms: int) -> int:
    """8 kHz samples per upsampled batch: ``FEED_BATCH_MS``, never more than half a chunk."""
    batch_ms: int = max(FRAME_MS, min(FEED_BATCH_MS, chunk_ms // 2) // FRAME_MS * FRAME_MS)
    return TWILIO_RATE * batch_ms // 1000


class Translator:
    """One direction's translation; ``run`` is its task (see the module docstring)."""

    def __init__(
        self,
        direction: Direction,
        mode: DirectionMode,
        *,
        open_link: LinkOpener,
        listener: ListenerOutput,
        broadcaster: CallBroadcaster,
        call_id: str,
        batch_samples: int = TWILIO_FRAME_SAMPLES,
        on_language: Callable[[Direction, str], None] | None = None,
    ) -> None:
        self.direction = direction
        self.ready = trio.Event()
        self.feed_dropped = 0
        self.cut = 0  # utterances ended before their last chunk
        self.notices: dict[str, int] = {}
        self._voice = mode == "voice"
        self._open_link = open_link
        self._listener = listener
        self._broadcaster = broadcaster
        self._call_id = call_id
        self._on_language = on_language
        self._link: TranslatorLink | None = None
        self._stats: LinkStats | None = None  # the last link's, kept after it closed
        self._up = upsampler_8k_to_24k()
        self._down = downsampler_24k_to_8k()
        self._batch = np.zeros(max(batch_samples, TWILIO_FRAME_SAMPLES), dtype=np.int16)
        self._batched = 0
        self._parts = TranslationParts()
        self._receiving: str | None = None  # the utterance whose speech is arriving

    @property
    def link_stats(self) -> LinkStats | None:
        """The Palabra link's counters, once it is open; the last link's after it closed (the
        call's metrics are folded in after its links closed)."""
        return self._stats

    def feed(self, pcm8: Pcm) -> None:
        """The speaker's next 8 kHz frame (from their receive task; never blocks). Nothing is
        kept before the link is ready: Palabra gets silence keepalive meanwhile."""
        link = self._link
        if link is None:
            return
        end = self._batched + len(pcm8)
        if end > len(self._batch):  # a frame longer than the room left: send what we have
            self._send(link)
            end = len(pcm8)
        self._batch[end - len(pcm8) : end] = pcm8
        self._batched = end
        if end == len(self._batch):
            self._send(link)

    def _send(self, link: TranslatorLink) -> None:
        if self._batched and not link.feed(self._up.process(self._batch[: self._batched])):
            self.feed_dropped += 1
        self._batched = 0

    async def run(
        self,
        settings: TaskSettings,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open the link running ``settings``, then turn its events into audio and text until
        the call ends. ``task_status.started()`` once the link is ready."""
        try:
            async with self._open_link(self.direction, settings) as link:
                log.info("translator_ready", direction=str(self.direction))
                self._link, self._stats = link, link.stats
                self.ready.set()
                task_status.started()
                async for event in link.events:
                    self._on_event(event)
        finally:
            self._link = None  # stopped: feed() drops nothing into a closed link
        msg = f"{self.direction} translator stopped sending events"
        raise PalabraUnavailable(msg)

    async def update_task(self, settings: TaskSettings) -> bool:
        """Run ``settings`` on the open link from now on (``PalabraLink.update_task``: may wait
        up to 2 s for Palabra's rate limit). False when no link is open."""
        link = self._link
        if link is None:
            return False
        await link.update_task(settings)
        return True

    def _on_event(self, event: PalabraEvent) -> None:
        if isinstance(event, SpeechChunk):
            if self._voice:
                self._on_speech(event)
        elif isinstance(event, Transcript):
            self._broadcaster.publish(
                TranscriptEvent.of_transcript(
                    self._call_id, self.direction, self._parts.whole(event)
                )
            )
        elif isinstance(event, SpeechLost):
            key = utterance_key(event.transcription_id, event.translation_part_id)
            self._end_speech(key, event.reason)
        elif isinstance(event, ConnectionLost):
            self._end_speech(self._receiving, f"connection lost: {event.reason}")
        elif isinstance(event, ServerWarning):
            self._on_notice(event.code, event.message)
        elif isinstance(event, ServerError):
            self._on_notice(event.code, event.desc)
        elif isinstance(event, LanguageDetected) and self._on_language is not None:
            self._on_language(self.direction, event.language)

    def _on_speech(self, chunk: SpeechChunk) -> None:
        key = self._parts.speech_key(chunk.transcription_id, chunk.translation_part_id)
        if key is None:
            return  # a part already followed by a later one
        receiving = self._receiving
        if receiving is not None and receiving != key:
            if transcription_of(receiving) == chunk.transcription_id:
                self._end_speech(receiving, None)  # the next part: this one is over, whole
            else:
                self._end_speech(receiving, "the next utterance's speech began")
        pcm8 = self._down.process(chunk.pcm)
        if chunk.last_chunk:
            pcm8 = np.concatenate((pcm8, self._down.flush()))
        self._receiving = None if chunk.last_chunk else key
        self._listener.on_translation(key, pcm8, chunk.last_chunk)

    def _end_speech(self, key: str | None, reason: str | None) -> None:
        """No more speech will come for ``key``: if it is the one arriving, end it with the
        resampler's tail as its last chunk. A ``reason`` means it was cut short."""
        if key is None or key != self._receiving:
            return
        self._receiving = None
        self._listener.on_translation(key, self._down.flush(), True)
        if reason is None:
            return
        self.cut += 1
        log.warning(
            "translation_cut", direction=str(self.direction), utterance_id=key, reason=reason
        )

    def _on_notice(self, code: str, text: str) -> None:
        count = self.notices.get(code, 0) + 1
        self.notices[code] = count
        if count == 1:
            log.warning("translator_notice", direction=str(self.direction), code=code, message=text)
