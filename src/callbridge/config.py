"""Configuration: ``config.toml`` plus the environment, validated once into a frozen attrs tree.

Sources, later ones winning:

1. defaults declared on the classes below;
2. the TOML file;
3. the seed demo's variables (``HOST``, ``PORT``, ``TWILIO_NUMBER``, ...), so an old ``.env`` works;
4. ``CALLBRIDGE_<SECTION>_<KEY>`` for any key (``CALLBRIDGE_PALABRA_CHUNK_MS=640``).

Secrets (``Secret`` fields) come only from the environment; a secret written into the file is an
error, so it cannot end up in version control by accident.

Error handling: every problem found is collected and raised together as one ``ConfigError`` whose
``problems`` read ``section.key: must be ..., got ...``.
"""

from __future__ import annotations

import copy
import functools
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import attrs

from callbridge.errors import ConfigError

__all__ = [
    "MIN_WEB_TOKEN_CHARS",
    "SECRET_ENV",
    "Config",
    "DirectionMode",
    "DirectionOverrides",
    "LanguagesConfig",
    "LogConfig",
    "MediaConfig",
    "OperatorsConfig",
    "PalabraConfig",
    "PromptsConfig",
    "Secret",
    "ServerConfig",
    "TranscriptsConfig",
    "TwilioConfig",
    "config_as_dict",
    "load_config",
    "pick_prompt",
    "read_env_file",
]

DirectionMode = Literal["voice", "captions", "passthrough"]


