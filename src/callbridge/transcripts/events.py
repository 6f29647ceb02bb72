"""Transcript values: the events a call publishes and the utterance rows built from them.

An utterance is the unit a person reads: one stretch of speech by one party, its recognised text in
the source language and its translation. Palabra reports it piecewise (partials, a final
transcription, a translation, later our own "played to the listener" mark), all sharing one
``transcription_id``; ``UtteranceState`` folds those pieces together, in whatever order they come.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import attrs

from callbridge.palabra.events import Transcript, TranscriptKind
from callbridge.records import CallRecord
from callbridge.roles import Direction

__all__ = [
    "EVENT_KINDS",
    "EventKind",
    "TranscriptEvent",
    "UtteranceState",
    "event_to_wire",
    "utterance_wire",
]

# Transcript text kinds (from Palabra), our own "played to the listener" mark, and record updates.
EventKind = Literal[TranscriptKind, "audio_started", "played", "call"]
EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))


@attrs.frozen
class TranscriptEvent:
    """Something that happened in a call, as the pages and the store see it.

    ``language`` is the source language for ``partial``/``final`` and the target language for
    ``translation*``. ``data`` carries extras: the ``CallRecord.snapshot()`` for ``call``,
    ``{"played_at": ts}`` for ``played``, optionally ``speech_end_at`` for ``final``.
    """

    call_id: str
    kind: EventKind
    direction: Direction | None
    utterance_id: str | None
    text: str
    language: str | None
    ts: float
    data: Mapping[str, object] = attrs.field(factory=dict)

    @classmethod
    def of_transcript(
        cls, call_id: str, direction: Direction, transcript: Transcript
    ) -> TranscriptEvent:
        """Text Palabra recognised or translated in ``direction``."""
        return cls(
            call_id=call_id,
            kind=transcript.kind,
            direction=direction,
            utterance_id=transcript.transcription_id,
            text=transcript.text,
            language=transcript.language,
            ts=transcript.received_at,
        )

    @classmethod
    def played(
        cls, call_id: str, direction: Direction, utterance_id: str, played_at: float
    ) -> TranscriptEvent:
        """The listener has heard the end of an utterance's translation (epoch seconds)."""
        return cls(
            call_id=call_id,
            kind="played",
            direction=direction,
            utterance_id=utterance_id,
            text="",
            language=None,
            ts=played_at,
            data={"played_at": played_at},
        )

    @classmethod
    def audio_started(
        cls, call_id: str, direction: Direction, utterance_id: str, heard_at: float
    ) -> TranscriptEvent:
        """The listener starts hearing an utterance's translation (epoch seconds: when its first
        frame went to Twilio plus the playout delay last measured). Only metrics use it."""
        return cls(
            call_id=call_id,
            kind="audio_started",
            direction=direction,
            utterance_id=utterance_id,
            text="",
            language=None,
            ts=heard_at,
        )

    @classmethod
    def call(cls, record: CallRecord, at: float) -> TranscriptEvent:
        """The call started, was answered or ended: its record as it is now."""
        return cls.call_snapshot(record.snapshot(), at)

    @classmethod
    def call_snapshot(cls, snapshot: dict[str, Any], at: float) -> TranscriptEvent:
        """A call event from a record's snapshot (``CallRecord.snapshot()``, or the store's row of
        a call no live ``CallRecord`` holds any more)."""
        return cls(
            call_id=str(snapshot["id"]),
            kind="call",
            direction=None,
            utterance_id=None,
            text="",
            language=None,
            ts=at,
            data=snapshot,
        )


def event_to_wire(event: TranscriptEvent) -> dict[str, Any]:
    """The JSON shape pages receive (the feed adds ``type`` and ``id``)."""
    direction = event.direction
    return {
        "call_id": event.call_id,
        "kind": event.kind,
        "direction": direction.value if direction is not None else None,
        "speaker": direction.speaker.value if direction is not None else None,
        "utterance_id": event.utterance_id,
        "text": event.text,
        "language": event.language,
        "ts": event.ts,
        "data": dict(event.data),
    }


def _as_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@attrs.define
class UtteranceState:
    """One utterance as known so far; ``apply`` folds in an event of the same ``utterance_id``.

    ``first_seen_at`` orders utterances in a call (the first piece seen, partial or final).
    """

    call_id: str
    utterance_id: str
    direction: Direction
    first_seen_at: float
    source_language: str | None = None
    source_text: str | None = None
    source_partial: str | None = None
    target_language: str | None = None
    translation: str | None = None
    translation_partial: str | None = None
    speech_end_at: float | None = None
    translated_at: float | None = None
    played_at: float | None = None

    @classmethod
    def start(cls, event: TranscriptEvent) -> UtteranceState:
        if event.direction is None or event.utterance_id is None:
            msg = f"a {event.kind} event needs a direction and an utterance_id"
            raise ValueError(msg)
        return cls(
            call_id=event.call_id,
            utterance_id=event.utterance_id,
            direction=event.direction,
            first_seen_at=event.ts,
        )

    def apply(self, event: TranscriptEvent) -> bool:
        """Fold ``event`` in; return True when the stored row changes (partials never do)."""
        kind = event.kind
        if kind == "partial":
            self.source_partial = event.text
            self.source_language = self.source_language or event.language
            return False
        if kind == "translation_partial":
            self.translation_partial = event.text
            self.target_language = self.target_language or event.language
            return False
        if kind == "final":
            self.source_text, self.source_partial = event.text, None
            self.source_language = event.language or self.source_language
            self.speech_end_at = _as_float(event.data.get("speech_end_at")) or event.ts
            return True
        if kind == "translation":
            self.translation, self.translation_partial = event.text, None
            self.target_language = event.language or self.target_language
            self.translated_at = event.ts
            return True
        if kind == "played":
            self.played_at = _as_float(event.data.get("played_at")) or event.ts
            return True
        return False

    def row(self) -> dict[str, Any]:
        """The persisted columns (``None`` = not known yet; the store keeps what it had)."""
        return {
            "call_id": self.call_id,
            "utterance_id": self.utterance_id,
            "direction": self.direction.value,
            "speaker": self.direction.speaker.value,
            "first_seen_at": self.first_seen_at,
            "source_language": self.source_language,
            "source_text": self.source_text,
            "target_language": self.target_language,
            "translation": self.translation,
            "speech_end_at": self.speech_end_at,
            "translated_at": self.translated_at,
            "played_at": self.played_at,
        }

    def to_wire(self) -> dict[str, Any]:
        """The row plus live-only partial text and latencies, as pages and the API show it."""
        wire = utterance_wire(self.row())
        wire["source_partial"] = self.source_partial
        wire["translation_partial"] = self.translation_partial
        return wire


def _ms_between(start: object, end: object) -> int | None:
    a, b = _as_float(start), _as_float(end)
    return round((b - a) * 1000) if a is not None and b is not None else None


def utterance_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored utterance row as the API shows it, with derived latencies in milliseconds."""
    wire = dict(row)
    wire["latency_ms"] = _ms_between(row.get("speech_end_at"), row.get("translated_at"))
    wire["played_latency_ms"] = _ms_between(row.get("speech_end_at"), row.get("played_at"))
    return wire
