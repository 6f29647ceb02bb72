"""Fuzzing the Palabra message parser: ``parse`` never raises and always returns a typed value."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from callbridge.palabra.events import ServerError, ServerWarning, SpeechChunk, Transcript
from callbridge.palabra.protocol import (
    CurrentTask,
    EndOfStream,
    Ignored,
    Malformed,
    TaskStatus,
    Unknown,
    parse,
)

from .strategies import json_values, mutated, wire_text

INCOMING = (
    Transcript,
    SpeechChunk,
    ServerWarning,
    ServerError,
    TaskStatus,
    CurrentTask,
    EndOfStream,
    Ignored,
    Unknown,
    Malformed,
)
MESSAGE_TYPES = (
    "partial_transcription",
    "validated_transcription",
    "partial_translated_transcription",
    "translated_transcription",
    "output_audio_data",
    "warning",
    "error",
    "task_status",
    "current_task",
    "end_of_stream",
    "eos",
    "pipeline_timings",
)
# Well-formed ``data`` objects (shapes the PalabraAI/palabra-ai-python SDK parses), to mutate.
DATA: list[dict[str, Any]] = [
    {"transcription": {"transcription_id": "t1", "language": "en", "text": "hello"}},
    {
        "transcription_id": "t1",
        "translation_part_id": "0",
        "language": "es",
        "last_chunk": False,
        "data": base64.b64encode(b"\x01\x00\xff\x7f").decode(),
    },
    {"code": "NOT_FOUND", "desc": "No active task found", "param": None},
    {"command": "set_task", "event": "started", "task_status": "running"},
]


def check(frame: str | bytes) -> None:
    result = parse(frame, received_at=1.0, source_language="en", target_language="es")
    assert isinstance(result, INCOMING)
    if isinstance(result, Malformed):
        assert result.size == len(frame)
        assert result.as_error().code == "MALFORMED_MESSAGE"
    if isinstance(result, SpeechChunk):
        assert result.pcm.dtype == np.int16
    if isinstance(result, Transcript):
        assert result.transcription_id and isinstance(result.text, str)


@st.composite
def frames(draw: st.DrawFn) -> str:
    """A frame with a known or arbitrary type whose data is mutated, maybe double-encoded."""
    message_type = draw(st.one_of(st.sampled_from(MESSAGE_TYPES), json_values))
    data = draw(st.one_of(st.sampled_from(DATA).flatmap(mutated), json_values))
    if draw(st.booleans()):
        data = orjson.dumps(data).decode()  # the double-encoding quirk
    return orjson.dumps({"message_type": message_type, "data": data}).decode()


@given(st.one_of(st.text(), st.binary()))
def test_any_text_or_binary_frame(frame: str | bytes) -> None:
    check(frame)


@given(json_values)
def test_any_json_document(value: Any) -> None:
    check(orjson.dumps(value))


@given(frames())
def test_palabra_messages_with_fields_dropped_or_replaced(frame: str) -> None:
    check(frame)


@given(st.binary(max_size=4800).map(lambda b: b[: len(b) // 2 * 2]), wire_text, st.booleans())
def test_valid_speech_round_trips(pcm: bytes, transcription_id: str, last: bool) -> None:
    data = {
        "transcription_id": transcription_id,
        "language": "es",
        "last_chunk": last,
        "data": base64.b64encode(pcm).decode(),
    }
    frame = orjson.dumps({"message_type": "output_audio_data", "data": orjson.dumps(data).decode()})
    result = parse(frame, received_at=0.0)
    assert isinstance(result, SpeechChunk)
    assert result.pcm.tobytes() == pcm and result.last_chunk is last
