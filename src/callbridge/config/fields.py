"""The building blocks of the config tree: a secret that hides itself, and a field with its docs.

A setting's metadata (one-line doc, numeric range, choices, the seed's variable name, whether the
string "off" is allowed) drives loading, validation, ``config.toml`` generation and the docs table.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal, get_args

import attrs

__all__ = [
    "DIRECTION_MODES",
    "DirectionMode",
    "Secret",
    "collect_secrets",
    "setting",
    "setting_meta",
]

# What the listener of a direction hears: the translation over the ducked original, the original
# with the translation as text only, or the original alone (no translator opened).
DirectionMode = Literal["voice", "captions", "passthrough"]
DIRECTION_MODES: tuple[DirectionMode, ...] = get_args(DirectionMode)


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


def setting_meta(
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


def setting(default: Any, doc: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return attrs.field(
            factory=functools.partial(copy.copy, default), metadata=setting_meta(doc, **kw)
        )
    return attrs.field(default=default, metadata=setting_meta(doc, **kw))


def collect_secrets(node: Any, found: list[str]) -> None:
    for field in attrs.fields(type(node)):
        value = getattr(node, field.name)
        if isinstance(value, Secret) and value:
            found.append(value.reveal())
        elif attrs.has(type(value)):
            collect_secrets(value, found)
