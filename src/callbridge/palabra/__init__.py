"""Palabra AI streaming speech-to-speech client on trio (see docs/palabra.md).

``open_palabra_link(config, direction, http)`` yields a ready ``PalabraLink`` for one direction.
"""

from __future__ import annotations

from callbridge.palabra.events import (
    ConnectionLost,
    LanguageDetected,
    PalabraEvent,
    ServerError,
    ServerWarning,
    SpeechChunk,
    SpeechLost,
    Transcript,
    TranscriptKind,
)
from callbridge.palabra.link import (
    Connector,
    LinkStats,
    PalabraLink,
    open_palabra_link,
    websocket_connector,
)
from callbridge.palabra.protocol import SAMPLE_RATE, TaskSettings, build_set_task

__all__ = [
    "SAMPLE_RATE",
    "ConnectionLost",
    "Connector",
    "LanguageDetected",
    "LinkStats",
    "PalabraEvent",
    "PalabraLink",
    "ServerError",
    "ServerWarning",
    "SpeechChunk",
    "SpeechLost",
    "TaskSettings",
    "Transcript",
    "TranscriptKind",
    "build_set_task",
    "open_palabra_link",
    "websocket_connector",
]
