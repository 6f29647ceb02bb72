"""Checks ``load_config`` runs on top of types and ranges: what a person mistypes.

- a key or ``CALLBRIDGE_*`` variable that does not exist gets a "did you mean" from the names
  that do (``difflib``);
- ``twilio.account_sid`` must look like a Twilio Account SID: ``AC`` and 32 hex digits
  (https://www.twilio.com/docs/glossary/what-is-a-sid);
- ``languages.*`` must be codes Palabra knows (:mod:`callbridge.palabra_languages`);
- ``metrics.listen`` must be empty or ``host:port``.

Every function returns problems as ``key: must be ..., got ...`` strings, never raises.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from callbridge.palabra_languages import known_language, suggest_language

__all__ = [
    "account_sid_problems",
    "did_you_mean",
    "env_names",
    "language_problems",
    "listen_problems",
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


def unknown_env_problems(environ: Mapping[str, str], config_cls: type[Any]) -> list[str]:
    """``CALLBRIDGE_*`` variables that set nothing: misspelled, or a secret in the wrong form."""
    known = env_names(config_cls)
    problems: list[str] = []
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX)):
        if name == "CALLBRIDGE_WEB_TOKEN":
            continue
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


def language_problems(languages: Any) -> list[str]:
    """``languages.caller``/``operator`` (or ``auto``) and each ``*_detectable`` entry."""
    problems: list[str] = []
    for side in ("caller", "operator"):
        code = getattr(languages, side)
        if code != "auto" and not known_language(code):
            problems.append(f"languages.{side}: unknown language {code!r}{suggest_language(code)}")
        for entry in getattr(languages, f"{side}_detectable"):
            if not known_language(entry):
                problems.append(
                    f"languages.{side}_detectable: unknown language {entry!r}"
                    f"{suggest_language(entry)}"
                )
    return problems


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
