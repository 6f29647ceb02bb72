"""Palabra's S2S WebSocket protocol without I/O: the task we send and the frames we receive.

Pure functions only (no clock, no sockets), so every wire shape is testable on its own:

- ``TaskSettings``, ``build_set_task``, ``task_data``: the ``set_task`` task (``palabra.task``,
  re-exported here);
- ``encode_*``: client messages as JSON text (orjson);
- ``parse(frame, ...)``: one server frame into a typed value (a ``PalabraEvent`` for the consumer,
  or a control value the link acts on). ``parse`` never raises on bad input: a frame it cannot
  decode becomes ``Malformed``.

Sources: Palabra's WebSocket API (https://docs.palabra.ai/api/translation-management-web-socket-api,
https://docs.palabra.ai/docs/quick-start/websockets) and the palabra-ai Python SDK.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeAlias

import attrs
import numpy as np
import orjson
from numpy.typing import NDArray

from callbridge.palabra.events import (
    LanguageDetected,
    PalabraEvent,
    ServerError,
    ServerWarning,
    SpeechChunk,
    Transcript,
    TranscriptKind,
)
from callbridge.palabra.task import AUTO, SAMPLE_RATE, TaskSettings, build_set_task, task_data

__all__ = [
    "SAMPLE_RATE",
    "CurrentTask",
    "EndOfStream",
    "Ignored",
    "Incoming",
    "Malformed",
    "TaskSettings",
    "TaskStatus",
    "Unknown",
    "build_set_task",
    "detected_language",
    "encode_end_task",
    "encode_get_task",
    "encode_input_audio",
    "encode_set_task",
    "parse",
    "task_data",
]


_TRANSCRIPT_KINDS: dict[str, TranscriptKind] = {
    "partial_transcription": "partial",
    "validated_transcription": "final",
    "partial_translated_transcription": "translation_partial",
    "translated_transcription": "translation",
}
# --- client -> server --------------------------------------------------------------------------


def _encode(message_type: str, data: Any) -> str:
    return orjson.dumps({"message_type": message_type, "data": data}).decode()


def encode_set_task(task: dict[str, Any]) -> str:
    return _encode("set_task", task)


def encode_get_task() -> str:
    return _encode("get_task", {})


def encode_end_task() -> str:
    # `{}`: graceful; the server delivers the tail, sends end_of_stream and closes (opening box).
    return _encode("end_task", {})


def encode_input_audio(pcm: np.ndarray[Any, np.dtype[np.int16]]) -> str:
    payload = base64.b64encode(pcm.astype("<i2", copy=False).tobytes()).decode("ascii")
    return _encode("input_audio_data", {"data": payload})


# --- server -> client --------------------------------------------------------------------------


@attrs.frozen
class TaskStatus:
    """``task_status``: the current server's acknowledgement of a command."""

    command: str
    event: str
    status: str


@attrs.frozen
class CurrentTask:
    """``current_task`` (answer to ``get_task``); ``status`` is ``running``, ``paused``, ..."""

    status: str


@attrs.frozen
class EndOfStream:
    """``end_of_stream`` (current) or ``eos`` (older): the tail after ``end_task`` is delivered."""


@attrs.frozen
class Ignored:
    """A frame without ``message_type`` (the once-a-second queue status objects)."""


@attrs.frozen
class Unknown:
    """A ``message_type`` this client does not handle (``pipeline_timings``, future types...)."""

    message_type: str


@attrs.frozen
class Malformed:
    """A frame that could not be decoded; ``size`` is the raw frame length."""

    size: int
    reason: str
    # An undecodable ``output_audio_data`` that still names its utterance: that speech lost a
    # chunk (``SpeechLost``).
    transcription_id: str = ""
    translation_part_id: int = 0

    def as_error(self) -> ServerError:
        return ServerError(code="MALFORMED_MESSAGE", desc=f"{self.reason} ({self.size} bytes)")


Incoming: TypeAlias = (
    PalabraEvent | TaskStatus | CurrentTask | EndOfStream | Ignored | Unknown | Malformed
)


def detected_language(settings: TaskSettings, transcript: Transcript) -> LanguageDetected | None:
    """The language Palabra detected, when the task's source is ``auto``: a source transcript
    (``partial``/``final``) carries it in ``transcription.language`` (palabra-ai-python v2.0.2
    ``events.py``; https://docs.palabra.ai).
    ``None`` for a task with a fixed source, a translation, or a transcript without a language."""
    if settings.source_language != AUTO or transcript.kind not in ("partial", "final"):
        return None
    language = transcript.language.strip().lower()
    if not language or language == AUTO:
        return None
    return LanguageDetected(
        language=language,
        transcription_id=transcript.transcription_id,
        received_at=transcript.received_at,
    )


class _BadFrame(ValueError):
    pass


