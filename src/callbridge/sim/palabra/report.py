"""What the simulator saw and did, served as JSON at ``GET /_sim/report``.

All ``*_at`` values are wall-clock ``time.time()`` seconds, so reports from two simulator
processes (and the daemon's logs) can be lined up. Speech start/end are the wall times the audio
was spoken at, assuming the client streams in real time (see ``AudioTimeline``).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ConnectionReport", "Notice", "SessionReport", "UtteranceReport"]


@attrs.define
class Notice:
    code: str
    at: float


@attrs.define
class UtteranceReport:
    number: int
    transcription_id: str
    source_language: str
    speech_start_at: float | None
    kind: str = "speech"  # "speech" (VAD) or "tts" (tts_task)
    speech_number: int | None = None  # k-th VAD utterance of the connection (the "#k" in texts)
    source_text: str = ""
    script_turn: int | None = None
    speech_start_s: float | None = None  # audio seconds since the stream started
    speech_end_s: float | None = None
    speech_end_at: float | None = None
    validated_at: float | None = None
    translated_texts: dict[str, str] = attrs.Factory(dict)
    translation_sent_at: float | None = None
    first_audio_chunk_at: float | None = None
    last_audio_chunk_at: float | None = None
    audio_chunks: int = 0
    audio_s: float = 0.0
    interrupted: bool = False

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class ConnectionReport:
    id: str
    path: str
    auth_mode: str  # "api_key" or "session"
    connected_at: float
    session_id: str | None = None
    set_task_count: int = 0
    source_language: str | None = None  # of the task running now ("auto" while detecting)
    target_languages: list[str] = attrs.Factory(list)
    detected_language: str | None = None  # what an "auto" source was detected as
    # Every accepted set_task in order: {"at", "event" (started/updated/unchanged/resumed),
    # "source_language", "detectable_languages", "target_languages", "task" (as sent)}.
    tasks: list[dict[str, Any]] = attrs.Factory(list)
    task_rejected: int = 0
    ready_at: float | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    audio_s: float = 0.0
    audio_chunks: int = 0
    ignored_audio_chunks: int = 0  # before readiness, while paused, after end_task
    commands: dict[str, int] = attrs.Factory(dict)
    task_status_sent: list[str] = attrs.Factory(list)  # "set_task:started", ...
    warnings: list[Notice] = attrs.Factory(list)
    errors: list[Notice] = attrs.Factory(list)
    utterances: list[UtteranceReport] = attrs.Factory(list)
    suppressed_messages: int = 0  # swallowed by the stall_output fault
    end_task_at: float | None = None
    end_task_force: bool | None = None
    eos_sent_at: float | None = None
    closed_at: float | None = None
    close_code: int | None = None
    closed_by: str | None = None  # "client", "server" or "dropped"

    def count_command(self, name: str) -> None:
        self.commands[name] = self.commands.get(name, 0) + 1

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class SessionReport:
    id: str
    auth_mode: str  # "client_credentials" or "bearer"
    intent: str
    created_at: float
    deleted_at: float | None = None
    connections: int = 0

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)
