"""Builders shared by the transcript and web tests."""

from __future__ import annotations

import time
from pathlib import Path

from callbridge.config import Config, Secret, ServerConfig, TranscriptsConfig
from callbridge.records import CallRecord
from callbridge.roles import Direction
from callbridge.transcripts import TranscriptEvent

TOKEN = "test-token-0123456789"


def make_config(state_dir: Path, *, token: str | None = TOKEN, **transcripts: object) -> Config:
    return Config(
        server=ServerConfig(
            state_dir=str(state_dir), web_token=Secret(token) if token is not None else None
        ),
        transcripts=TranscriptsConfig(**transcripts),  # type: ignore[arg-type]
    )


def make_record(call_id: str = "call-1", **changes: object) -> CallRecord:
    record = CallRecord(
        id=call_id,
        caller_sid="CA" + call_id,
        caller_number="+15550001111",
        caller_language="en",
        operator_language="es",
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def event(
    kind: str,
    utterance_id: str = "u1",
    text: str = "",
    *,
    call_id: str = "call-1",
    direction: Direction = Direction.CALLER_TO_OPERATOR,
    language: str | None = None,
    ts: float | None = None,
    **data: object,
) -> TranscriptEvent:
    if language is None:
        language = "es" if kind.startswith("translation") else "en"
    return TranscriptEvent(
        call_id=call_id,
        kind=kind,  # type: ignore[arg-type]
        direction=direction,
        utterance_id=utterance_id,
        text=text,
        language=language,
        ts=time.time() if ts is None else ts,
        data=data,
    )


def utterance_events(
    utterance_id: str, source: str, translation: str, *, call_id: str = "call-1", t0: float = 1000.0
) -> list[TranscriptEvent]:
    """A whole utterance: partial, final, translation, played."""
    return [
        event("partial", utterance_id, source[: len(source) // 2], call_id=call_id, ts=t0),
        event("final", utterance_id, source, call_id=call_id, ts=t0 + 1.0),
        event("translation", utterance_id, translation, call_id=call_id, ts=t0 + 1.8),
        event("played", utterance_id, call_id=call_id, ts=t0 + 2.5, played_at=t0 + 2.5),
    ]
