"""From ``config.toml`` and the environment to one validated ``Config``.

Sources, later ones winning:

1. defaults declared on the classes in ``schema``;
2. the TOML file;
3. the seed demo's variables (``HOST``, ``PORT``, ``TWILIO_NUMBER``, ...), so an old ``.env`` works;
4. ``CALLBRIDGE_<SECTION>_<KEY>`` for any key (``CALLBRIDGE_PALABRA_CHUNK_MS=640``).

Secrets (``Secret`` fields) come only from the environment; a secret written into the file is an
error, so it cannot end up in version control by accident.

Error handling: every problem found is collected and raised together as one ``ConfigError`` whose
``problems`` read ``section.key: must be ..., got ...``.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import attrs

from callbridge.config.checks import cross_checks, did_you_mean, unknown_env_problems
from callbridge.config.fields import Secret
from callbridge.config.schema import Config
from callbridge.errors import ConfigError

__all__ = [
    "SECRET_ENV",
    "config_as_dict",
    "default_env_file",
    "environ_with_env_file",
    "load_config",
    "read_env_file",
]

# Environment variables that hold secrets. Anything named here is redacted from every log line.
SECRET_ENV = (
    "TWILIO_AUTH_TOKEN",
    "PALABRA_API_KEY",
    "PALABRA_CLIENT_ID",
    "PALABRA_CLIENT_SECRET",
    "CALLBRIDGE_WEB_TOKEN",
    "CALLBRIDGE_REDIS_PASSWORD",
)


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
    problems.extend(unknown_env_problems(environ, Config))
    if not problems:
        problems.extend(cross_checks(config))
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
        problems.append(f"{prefix}{unknown}: unknown key{did_you_mean(unknown, known)}")
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):
        dotted = prefix + field.name
        hint = hints[field.name]
        if attrs.has(hint):
            kwargs[field.name] = _build(
                hint, data.get(field.name, {}), dotted + ".", environ, problems
            )
            continue
        item_cls = _table_list_item(hint)
        if item_cls is not None:
            if field.name in data or _env_name(dotted) in environ:
                kwargs[field.name] = _build_table_list(
                    item_cls, data.get(field.name), dotted, environ, problems
                )
            continue
        value = _field_value(field, hint, dotted, data, environ, problems)
        if value is not _MISSING:
            kwargs[field.name] = value
    return cls(**kwargs)


def _table_list_item(hint: Any) -> type[Any] | None:
    """``OperatorEntry`` for ``list[OperatorEntry]`` (a TOML array of tables), else ``None``."""
    if get_origin(hint) is list:
        (item,) = get_args(hint)
        if attrs.has(item):
            return typing.cast("type[Any]", item)
    return None


def _build_table_list(
    cls: type[Any], data: Any, dotted: str, environ: Mapping[str, str], problems: list[str]
) -> list[Any]:
    if _env_name(dotted) in environ:
        problems.append(f"{dotted}: cannot come from the environment; use [[{dotted}]] in the file")
        return []
    if not isinstance(data, list):
        problems.append(f"{dotted}: must be an array of tables ([[{dotted}]]), got {_show(data)}")
        return []
    return [_build(cls, item, f"{dotted}[{i}].", {}, problems) for i, item in enumerate(data)]


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
        if not from_env and not isinstance(value, bool):
            # In TOML a boolean is true or false; "yes" in quotes is a string, and a typo.
            msg = f"must be true or false, got {_show(value)}"
            raise ValueError(msg)
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


def config_as_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data with every secret replaced by ``"***"``."""

    def convert(node: Any) -> Any:
        if isinstance(node, Secret):
            return "***" if node else None
        if attrs.has(type(node)):
            return {f.name: convert(getattr(node, f.name)) for f in attrs.fields(type(node))}
        if isinstance(node, list):  # an array of tables ([[operators.team]]) holds attrs values
            return [convert(item) for item in node]
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


def default_env_file() -> Path:
    return Path(os.getcwd()) / ".env"
