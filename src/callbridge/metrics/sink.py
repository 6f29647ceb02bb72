"""``MeteredTranscriptSink``: the transcript hub, plus the metrics its events carry.

Every call already reports what happens to each utterance through its ``TranscriptSink``: the
final transcription (with Palabra's end of speech), the translated text, and the moment Twilio
echoed the mark after the translation's last frame (heard to the end). Wrapping the sink turns
those events into ``callbridge_translation_latency_seconds`` observations, and the call's last
``call_updated`` (status ``ended``) into ``Metrics.call_ended``, without a line of metrics code in
the call.

Error handling: like the hub, it never raises into the caller (the audio path); events without
the fields it needs are passed on and not measured.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from callbridge.metrics.registry import CallMetrics
from callbridge.records import CallRecord
from callbridge.roles import Direction
from callbridge.transcripts.events import TranscriptEvent

__all__ = ["SPEECH_ENDS_KEPT", "MeteredTranscriptSink"]

SPEECH_ENDS_KEPT: Final = 64  # utterances per call awaiting their "played" mark


class _Sink(Protocol):
    def publish(self, event: Any) -> None: ...

    def call_updated(self, record: CallRecord) -> None: ...


class MeteredTranscriptSink:
    """Forwards to ``inner`` and records latencies and call ends in ``metrics``."""

    def __init__(self, inner: _Sink, metrics: CallMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        # call id -> utterance id -> Palabra's end of speech (epoch s), until heard or call end,
        # the latest SPEECH_ENDS_KEPT per call: utterances that are never heard (captions mode,
        # cut by a clear, dropped on overflow) must not pile up for the length of the call.
        self._speech_end: dict[str, dict[str, float]] = {}

    def publish(self, event: Any) -> None:
        self._inner.publish(event)
        if isinstance(event, TranscriptEvent) and isinstance(event.direction, Direction):
            self._observe(event, event.direction)

    def call_updated(self, record: CallRecord) -> None:
        self._inner.call_updated(record)
        if record.status == "ended":
            self._speech_end.pop(record.id, None)
            self._metrics.call_ended(record.id, record.end_reason or "unknown")

    def _observe(self, event: TranscriptEvent, direction: Direction) -> None:
        uid = event.utterance_id
        if uid is None:
            return
        ends = self._speech_end.setdefault(event.call_id, {})
        if event.kind == "final":
            ends.setdefault(uid, _epoch(event.data.get("speech_end_at")) or event.ts)
            if len(ends) > SPEECH_ENDS_KEPT:
                del ends[next(iter(ends))]  # the oldest: 64 utterances later, never heard
        elif event.kind == "translation" and uid in ends:
            self._metrics.translation_latency(direction, "text", event.ts - ends[uid])
        elif event.kind == "audio_started" and uid in ends:
            self._metrics.translation_latency(direction, "first_audio", event.ts - ends[uid])
        elif event.kind == "played" and uid in ends:
            heard = _epoch(event.data.get("played_at")) or event.ts
            self._metrics.translation_latency(direction, "played", heard - ends.pop(uid))


def _epoch(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