class _BadSpeech(_BadFrame):
    """An ``output_audio_data`` whose audio cannot be decoded but whose utterance is known."""

    def __init__(self, reason: str, transcription_id: str, translation_part_id: int) -> None:
        super().__init__(reason)
        self.transcription_id = transcription_id
        self.translation_part_id = translation_part_id


def parse(
    frame: str | bytes,
    *,
    received_at: float,
    source_language: str = "",
    target_language: str = "",
) -> Incoming:
    """Decode one server frame. ``data`` may be an object or a JSON string holding one (the
    double-encoding quirk every official SDK handles, e.g. palabra-ai-python v2.0.2
    ``client.py``: "server may double-encode data"). ``source_language``/``target_language``
    fill in a transcript's language when the server leaves it out."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Malformed(len(frame), "invalid JSON")
    if not isinstance(message, dict) or "message_type" not in message:
        return Ignored()
    message_type = message["message_type"]
    try:
        if not isinstance(message_type, str):
            msg = "message_type is not a string"
            raise _BadFrame(msg)
        data = _data_object(message.get("data"))
        return _dispatch(message_type, data, received_at, source_language, target_language)
    except _BadSpeech as exc:
        # Still one utterance's chunk: the link must know that speech has a hole.
        return Malformed(
            len(frame), f"{message_type}: {exc}", exc.transcription_id, exc.translation_part_id
        )
    except _BadFrame as exc:
        return Malformed(len(frame), f"{message_type}: {exc}")


def _data_object(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            msg = "data is a string but not JSON"
            raise _BadFrame(msg) from None
    if not isinstance(data, dict):
        msg = "data is not an object"
        raise _BadFrame(msg)
    return data


def _dispatch(
    message_type: str, data: dict[str, Any], received_at: float, source: str, target: str
) -> Incoming:
    kind = _TRANSCRIPT_KINDS.get(message_type)
    if kind is not None:
        default_language = source if kind in ("partial", "final") else target
        return _transcript(kind, data, received_at, default_language)
    if message_type == "output_audio_data":
        return _speech(data, received_at, target)
    if message_type == "warning":
        return ServerWarning(
            code=_text(data, "code", "UNKNOWN_WARNING"), message=_text(data, "message")
        )
    if message_type == "error":
        return ServerError(code=_text(data, "code", "UNKNOWN_ERROR"), desc=_error_desc(data))
    if message_type == "task_status":
        return TaskStatus(
            command=_text(data, "command"),
            event=_text(data, "event"),
            status=_text(data, "task_status"),
        )
    if message_type == "current_task":
        return CurrentTask(status=_text(data, "task_status") or _text(data, "status"))
    if message_type in ("end_of_stream", "eos"):
        return EndOfStream()
    return Unknown(message_type)


def _text(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def _error_desc(data: dict[str, Any]) -> str:
    # Sources disagree on the field (the SDKs, Palabra's JavaScript model and its docs): desc,
    # description, msg; desc may be a list.
    for key in ("desc", "description", "msg", "details"):
        value = data.get(key)
        if value:
            return value if isinstance(value, str) else orjson.dumps(value).decode()
    return ""


def _transcript(
    kind: TranscriptKind, data: dict[str, Any], received_at: float, default_language: str
) -> Transcript:
    body = data.get("transcription")
    if not isinstance(body, dict):
        msg = "no transcription object"
        raise _BadFrame(msg)
    transcription_id = _text(body, "transcription_id")
    if not transcription_id:
        msg = "no transcription_id"
        raise _BadFrame(msg)
    return Transcript(
        kind=kind,
        transcription_id=transcription_id,
        text=_text(body, "text"),
        language=_text(body, "language") or default_language,
        received_at=received_at,
        translation_part_id=_part_id(body),
    )


def _part_id(data: dict[str, Any]) -> int:
    """``translation_part_id``: a number on transcripts, a string on audio (as the
    live service sends them; the SDK's ``events.py`` reads both);
    0 when absent (source transcripts, older servers)."""
    value = data.get("translation_part_id")
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    msg = f"translation_part_id {value!r} is not a part number"
    raise _BadFrame(msg)


def _speech(data: dict[str, Any], received_at: float, default_language: str) -> SpeechChunk:
    transcription_id = _text(data, "transcription_id")
    part = _part_id(data)
    try:
        pcm = _pcm(data.get("data"))
    except _BadFrame as exc:
        if not transcription_id:
            raise
        raise _BadSpeech(str(exc), transcription_id, part) from None
    return SpeechChunk(
        transcription_id=transcription_id,
        language=_text(data, "language") or default_language,
        pcm=pcm,
        last_chunk=bool(data.get("last_chunk", False)),
        received_at=received_at,
        translation_part_id=part,
    )


def _pcm(payload: object) -> NDArray[np.int16]:
    if not isinstance(payload, str):
        msg = "no audio payload"
        raise _BadFrame(msg)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        msg = "audio payload is not base64"
        raise _BadFrame(msg) from None
    if len(raw) % 2:
        msg = "odd number of PCM bytes"
        raise _BadFrame(msg)
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)
