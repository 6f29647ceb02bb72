"""Settings of one simulator instance (the CLI builds them; tests construct them directly)."""

from __future__ import annotations

from pathlib import Path

import attrs

from callbridge.sim.palabra.faults import FaultPlan

__all__ = ["SimOptions"]


@attrs.frozen
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 0
    # Credentials the simulator accepts. API keys work as ?token= on the WebSocket and as
    # "Authorization: Bearer" on the REST API; the client id/secret pair on the REST API only.
    api_keys: tuple[str, ...] = ("sim-api-key",)
    client_id: str = "sim-client-id"
    client_secret: str = "sim-client-secret"
    script_path: Path | None = None  # None: tone mode
    ready_delay_s: float = 2.0  # set_task -> pipeline running (live: <= ~2 s)
    idle_timeout_s: float = 10.0  # no audio this long -> SERVICE_TIMEOUT + close 1008
    double_encode: bool = False  # send every message's data as a JSON string
    legacy_readiness: bool = False  # no task_status; get_task says NOT_FOUND until ready
    queue_status_interval_s: float = 1.0
    translation_delay_s: float = 0.3  # validated_transcription -> translated_transcription
    tts_delay_s: float = 0.3  # translated_transcription -> first output audio chunk
    output_speedup: float = 2.0  # output audio bursts run this many times faster than real time
    output_burst_chunks: int = 5  # 200 ms chunks per burst
    vad_threshold_dbfs: float = -40.0
    min_speech_s: float = 0.1
    partial_interval_s: float = 0.5
    too_fast_lead_s: float = 0.4
    too_slow_lag_s: float = 1.0
    stall_after_s: float = 1.0
    faults: FaultPlan = attrs.Factory(FaultPlan)
    # With source_language "auto": the language the speaker turns out to speak. Reported when it
    # is among the task's detectable_languages (or that list is empty), else the list's first.
    detect_language: str = "en"
