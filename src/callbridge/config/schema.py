"""The config tree: one frozen attrs class per ``config.toml`` section, and ``Config`` itself.

Each field's metadata (``fields.setting``) is the single source of its doc line, range, choices
and seed variable: ``loading`` validates against it, ``scripts/gen_config_toml.py`` writes
``config.toml`` from it, and a test keeps ``docs/configuration.md``'s table in step with it.
"""

from __future__ import annotations

import socket

import attrs

from callbridge.config.fields import (
    DIRECTION_MODES,
    DirectionMode,
    Secret,
    collect_secrets,
    setting,
    setting_meta,
)
from callbridge.config.prompts import PromptsConfig
from callbridge.roles import Direction

__all__ = [
    "ClusterConfig",
    "Config",
    "DirectionOverrides",
    "LanguagesConfig",
    "LogConfig",
    "MediaConfig",
    "MetricsConfig",
    "OperatorEntry",
    "OperatorsConfig",
    "PalabraConfig",
    "ServerConfig",
    "TranscriptsConfig",
    "TwilioConfig",
]


@attrs.frozen
class ServerConfig:
    host: str = setting("127.0.0.1", "address to bind")
    port: int = setting(8000, "port to bind (0 picks a free one)", range=(0, 65535), env="PORT")
    public_url: str = setting(
        "",
        "how Twilio reaches us, e.g. https://bridge.example.com (seed: HOST); every URL handed to "
        "Twilio and every signature check uses it. Empty means http://host:port",
    )
    state_dir: str = setting("state", "directory for the SQLite transcript store")
    max_calls: int = setting(
        10, "concurrent calls admitted; more hear the busy message", range=(1, 10000)
    )
    shutdown_grace_s: float = setting(
        10.0, "how long live calls may finish on SIGTERM", range=(0, 3600)
    )
    web_token: Secret | None = setting(
        None,
        "transcript pages and API token (env CALLBRIDGE_WEB_TOKEN)",
        env="CALLBRIDGE_WEB_TOKEN",
    )


@attrs.frozen
class TwilioConfig:
    account_sid: str = setting(
        "", "Twilio account SID (seed: TWILIO_ACCOUNT_SID)", env="TWILIO_ACCOUNT_SID"
    )
    auth_token: Secret | None = setting(None, "env TWILIO_AUTH_TOKEN", env="TWILIO_AUTH_TOKEN")
    number: str = setting(
        "", "our Twilio number, caller id for operator calls", env="TWILIO_NUMBER"
    )
    api_base_url: str = setting(
        "https://api.twilio.com", "Twilio REST base URL (a simulator in tests)"
    )
    validate_signatures: bool = setting(
        True, "check X-Twilio-Signature; false only for experiments"
    )
    request_timeout_s: float = setting(10.0, "timeout of one REST request", range=(0.1, 120))
    max_retries: int = setting(3, "REST retries on 429/5xx/transport errors", range=(0, 10))


@attrs.frozen
class OperatorEntry:
    """One ``[[operators.team]]`` entry: an operator line and the languages its person speaks
    (the first is the one translated to when they do not speak the caller's)."""

    number: str = setting("", "operator number, E.164 (+15551234567), sip: or client:")
    languages: list[str] = setting([], "languages this operator speaks, first = main")
    name: str = setting("", "shown on the transcript page (optional)")


@attrs.frozen
class OperatorsConfig:
    numbers: list[str] = setting(
        [], "operator phone numbers, E.164 (seed: OPERATOR_NUMBER)", env="OPERATOR_NUMBER"
    )
    team: list[OperatorEntry] = setting(
        [],
        "operators with their languages: [[operators.team]] number, languages, name (file only)",
    )
    ring_timeout_s: int = setting(25, "how long an operator's phone rings", range=(5, 600))
    max_attempts: int = setting(
        3, "operators tried before the caller hears the apology", range=(1, 20)
    )


@attrs.frozen
class LanguagesConfig:
    caller: str = setting(
        "en", "caller's language, or auto (seed: SOURCE_LANGUAGE)", env="SOURCE_LANGUAGE"
    )
    operator: str = setting(
        "es", "operator's language, or auto (seed: TARGET_LANGUAGE)", env="TARGET_LANGUAGE"
    )
    caller_detectable: list[str] = setting([], "languages to detect when caller = auto")
    operator_detectable: list[str] = setting([], "languages to detect when operator = auto")
    by_prefix: dict[str, str] = setting(
        {}, 'caller\'s language by number prefix, e.g. "+7" = "ru"; longest prefix wins'
    )
    menu: list[str] = setting(
        [], "keypad menu: press 1 for the first language, 2 for the second... (empty: no menu)"
    )
    menu_timeout_s: int = setting(
        5,
        "seconds the menu waits for a key after its prompts, each of its two rounds",
        range=(1, 30),
    )