@attrs.frozen(repr=False)
class Secret:
    """A secret string that never shows itself in ``repr``/``str``, so it cannot leak into logs."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def _meta(
    doc: str,
    *,
    range: tuple[float, float] | None = None,
    choices: tuple[str, ...] | None = None,
    env: str | None = None,
    off: bool = False,
) -> dict[str, Any]:
    """Field metadata: a one-line doc, numeric range, choices, a seed env var, and whether the
    value may be the string "off" (stored as ``None``)."""
    return {"doc": doc, "range": range, "choices": choices, "env": env, "off": off}


def _field(default: Any, doc: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return attrs.field(factory=functools.partial(copy.copy, default), metadata=_meta(doc, **kw))
    return attrs.field(default=default, metadata=_meta(doc, **kw))


@attrs.frozen
class ServerConfig:
    host: str = _field("127.0.0.1", "address to bind")
    port: int = _field(8000, "port to bind (0 picks a free one)", range=(0, 65535), env="PORT")
    public_url: str = _field(
        "",
        "how Twilio reaches us, e.g. https://bridge.example.com (seed: HOST); every URL handed to "
        "Twilio and every signature check uses it. Empty means http://host:port",
    )
    state_dir: str = _field("state", "directory for the SQLite transcript store")
    max_calls: int = _field(
        10, "concurrent calls admitted; more hear the busy message", range=(1, 10000)
    )
    shutdown_grace_s: float = _field(
        10.0, "how long live calls may finish on SIGTERM", range=(0, 3600)
    )
    web_token: Secret | None = _field(
        None,
        "transcript pages and API token (env CALLBRIDGE_WEB_TOKEN)",
        env="CALLBRIDGE_WEB_TOKEN",
    )


@attrs.frozen
class TwilioConfig:
    account_sid: str = _field(
        "", "Twilio account SID (seed: TWILIO_ACCOUNT_SID)", env="TWILIO_ACCOUNT_SID"
    )
    auth_token: Secret | None = _field(None, "env TWILIO_AUTH_TOKEN", env="TWILIO_AUTH_TOKEN")
    number: str = _field("", "our Twilio number, caller id for operator calls", env="TWILIO_NUMBER")
    api_base_url: str = _field(
        "https://api.twilio.com", "Twilio REST base URL (a simulator in tests)"
    )
    validate_signatures: bool = _field(True, "check X-Twilio-Signature; false only for experiments")
    request_timeout_s: float = _field(10.0, "timeout of one REST request", range=(0.1, 120))
    max_retries: int = _field(3, "REST retries on 429/5xx/transport errors", range=(0, 10))


@attrs.frozen
class OperatorsConfig:
    numbers: list[str] = _field(
        [], "operator phone numbers, E.164 (seed: OPERATOR_NUMBER)", env="OPERATOR_NUMBER"
    )
    ring_timeout_s: int = _field(25, "how long an operator's phone rings", range=(5, 600))
    max_attempts: int = _field(
        3, "operators tried before the caller hears the apology", range=(1, 20)
    )


@attrs.frozen
class LanguagesConfig:
    caller: str = _field(
        "en", "caller's language, or auto (seed: SOURCE_LANGUAGE)", env="SOURCE_LANGUAGE"
    )
    operator: str = _field(
        "es", "operator's language, or auto (seed: TARGET_LANGUAGE)", env="TARGET_LANGUAGE"
    )
    caller_detectable: list[str] = _field([], "languages to detect when caller = auto")
    operator_detectable: list[str] = _field([], "languages to detect when operator = auto")


@attrs.frozen
class DirectionOverrides:
    """Per-direction Palabra settings; ``None`` means "use the [palabra] value"."""

    voice_id: str | None = _field(None, "TTS voice for this direction")
    segment_confirmation_silence_threshold: float | None = _field(
        None, "silence (s) that ends an utterance", range=(0.3, 5.0)
    )
    translate_partials: bool | None = _field(None, "translate partial transcripts too")
    desired_queue_level_ms: int | None = _field(None, "TTS queue target", range=(1000, 60000))
    max_queue_level_ms: int | None = _field(None, "TTS queue limit", range=(2000, 120000))
    auto_tempo: bool | None = _field(None, "let Palabra speed up TTS when its queue grows")


@attrs.frozen
class PalabraConfig:
    api_base_url: str = _field("https://api.palabra.ai", "legacy REST base (client id/secret mode)")
    streaming_url: str = _field(
        "wss://streaming.palabra.ai/streaming-api/{random_hash}/v1/speech-to-speech/stream",
        "API-key mode WebSocket URL; {random_hash} becomes a fresh random string per connection",
    )
    api_key: Secret | None = _field(
        None, "env PALABRA_API_KEY (current auth)", env="PALABRA_API_KEY"
    )
    client_id: Secret | None = _field(
        None, "env PALABRA_CLIENT_ID (legacy auth)", env="PALABRA_CLIENT_ID"
    )
    client_secret: Secret | None = _field(
        None, "env PALABRA_CLIENT_SECRET", env="PALABRA_CLIENT_SECRET"
    )
    chunk_ms: int = _field(320, "audio per input_audio_data message", range=(20, 1000))
    voice_id: str = _field("default_low", "TTS voice")
    segment_confirmation_silence_threshold: float = _field(
        0.7, "silence (s) that ends an utterance", range=(0.3, 5.0)
    )
    translate_partials: bool = _field(False, "translate partial transcripts too")
    desired_queue_level_ms: int = _field(8000, "TTS queue target", range=(1000, 60000))
    max_queue_level_ms: int = _field(24000, "TTS queue limit", range=(2000, 120000))
    auto_tempo: bool = _field(True, "let Palabra speed up TTS when its queue grows")
    min_tempo: float = _field(1.0, "slowest auto tempo", range=(0.5, 2.0))
    max_tempo: float = _field(1.2, "fastest auto tempo", range=(0.5, 2.0))
    connect_timeout_s: float = _field(10.0, "WebSocket connect + handshake", range=(0.5, 120))
    ready_timeout_s: float = _field(30.0, "set_task until the task runs", range=(1, 300))
    ready_poll_interval_s: float = _field(
        2.1, "get_task polling for older servers", range=(0.1, 30)
    )
    end_timeout_s: float = _field(4.0, "end_task until end_of_stream", range=(0.1, 60))
    ping_interval_s: float = _field(10.0, "WebSocket ping interval", range=(1, 300))
    ping_timeout_s: float = _field(30.0, "no pong for this long = dead link", range=(1, 600))
    reconnect_attempts: int = _field(3, "reconnects per link before the call fails", range=(0, 20))
    reconnect_budget_s: float = _field(
        20.0, "total time spent reconnecting before failing", range=(0, 600)
    )
    rest_retries: int = _field(3, "legacy session create retries on 5xx/transport", range=(0, 10))
    input_buffer_ms: int = _field(
        5000, "speech buffered per link while it (re)connects", range=(500, 60000)
    )
    caller_to_operator: DirectionOverrides = attrs.field(
        factory=DirectionOverrides, metadata=_meta("overrides for the caller -> operator direction")
    )
    operator_to_caller: DirectionOverrides = attrs.field(
        factory=DirectionOverrides, metadata=_meta("overrides for the operator -> caller direction")
    )


@attrs.frozen
class MediaConfig:
    caller_to_operator: str = _field(
        "voice",
        "what the operator hears of the caller",
        choices=("voice", "captions", "passthrough"),
    )
    operator_to_caller: str = _field(
        "voice",
        "what the caller hears of the operator",
        choices=("voice", "captions", "passthrough"),
    )
    translation_gain_db: float | None = _field(
        0.0, "translated speech level", range=(-60, 20), off=True
    )
    original_gain_db: float | None = _field(
        -6.0, "original voice level when no translation plays", range=(-60, 20), off=True
    )
    original_duck_gain_db: float | None = _field(
        -18.0, "original voice level under translated speech", range=(-60, 20), off=True
    )
    translation_queue_s: float = _field(
        20.0, "translated speech queued per listener before overflow", range=(1, 600)
    )
    legs_connect_timeout_s: float = _field(
        15.0, "both media legs must connect this soon", range=(1, 300)
    )
    leg_idle_timeout_s: float = _field(
        5.0, "a leg with no valid message this long has failed", range=(0.5, 300)
    )
    hold_audio: str = _field("", "WAV file looped to the caller on hold (empty: built-in chime)")
    playout_target_ms: int = _field(
        20,
        "audio allowed to wait in Twilio's playout buffer before a frame is dropped",
        range=(0, 1000),
    )


@attrs.frozen
class PromptsConfig:
    greeting: dict[str, str] = _field(
        {
            "en": "Hello. Please hold while we connect you to an operator. Your call will be translated.",
            "es": "Hola. Espere mientras le conectamos con un operador. Su llamada será traducida.",
            "ru": "Здравствуйте. Пожалуйста, подождите, мы соединяем вас с оператором.",
        },
        "said to the caller before hold audio, by caller language",
    )
    busy: dict[str, str] = _field(
        {
            "en": "All our lines are busy. Please call again later.",
            "es": "Todas las líneas están ocupadas.",
        },
        "said when max_calls is reached or the daemon is draining",
    )
    apology: dict[str, str] = _field(
        {
            "en": "Sorry, no operator is available right now. Please call again later.",
            "es": "Lo sentimos, no hay ningún operador disponible.",
        },
        "said when no operator answered",
    )
    operator_intro: dict[str, str] = _field(
        {"en": "Connecting a translated call.", "es": "Conectando una llamada traducida."},
        "said to the operator on answer, by operator language",
    )


@attrs.frozen
class TranscriptsConfig:
    retention_days: int = _field(30, "calls older than this are pruned", range=(1, 3650))
    replay_events: int = _field(
        2000, "live events kept per call for reconnecting pages", range=(10, 100000)
    )
    subscriber_queue: int = _field(
        256, "events queued per page before it is dropped as too slow", range=(8, 100000)
    )
    heartbeat_s: float = _field(15.0, "feed heartbeat interval", range=(1, 300))
    recent_calls: int = _field(50, "ended calls listed by /api/calls", range=(1, 10000))


@attrs.frozen
class LogConfig:
    level: str = _field("info", "log level", choices=("debug", "info", "warning", "error"))
    format: str = _field(
        "auto", "json on a pipe, console on a TTY", choices=("auto", "json", "console")
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
    log: LogConfig = attrs.field(factory=LogConfig)

    @property
    def public_url(self) -> str:
        """``server.public_url`` without a trailing slash, or the bind address when unset."""
        url = self.server.public_url or f"http://{self.server.host}:{self.server.port}"
        return url.rstrip("/")

    def secrets(self) -> list[str]:
        """Every configured secret value, for log redaction."""
        found: list[str] = []
        _collect_secrets(self, found)
        return found


# Environment variables that hold secrets. Anything named here is redacted from every log line.
SECRET_ENV = (
    "TWILIO_AUTH_TOKEN",
    "PALABRA_API_KEY",
    "PALABRA_CLIENT_ID",
    "PALABRA_CLIENT_SECRET",
    "CALLBRIDGE_WEB_TOKEN",
)


def _collect_secrets(node: Any, found: list[str]) -> None:
    for field in attrs.fields(type(node)):
        value = getattr(node, field.name)
        if isinstance(value, Secret) and value:
            found.append(value.reveal())
        elif attrs.has(type(value)):
            _collect_secrets(value, found)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file (``KEY=value``, optional quotes, ``#`` comments, ``export``)."""
    result: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        result[key.strip()] = value
    return result


