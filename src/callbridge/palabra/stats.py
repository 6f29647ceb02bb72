"""A Palabra link's counters, for its ``palabra_link_ended`` log line, metrics and tests."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["LinkStats"]


@attrs.define
class LinkStats:
    """Counters of one link over its life (every connection). ``audio_ms_sent`` includes
    silence; ``*_ms`` are milliseconds of 24 kHz audio."""

    chunks_sent: int = 0
    silence_chunks_sent: int = 0
    audio_ms_sent: float = 0.0
    max_behind_ms: float = 0.0
    feed_drops: int = 0
    feed_dropped_ms: float = 0.0
    transcripts: int = 0
    speech_chunks: int = 0
    warnings: int = 0
    errors: int = 0
    events_dropped: int = 0
    speech_dropped: int = 0
    speech_cut: int = 0  # parts of speech that lost a chunk; their rest is dropped too
    malformed: int = 0
    ignored_frames: int = 0
    unknown_types: dict[str, int] = attrs.Factory(dict)
    connects: int = 0
    reconnects: int = 0
    output_stalls: int = 0  # connections dropped because speech got no answer
    ready_polls: int = 0
    eos_received: int = 0
    task_updates: int = 0
    languages_detected: int = 0

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)
