"""Checks ``load_config`` runs on top of types and ranges: what a person mistypes or leaves out.

- a key or ``CALLBRIDGE_*`` variable that does not exist gets a "did you mean" from the names
  that do (``difflib``);
- ``twilio.account_sid`` must look like a Twilio Account SID: ``AC`` and 32 hex digits
  (https://www.twilio.com/docs/glossary/what-is-a-sid);
- URLs have the right scheme, queue levels and tempos are ordered, ``auto`` languages list what to
  detect, operator numbers are dialable;
- languages, the keypad menu, operators and voices (``config.languages``);
- ``metrics.listen`` must be empty or ``host:port``.

Every function returns problems as ``key: must be ..., got ...`` strings, never raises.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from callbridge.config.languages import language_problems
from callbridge.config.schema import Config, DirectionOverrides, PalabraConfig

__all__ = [
    "MIN_WEB_TOKEN_CHARS",
    "account_sid_problems",
    "cross_checks",
    "did_you_mean",
    "env_names",
    "listen_problems",
    "missing_credentials",
    "parse_listen",
    "unknown_env_problems",
]

ENV_PREFIX: Final = "CALLBRIDGE_"
_ACCOUNT_SID: Final = re.compile(r"AC[0-9a-f]{32}")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def env_names(cls: type[Any], prefix: str = ENV_PREFIX) -> dict[str, bool]:
    """Every ``CALLBRIDGE_<SECTION>_<KEY>`` of the config class tree -> whether the key is a
    secret (secrets are read only from their own variable, never from this form)."""
    names: dict[str, bool] = {}
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        name = prefix + field.name.upper()
        if attrs.has(hints[field.name]):
            names.update(env_names(hints[field.name], name + "_"))
        else:
            names[name] = "Secret" in str(hints[field.name])
    return names


def _own_variables(cls: type[Any]) -> set[str]:
    """The ``CALLBRIDGE_*`` variables that are a key's own name (``env=`` in its metadata)."""
    found: set[str] = set()
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        if attrs.has(hints[field.name]):
            found |= _own_variables(hints[field.name])
        elif str(field.metadata.get("env") or "").startswith(ENV_PREFIX):
            found.add(str(field.metadata["env"]))
    return found


def unknown_env_problems(environ: Mapping[str, str], config_cls: type[Any]) -> list[str]:
    """``CALLBRIDGE_*`` variables that set nothing: misspelled, or a secret in the wrong form."""
    known = env_names(config_cls)
    own = _own_variables(config_cls)
    problems: list[str] = []
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX)):
        if name in own or name == "CALLBRIDGE_TRACEMALLOC":
            continue  # a key's own variable, or a debugging switch (service/memtrace.py)
        if known.get(name):
            problems.append(
                f"{name}: secrets are read only from their own variable (see the key's docs)"
            )
        elif name not in known:
            usable = [n for n, secret in known.items() if not secret]
            problems.append(f"{name}: unknown variable{did_you_mean(name, usable)}")
    return problems


def account_sid_problems(sid: str) -> list[str]:
    if not sid or _ACCOUNT_SID.fullmatch(sid):
        return []
    return [f"twilio.account_sid: must be AC followed by 32 hex digits, got {sid!r}"]


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``":port"`` (loopback) -> ``(host, port)``.

    Raises ``ValueError`` with a message for a person."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or " " in host:
        msg = f"must be host:port (e.g. 127.0.0.1:9464) or empty, got {listen!r}"
        raise ValueError(msg)
    return host.strip("[]") or "127.0.0.1", int(port)


def listen_problems(listen: str) -> list[str]:
    if not listen:
        return []
    try:
        parse_listen(listen)
    except ValueError as exc:
        return [f"metrics.listen: {exc}"]
    return []


# A web token shorter than this is refused (token_urlsafe(32) gives 43 characters): the pages
# and API hold every transcript, and the token is the only key.
MIN_WEB_TOKEN_CHARS: Final = 32


def _web_token_problems(config: Config) -> list[str]:
    token = config.server.web_token
    if token is None or len(token.reveal()) >= MIN_WEB_TOKEN_CHARS:
        return []
    return [
        f"server.web_token: must be at least {MIN_WEB_TOKEN_CHARS} characters "
        f"(CALLBRIDGE_WEB_TOKEN; make one with: python3 -c 'import secrets; "
        f"print(secrets.token_urlsafe(32))'), got {len(token.reveal())}"
    ]


def cross_checks(config: Config) -> list[str]:
    problems: list[str] = _web_token_problems(config)
    problems.extend(account_sid_problems(config.twilio.account_sid))
    problems.extend(listen_problems(config.metrics.listen))
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
    if config.media.outbound_frame_ms % 20:
        problems.append(
            f"media.outbound_frame_ms: must be a multiple of 20, got {config.media.outbound_frame_ms}"
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
    problems.extend(_cluster_problems(config))
    for number in config.operators.numbers:
        if not number.startswith(("+", "sip:", "client:")):
            problems.append(f"operators.numbers: must be E.164 (+15551234567), got {number!r}")
    problems.extend(language_problems(config))
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


# Instance ids and key prefixes end up inside Redis keys and log lines: keep them plain.
_NAME: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _service_url_problems(key: str, url: str, schemes: tuple[str, ...], where: str) -> list[str]:
    """A Redis or PostgreSQL URL: right scheme, and no password (the message then never repeats
    the URL, so the password cannot reach a log). Query strings (``?sslmode=``) are allowed."""
    if not url:
        return []
    parts = urlsplit(url)
    if parts.password:
        return [f"{key}: must not hold a password (set {where} instead)"]
    if parts.scheme not in schemes:
        return [f"{key}: must be a {'/'.join(schemes)} URL, got {url!r}"]
    return []


def _cluster_problems(config: Config) -> list[str]:
    """Cluster and shared-store settings: URL schemes, no passwords in URLs, names fit for keys."""
    cluster, database_url = config.cluster, config.transcripts.database_url
    problems = _check_url(
        "cluster.instance_url", cluster.instance_url, ("http", "https"), allow_empty=True
    )
    problems += _service_url_problems(
        "cluster.redis_url", cluster.redis_url, ("redis", "rediss"), "CALLBRIDGE_REDIS_PASSWORD"
    )
    problems += _service_url_problems(
        "transcripts.database_url",
        database_url,
        ("postgresql", "postgres"),
        "PGPASSWORD or ~/.pgpass",
    )
    for key, name in (("instance_id", cluster.instance_id), ("key_prefix", cluster.key_prefix)):
        if (name or key == "key_prefix") and not _NAME.fullmatch(name):
            problems.append(f"cluster.{key}: must be 1-64 of A-Z a-z 0-9 . _ : -, got {name!r}")
    if cluster.redis_url and not database_url:
        problems.append(
            "transcripts.database_url: required when cluster.redis_url is set "
            "(every instance must write to one shared store)"
        )
    return problems


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
    if not config.operators.numbers and not config.operators.team:
        problems.append(
            "operators.numbers: required (set OPERATOR_NUMBER or list them in config.toml)"
        )
    palabra = config.palabra
    if not palabra.api_key and not (palabra.client_id and palabra.client_secret):
        problems.append(
            "palabra: credentials required (PALABRA_API_KEY, or PALABRA_CLIENT_ID and PALABRA_CLIENT_SECRET)"
        )
    return problems