@attrs.frozen
class DirectionOverrides:
    """Per-direction Palabra settings; ``None`` means "use the [palabra] value"."""

    voice_id: str | None = setting(None, "TTS voice for this direction")
    voice_cloning: bool | None = setting(None, "speak the translation in the speaker's own voice")
    voice_timbre_detection: bool | None = setting(
        None, "pick a high or low voice by the speaker's timbre"
    )
    segment_confirmation_silence_threshold: float | None = setting(
        None, "silence (s) that ends an utterance", range=(0.3, 5.0)
    )
    translate_partials: bool | None = setting(None, "translate partial transcripts too")
    desired_queue_level_ms: int | None = setting(None, "TTS queue target", range=(1000, 60000))
    max_queue_level_ms: int | None = setting(None, "TTS queue limit", range=(2000, 120000))
    auto_tempo: bool | None = setting(None, "let Palabra speed up TTS when its queue grows")


@attrs.frozen
class PalabraConfig:
    api_base_url: str = setting(
        "https://api.palabra.ai", "legacy REST base (client id/secret mode)"
    )
    streaming_url: str = setting(
        "wss://streaming.palabra.ai/streaming-api/{random_hash}/v1/speech-to-speech/stream",
        "API-key mode WebSocket URL; {random_hash} becomes a fresh random string per connection",
    )
    api_key: Secret | None = setting(
        None, "env PALABRA_API_KEY (current auth)", env="PALABRA_API_KEY"
    )
    client_id: Secret | None = setting(
        None, "env PALABRA_CLIENT_ID (legacy auth)", env="PALABRA_CLIENT_ID"
    )
    client_secret: Secret | None = setting(
        None, "env PALABRA_CLIENT_SECRET", env="PALABRA_CLIENT_SECRET"
    )
    chunk_ms: int = setting(320, "audio per input_audio_data message", range=(20, 1000))
    voice_id: str = setting("default_low", "TTS voice")
    voice_cloning: bool = setting(False, "speak the translation in the speaker's own voice")
    voice_timbre_detection: bool = setting(
        False, "pick a high or low voice by the speaker's timbre (the lists below)"
    )
    high_timbre_voices: list[str] = setting(
        ["default_high"], "voices for high-timbre speakers (timbre detection)"
    )
    low_timbre_voices: list[str] = setting(
        ["default_low"], "voices for low-timbre speakers (timbre detection)"
    )
    segment_confirmation_silence_threshold: float = setting(
        0.7, "silence (s) that ends an utterance", range=(0.3, 5.0)
    )
    translate_partials: bool = setting(False, "translate partial transcripts too")
    desired_queue_level_ms: int = setting(8000, "TTS queue target", range=(1000, 60000))
    max_queue_level_ms: int = setting(24000, "TTS queue limit", range=(2000, 120000))
    auto_tempo: bool = setting(True, "let Palabra speed up TTS when its queue grows")
    min_tempo: float = setting(1.0, "slowest auto tempo", range=(0.5, 2.0))
    max_tempo: float = setting(1.2, "fastest auto tempo", range=(0.5, 2.0))
    connect_timeout_s: float = setting(10.0, "WebSocket connect + handshake", range=(0.5, 120))
    ready_timeout_s: float = setting(30.0, "set_task until the task runs", range=(1, 300))
    ready_poll_interval_s: float = setting(
        2.1, "get_task polling for older servers", range=(0.1, 30)
    )
    end_timeout_s: float = setting(4.0, "end_task until end_of_stream", range=(0.1, 60))
    ping_interval_s: float = setting(10.0, "WebSocket ping interval", range=(1, 300))
    ping_timeout_s: float = setting(30.0, "no pong for this long = dead link", range=(1, 600))
    reconnect_attempts: int = setting(3, "reconnects per link before the call fails", range=(0, 20))
    output_stall_s: float | None = setting(
        8.0,
        "speech sent with no transcript or translated speech back = a stalled link, reconnected",
        range=(1, 600),
        off=True,
    )
    reconnect_budget_s: float = setting(
        20.0, "total time spent reconnecting before failing", range=(0, 600)
    )
    rest_retries: int = setting(3, "legacy session create retries on 5xx/transport", range=(0, 10))
    input_buffer_ms: int = setting(
        5000, "speech buffered per link while it (re)connects", range=(500, 60000)
    )
    caller_to_operator: DirectionOverrides = attrs.field(
        factory=DirectionOverrides,
        metadata=setting_meta("overrides for the caller -> operator direction"),
    )
    operator_to_caller: DirectionOverrides = attrs.field(
        factory=DirectionOverrides,
        metadata=setting_meta("overrides for the operator -> caller direction"),
    )


