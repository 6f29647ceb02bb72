"""Server -> client message shapes, as the PalabraAI/palabra-ai-python SDK
parses them (https://github.com/PalabraAI/palabra-ai-python).

Every function returns the ``data`` object of one message (or a whole frame for queue status);
``frame`` wraps it into ``{"message_type", "data"}`` text, optionally double-encoding ``data`` as a
JSON string (a quirk every SDK handles; the simulator can switch it on).
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson

__all__ = [
    "current_task",
    "error",
    "frame",
    "output_audio",
    "pipeline_timings",
    "queue_status",
    "segment",
    "task_status",
    "transcription",
    "warning",
]

Json = dict[str, Any]


def frame(message_type: str, data: Json, *, double_encode: bool = False) -> str:
    payload: Any = orjson.dumps(data).decode() if double_encode else data
    return orjson.dumps({"message_type": message_type, "data": payload}).decode()


def queue_status(levels: dict[str, tuple[int, int]]) -> str:
    """A bare frame with no ``message_type`` (clients must ignore it): ``{}`` when idle."""
    body = {
        lang: {"current_queue_level_ms": current, "max_queue_level_ms": maximum}
        for lang, (current, maximum) in levels.items()
    }
    return orjson.dumps(body).decode()


def error(code: str, desc: str) -> Json:
    return {"code": code, "desc": desc, "param": None}


def warning(code: str, message: str) -> Json:
    return {"code": code, "message": message}


def task_status(command: str, event: str, status: str, transcription_id: str | None = None) -> Json:
    data: Json = {"command": command, "event": event, "task_status": status}
    if transcription_id is not None:
        data["transcription_id"] = transcription_id
    return data


def current_task(task: Json, status: str) -> Json:
    return {**task, "task_status": status}


def segment(text: str, start_s: float, end_s: float, stream_epoch: float) -> Json:
    """One segment; words spread evenly over its span (the live service sends ``words`` too)."""
    words = text.split()
    span = max(end_s - start_s, 0.0)
    step = span / len(words) if words else 0.0
    return {
        "text": text,
        "start": round(start_s, 3),
        "end": round(end_s, 3),
        "start_timestamp": round(stream_epoch + start_s, 6),
        "end_timestamp": round(stream_epoch + end_s, 6),
        "words": [
            {
                "word": w,
                "start": round(start_s + i * step, 3),
                "end": round(start_s + (i + 1) * step, 3),
            }
            for i, w in enumerate(words)
        ],
    }


def transcription(
    transcription_id: str,
    language: str,
    text: str,
    segments: list[Json],
    *,
    translation_part_id: int | None = None,
) -> Json:
    """``data`` of the transcript family; translations carry a NUMERIC ``translation_part_id``."""
    body: Json = {"transcription_id": transcription_id}
    if translation_part_id is not None:
        body["translation_part_id"] = translation_part_id
    body.update({"language": language, "text": text, "segments": segments})
    return {"transcription": body}


def output_audio(
    transcription_id: str, language: str, pcm: bytes, *, last_chunk: bool, compress: bool
) -> Json:
    """Flat ``output_audio_data``; here ``translation_part_id`` is the STRING ``"0"``."""
    payload = zlib.compress(pcm) if compress else pcm
    return {
        "transcription_id": transcription_id,
        "translation_part_id": "0",
        "language": language,
        "last_chunk": last_chunk,
        "data": base64.b64encode(payload).decode(),
        "chunk_generation_delta": None,
    }


def pipeline_timings(transcription_id: str, timings: dict[str, float]) -> Json:
    return {"transcription_id": transcription_id, "timings": timings}
