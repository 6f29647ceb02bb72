"""The output side of a Palabra link: one reader task per connection turns frames into events.

Every frame goes through ``protocol.parse`` (pure). Control traffic stays here: a ``set_task``
acknowledgement or ``current_task`` saying ``running`` makes the connection ready;
``end_of_stream`` (or the older ``eos``) ends it; before readiness ``NOT_FOUND`` means "not yet"
and any other ``error`` rejects the task (``PalabraTaskRejected``, never retried). Everything else
goes to the consumer through the ``EventOutlet``: transcripts, speech, warnings, errors after
readiness, undecodable frames as ``ServerError("MALFORMED_MESSAGE")`` (an undecodable chunk of
speech also cuts that speech: ``SpeechLost``), and, with an ``auto``
source, ``LanguageDetected`` when the detected language first shows or changes. Queue-status
frames are ignored and unknown message types counted, never fatal (reference:
https://docs.palabra.ai/api/translation-management-web-socket-api).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
from trio_websocket import ConnectionClosed

from callbridge.errors import PalabraTaskRejected
from callbridge.log import get_logger
from callbridge.palabra.connection import Connection
from callbridge.palabra.events import ServerError, Transcript
from callbridge.palabra.failures import Dropped, close_code
from callbridge.palabra.outlet import EventOutlet
from callbridge.palabra.protocol import (
    CurrentTask,
    EndOfStream,
    Ignored,
    Incoming,
    Malformed,
    TaskSettings,
    TaskStatus,
    Unknown,
    detected_language,
    parse,
)
from callbridge.palabra.stats import LinkStats
from callbridge.roles import Direction

__all__ = ["LinkReader"]

log = get_logger("callbridge.palabra")


@attrs.define(eq=False)
class LinkReader:
    """Reads one connection at a time (see the module docstring). ``settings`` returns the task
    in force (``update_task`` may change it); ``closing`` says whether a close is expected."""

    direction: Direction
    stats: LinkStats
    outlet: EventOutlet
    settings: Callable[[], TaskSettings]
    closing: Callable[[], bool]
    _detected: str | None = None

    def forget_language(self) -> None:
        """A new task: announce the detected language again when it shows."""
        self._detected = None

    async def read(self, conn: Connection) -> None:
        """The reader task. Raises ``Dropped`` when the socket closes unexpectedly and
        ``PalabraTaskRejected`` when the task is refused; returns on an expected close."""
        while True:
            try:
                frame = await conn.ws.get_message()
            except ConnectionClosed as exc:
                if self.closing():
                    conn.ended.set()
                    return
                msg = f"connection closed ({close_code(exc)})"
                raise Dropped(msg) from None
            settings = self.settings()
            item = parse(
                frame,
                received_at=time.time(),
                source_language=settings.source_language,
                target_language=settings.target_language,
            )
            await self._handle(item, conn)

    async def _handle(self, item: Incoming, conn: Connection) -> None:
        if isinstance(item, TaskStatus | CurrentTask):
            self._on_status(item, conn)
        elif isinstance(item, EndOfStream):
            self.stats.eos_received += 1
            conn.ended.set()
        elif isinstance(item, ServerError):
            if self._on_error(item, conn):
                await self.outlet.emit(item)
        elif isinstance(item, Ignored):
            self.stats.ignored_frames += 1
        elif isinstance(item, Unknown):
            self._on_unknown(item)
        elif isinstance(item, Malformed):
            self.stats.malformed += 1
            log.warning(
                "palabra_malformed_frame",
                direction=self.direction.value,
                size=item.size,
                reason=item.reason,
            )
            await self.outlet.emit(item.as_error())
            if item.transcription_id:
                part = (item.transcription_id, item.translation_part_id)
                await self.outlet.speech_lost(part, "undecodable audio")
        else:
            conn.unanswered_speech_s = 0.0  # the server is answering
            conn.answered = True
            if isinstance(item, Transcript):
                await self._on_transcript(item)
            await self.outlet.emit(item)

    async def _on_transcript(self, transcript: Transcript) -> None:
        """With an ``auto`` source, announce the detected language once, and again on a change,
        before the transcript that shows it."""
        detected = detected_language(self.settings(), transcript)
        if detected is None or detected.language == self._detected:
            return
        self._detected = detected.language
        self.stats.languages_detected += 1
        log.info(
            "palabra_language_detected", direction=self.direction.value, language=detected.language
        )
        await self.outlet.emit(detected)

    def _on_status(self, item: TaskStatus | CurrentTask, conn: Connection) -> None:
        if isinstance(item, TaskStatus) and item.command != "set_task":
            log.info(
                "palabra_task_status", command=item.command, ack=item.event, status=item.status
            )
            return
        if isinstance(item, TaskStatus) and conn.ready.is_set():
            # The answer to update_task: updated, unchanged (or resumed).
            log.info("palabra_task_updated", direction=self.direction.value, ack=item.event)
            return
        if item.status == "running":
            conn.ready.set()
        elif not conn.ready.is_set():
            log.info("palabra_task_not_running", status=item.status)

    def _on_error(self, error: ServerError, conn: Connection) -> bool:
        """True when the error is for the consumer (after readiness)."""
        if not conn.ready.is_set():
            if error.code == "NOT_FOUND":  # older servers: the task is not running yet
                return False
            log.error(
                "palabra_task_rejected",
                direction=self.direction.value,
                code=error.code,
                desc=error.desc,
            )
            raise PalabraTaskRejected(error.code, error.desc)
        self.stats.errors += 1
        log.warning(
            "palabra_server_error", direction=self.direction.value, code=error.code, desc=error.desc
        )
        return True

    def _on_unknown(self, item: Unknown) -> None:
        seen = self.stats.unknown_types
        if item.message_type not in seen:
            log.info("palabra_unknown_message_type", message_type=item.message_type)
        seen[item.message_type] = seen.get(item.message_type, 0) + 1