@attrs.frozen
class MediaConfig:
    caller_to_operator: str = setting(
        "voice",
        "what the operator hears of the caller",
        choices=DIRECTION_MODES,
    )
    operator_to_caller: str = setting(
        "voice",
        "what the caller hears of the operator",
        choices=DIRECTION_MODES,
    )
    translation_gain_db: float | None = setting(
        0.0, "translated speech level", range=(-60, 20), off=True
    )
    original_gain_db: float | None = setting(
        -6.0, "original voice level when no translation plays", range=(-60, 20), off=True
    )
    original_duck_gain_db: float | None = setting(
        -18.0, "original voice level under translated speech", range=(-60, 20), off=True
    )
    translation_queue_s: float = setting(
        20.0, "translated speech queued per listener before overflow", range=(1, 600)
    )
    legs_connect_timeout_s: float = setting(
        15.0, "both media legs must connect this soon", range=(1, 300)
    )
    leg_idle_timeout_s: float = setting(
        5.0, "a leg with no valid message this long has failed", range=(0.5, 300)
    )
    hold_audio: str = setting("", "WAV file looped to the caller on hold (empty: built-in chime)")
    playout_target_ms: int = setting(
        20,
        "audio allowed to wait in Twilio's playout buffer before a frame is dropped",
        range=(0, 1000),
    )
    outbound_frame_ms: int = setting(
        20,
        "audio per media message sent to Twilio, a multiple of 20; 40 halves the messages "
        "(less CPU per call) and adds 20 ms of latency",
        range=(20, 100),
    )

    def mode(self, direction: Direction) -> DirectionMode:
        """What the listener of ``direction`` hears (validated against ``DIRECTION_MODES``)."""
        mode: DirectionMode = getattr(self, direction.value)
        return mode


@attrs.frozen
class TranscriptsConfig:
    retention_days: int = setting(30, "calls older than this are pruned", range=(1, 3650))
    replay_events: int = setting(
        256, "live events kept per call for reconnecting pages", range=(10, 100000)
    )
    subscriber_queue: int = setting(
        256, "events queued per page before it is dropped as too slow", range=(8, 100000)
    )
    heartbeat_s: float = setting(15.0, "feed heartbeat interval", range=(1, 300))
    recent_calls: int = setting(50, "ended calls listed by /api/calls", range=(1, 10000))
    database_url: str = setting(
        "",
        "shared PostgreSQL store, postgresql://user@host:5432/db (password from PGPASSWORD or "
        "~/.pgpass); empty means SQLite under server.state_dir",
    )
    store_timeout_s: float = setting(
        10.0, "reads and shutdown give up on a store writer silent this long", range=(0.5, 600)
    )


@attrs.frozen
class ClusterConfig:
    """Several instances behind one number (docs/cluster.md); off while ``redis_url`` is empty."""

    redis_url: str = setting(
        "",
        "Redis for cluster mode, redis://host:6379/0 (password from CALLBRIDGE_REDIS_PASSWORD); "
        "empty means one instance on its own",
    )
    redis_password: Secret | None = setting(
        None, "env CALLBRIDGE_REDIS_PASSWORD", env="CALLBRIDGE_REDIS_PASSWORD"
    )
    instance_id: str = setting(
        "", "this instance's unique name in the cluster; empty means hostname:port"
    )
    instance_url: str = setting(
        "",
        "this instance's own base URL (its hostname, or a path prefix the proxy routes to it); "
        "empty means server.public_url",
    )
    heartbeat_s: float = setting(
        2.0, "registry heartbeat; three missed heartbeats mark an instance dead", range=(0.2, 60)
    )
    key_prefix: str = setting("callbridge", "prefix of every Redis key this cluster uses")
    command_timeout_s: float = setting(
        5.0, "timeout of one Redis command (connect, send, reply)", range=(0.1, 60)
    )


@attrs.frozen
class LogConfig:
    level: str = setting("info", "log level", choices=("debug", "info", "warning", "error"))
    format: str = setting(
        "auto", "json on a pipe, console on a TTY", choices=("auto", "json", "console")
    )


@attrs.frozen
class MetricsConfig:
    listen: str = setting(
        "",
        "host:port of a separate /metrics listener without a token (e.g. 127.0.0.1:9464); "
        "empty: /metrics on the main port, behind the web token",
    )


@attrs.frozen
class Config:
    server: ServerConfig = attrs.field(factory=ServerConfig)
    twilio: TwilioConfig = attrs.field(factory=TwilioConfig)
    operators: OperatorsConfig = attrs.field(factory=OperatorsConfig)
    languages: LanguagesConfig = attrs.field(factory=LanguagesConfig)
    palabra: PalabraConfig = attrs.field(factory=PalabraConfig)
    media: MediaConfig = attrs.field(factory=MediaConfig)
    prompts: PromptsConfig = attrs.field(factory=PromptsConfig)
    transcripts: TranscriptsConfig = attrs.field(factory=TranscriptsConfig)
    cluster: ClusterConfig = attrs.field(factory=ClusterConfig)
    log: LogConfig = attrs.field(factory=LogConfig)
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)

    @property
    def public_url(self) -> str:
        """``server.public_url`` without a trailing slash, or the bind address when unset."""
        url = self.server.public_url or f"http://{self.server.host}:{self.server.port}"
        return url.rstrip("/")

    @property
    def instance_id(self) -> str:
        """``cluster.instance_id``, or ``hostname:port`` when unset (unique per process on a host)."""
        return self.cluster.instance_id or f"{socket.gethostname()}:{self.server.port}"

    @property
    def instance_url(self) -> str:
        """``cluster.instance_url`` without a trailing slash, or ``public_url`` when unset."""
        return self.cluster.instance_url.rstrip("/") or self.public_url

    def secrets(self) -> list[str]:
        """Every configured secret value, for log redaction."""
        found: list[str] = []
        collect_secrets(self, found)
        return found