def load_config(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Build the validated ``Config`` from an optional TOML file and an environment mapping.

    Error handling: raises ``ConfigError`` listing every problem; never returns a half-valid config.
    """
    problems: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            msg = f"cannot read {path}: {exc.strerror}"
            raise ConfigError([msg]) from exc
        except tomllib.TOMLDecodeError as exc:
            msg = f"{path}: invalid TOML: {exc}"
            raise ConfigError([msg]) from exc
    config: Config = _build(Config, data, "", environ, problems)
    if not problems:
        problems.extend(_cross_checks(config))
    if problems:
        raise ConfigError(problems)
    return config


def _env_name(dotted: str) -> str:
    return "CALLBRIDGE_" + dotted.replace(".", "_").upper()


def _build(
    cls: type[Any], data: Any, prefix: str, environ: Mapping[str, str], problems: list[str]
) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.') or '<root>'}: must be a table, got {_show(data)}")
        data = {}
    hints = typing.get_type_hints(cls)
    known = {f.name for f in attrs.fields(cls)}
    for unknown in sorted(set(data) - known):
        problems.append(f"{prefix}{unknown}: unknown key")
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):
        dotted = prefix + field.name
        hint = hints[field.name]
        if attrs.has(hint):
            kwargs[field.name] = _build(
                hint, data.get(field.name, {}), dotted + ".", environ, problems
            )
            continue
        value = _field_value(field, hint, dotted, data, environ, problems)
        if value is not _MISSING:
            kwargs[field.name] = value
    return cls(**kwargs)


class _Missing:
    pass


_MISSING: Any = _Missing()


def _field_value(
    field: attrs.Attribute[Any],
    hint: Any,
    dotted: str,
    data: dict[str, Any],
    environ: Mapping[str, str],
    problems: list[str],
) -> Any:
    meta = field.metadata
    is_secret = Secret in _union_args(hint)
    seed_env = meta.get("env")
    if is_secret:
        if field.name in data:
            problems.append(f"{dotted}: secrets come only from the environment ({seed_env})")
        raw = environ.get(seed_env or "") or None
        return Secret(raw) if raw else None
    raw_value: Any = _MISSING
    from_env = False
    if field.name in data:
        raw_value = data[field.name]
    if seed_env and environ.get(seed_env):
        raw_value, from_env = environ[seed_env], True
    if dotted == "server.public_url" and environ.get("HOST"):
        raw_value, from_env = _public_url_from_host(environ["HOST"]), True
    own_env = _env_name(dotted)
    if own_env in environ:
        raw_value, from_env = environ[own_env], True
    if raw_value is _MISSING:
        return _MISSING
    try:
        return _coerce(raw_value, hint, meta, from_env)
    except ValueError as exc:
        problems.append(f"{dotted}: {exc}")
        return _MISSING


def _public_url_from_host(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def _union_args(hint: Any) -> tuple[Any, ...]:
    if get_origin(hint) in (Union, types.UnionType):
        return get_args(hint)
    return (hint,)


def _coerce(value: Any, hint: Any, meta: Mapping[str, Any], from_env: bool) -> Any:
    if meta.get("off") and isinstance(value, str) and value.strip().lower() == "off":
        return None
    args = [a for a in _union_args(hint) if a is not type(None)]
    if type(None) in _union_args(hint) and (value is None or (from_env and value == "")):
        return None
    target = args[0]
    result = _coerce_one(value, target, from_env)
    _check_limits(result, meta)
    return result


def _coerce_one(value: Any, target: Any, from_env: bool) -> Any:
    origin = get_origin(target)
    if origin is list:
        if from_env and isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            msg = f"must be a list of strings, got {_show(value)}"
            raise ValueError(msg)
        return list(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            msg = f"must be a table of strings, got {_show(value)}"
            raise ValueError(msg)
        return dict(value)
    if target is bool:
        return _to_bool(value)
    if target is int:
        return _to_number(value, int)
    if target is float:
        return float(_to_number(value, float))
    if target is str:
        if not isinstance(value, str):
            msg = f"must be a string, got {_show(value)}"
            raise ValueError(msg)
        return value
    msg = f"unsupported type {target!r}"  # pragma: no cover - schema bug
    raise ValueError(msg)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    msg = f"must be true or false, got {_show(value)}"
    raise ValueError(msg)


def _to_number(value: Any, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool):
        msg = f"must be a number, got {_show(value)}"
        raise ValueError(msg)
    if isinstance(value, int | float) and (kind is float or isinstance(value, int)):
        return value
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            pass
    word = "an integer" if kind is int else "a number"
    msg = f"must be {word}, got {_show(value)}"
    raise ValueError(msg)


def _check_limits(value: Any, meta: Mapping[str, Any]) -> None:
    bounds = meta.get("range")
    if (
        bounds is not None
        and isinstance(value, int | float)
        and not bounds[0] <= value <= bounds[1]
    ):
        low, high = (_num(b) for b in bounds)
        msg = f"must be {low}..{high}, got {_num(value)}"
        raise ValueError(msg)
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        msg = f"must be one of {', '.join(choices)}, got {_show(value)}"
        raise ValueError(msg)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


# A web token shorter than this is refused (token_urlsafe(32) gives 43 characters): the pages
# and API hold every transcript, and the token is the only key.
MIN_WEB_TOKEN_CHARS = 32


def _web_token_problems(config: Config) -> list[str]:
    token = config.server.web_token
    if token is None or len(token.reveal()) >= MIN_WEB_TOKEN_CHARS:
        return []
    return [
        f"server.web_token: must be at least {MIN_WEB_TOKEN_CHARS} characters "
        f"(CALLBRIDGE_WEB_TOKEN; make one with: python3 -c 'import secrets; "
        f"print(secrets.token_urlsafe(32))'), got {len(token.reveal())}"
    ]


def _cross_checks(config: Config) -> list[str]:
    problems: list[str] = _web_token_problems(config)
    problems.extend(
        _check_url(
            "server.public_url", config.server.public_url, ("http", "https"), allow_empty=True
        )
    )
    problems.extend(
        _check_url("twilio.api_base_url", config.twilio.api_base_url, ("http", "https"))
    )
    problems.extend(
        _check_url("palabra.api_base_url", config.palabra.api_base_url, ("http", "https"))
    )
    problems.extend(
        _check_url("palabra.streaming_url", config.palabra.streaming_url, ("ws", "wss"))
    )
    palabra = config.palabra
    problems.extend(_queue_level_problems(palabra))
    if palabra.max_tempo < palabra.min_tempo:
        problems.append(
            f"palabra.max_tempo: must be >= min_tempo ({palabra.min_tempo}), got {palabra.max_tempo}"
        )
    for side in ("caller", "operator"):
        if getattr(config.languages, side) == "auto" and not getattr(
            config.languages, f"{side}_detectable"
        ):
            problems.append(
                f"languages.{side}_detectable: must list languages when languages.{side} = auto"
            )
    for number in config.operators.numbers:
        if not number.startswith(("+", "sip:", "client:")):
            problems.append(f"operators.numbers: must be E.164 (+15551234567), got {number!r}")
    return problems


def _check_url(
    key: str, url: str, schemes: tuple[str, ...], *, allow_empty: bool = False
) -> list[str]:
    if not url and allow_empty:
        return []
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        return [f"{key}: must be a {'/'.join(schemes)} URL, got {url!r}"]
    if parts.query:
        return [f"{key}: must not have a query string, got {url!r}"]
    return []


def _queue_level_problems(palabra: PalabraConfig) -> list[str]:
    """The TTS queue limit must sit above its target, for the base values and for each direction
    that overrides either one."""
    checks = [("palabra", palabra.desired_queue_level_ms, palabra.max_queue_level_ms)]
    for name in ("caller_to_operator", "operator_to_caller"):
        over: DirectionOverrides = getattr(palabra, name)
        if over.desired_queue_level_ms is not None or over.max_queue_level_ms is not None:
            desired = over.desired_queue_level_ms or palabra.desired_queue_level_ms
            maximum = over.max_queue_level_ms or palabra.max_queue_level_ms
            checks.append((f"palabra.{name}", desired, maximum))
    return [
        f"{prefix}.max_queue_level_ms: must be above desired_queue_level_ms ({desired}), got {maximum}"
        for prefix, desired, maximum in checks
        if maximum <= desired
    ]


def missing_credentials(config: Config) -> list[str]:
    """What ``serve`` needs that is not configured: reported by ``check-config`` and at start."""
    problems: list[str] = []
    twilio = config.twilio
    if not twilio.account_sid:
        problems.append("twilio.account_sid: required (set TWILIO_ACCOUNT_SID)")
    if not twilio.auth_token:
        problems.append("twilio.auth_token: required (set TWILIO_AUTH_TOKEN)")
    if not twilio.number:
        problems.append("twilio.number: required (set TWILIO_NUMBER)")
    if not config.operators.numbers:
        problems.append(
            "operators.numbers: required (set OPERATOR_NUMBER or list them in config.toml)"
        )
    palabra = config.palabra
    if not palabra.api_key and not (palabra.client_id and palabra.client_secret):
        problems.append(
            "palabra: credentials required (PALABRA_API_KEY, or PALABRA_CLIENT_ID and PALABRA_CLIENT_SECRET)"
        )
    return problems


def config_as_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data with every secret replaced by ``"***"``."""

    def convert(node: Any) -> Any:
        if isinstance(node, Secret):
            return "***" if node else None
        if attrs.has(type(node)):
            return {f.name: convert(getattr(node, f.name)) for f in attrs.fields(type(node))}
        return node

    result: dict[str, Any] = convert(config)
    return result


def environ_with_env_file(environ: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    """The process environment plus a dotenv file's entries (the environment wins, as dotenv does)."""
    merged = dict(environ)
    if env_file is not None and env_file.is_file():
        for key, value in read_env_file(env_file).items():
            merged.setdefault(key, value)
    return merged


def pick_prompt(texts: Mapping[str, str], language: str) -> str:
    """A prompt in ``language`` (or its base language), else English, else any."""
    base = language.split("-")[0]
    return (
        texts.get(language) or texts.get(base) or texts.get("en") or next(iter(texts.values()), "")
    )


def default_env_file() -> Path:
    return Path(os.getcwd()) / ".env"
