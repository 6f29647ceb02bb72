"""What ``check-config`` rejects about languages, the keypad menu, operators and voices.

Each problem names its key, in the config module's ``section.key: must ...`` style, so
``callbridge check-config`` points at the line to fix. Called from ``config._cross_checks`` once
every key has the right type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from callbridge.routing.catalog import AUTO, base_language, normalize, unknown_reason

if TYPE_CHECKING:
    from callbridge.config import Config, DirectionOverrides, PalabraConfig

__all__ = ["MAX_MENU_OPTIONS", "language_problems"]

# One keypad digit per option (Twilio <Gather numDigits="1">); 0 is left for operators' habits.
MAX_MENU_OPTIONS: Final = 9
# E.164: "+" and at most 15 digits; a prefix is any leading part of one.
_PREFIX: Final = re.compile(r"\+[0-9]{1,15}")
_NUMBER_SCHEMES: Final = ("+", "sip:", "client:")
_DIRECTIONS: Final = ("caller_to_operator", "operator_to_caller")


def language_problems(config: Config) -> list[str]:
    """Every language, menu, operator and voice problem in ``config`` (empty when fine)."""
    return [
        *_party_languages(config),
        *_prefixes(config),
        *_menu(config),
        *_team(config),
        *_voices(config.palabra),
    ]


def _language(key: str, code: str, *, detectable: bool = False) -> Iterator[str]:
    reason = unknown_reason(code, detectable=detectable)
    if reason is not None:
        yield f"{key}: {reason}"


def _party_languages(config: Config) -> Iterator[str]:
    languages = config.languages
    for side in ("caller", "operator"):
        code = getattr(languages, side)
        if normalize(code) != AUTO:
            yield from _language(f"languages.{side}", code)
        for code in getattr(languages, f"{side}_detectable"):
            yield from _language(f"languages.{side}_detectable", code, detectable=True)


def _prefixes(config: Config) -> Iterator[str]:
    for prefix, code in config.languages.by_prefix.items():
        key = f'languages.by_prefix."{prefix}"'
        if not _PREFIX.fullmatch(prefix):
            yield f"{key}: a prefix must be + and digits (+7, +1787), got {prefix!r}"
        yield from _language(key, code)


def _menu(config: Config) -> Iterator[str]:
    menu = config.languages.menu
    if len(menu) > MAX_MENU_OPTIONS:
        yield f"languages.menu: at most {MAX_MENU_OPTIONS} languages (one key each), got {len(menu)}"
    seen: dict[str, int] = {}
    prompts = config.prompts.menu_option
    for digit, code in enumerate(menu, start=1):
        yield from _language("languages.menu", code)
        key = normalize(code)
        if key in seen:
            yield (
                f"languages.menu: {code!r} is listed twice (keys {seen[key]} and {digit}); "
                "each key must select a different language"
            )
        seen.setdefault(key, digit)
        if key not in _lower_keys(prompts) and base_language(key) not in _lower_keys(prompts):
            yield (
                f"prompts.menu_option: no text for {code!r}, which languages.menu offers "
                f'(add {base_language(key)} = "... {{digit}} ...")'
            )
    for language, text in prompts.items():
        if "{digit}" not in text:
            yield f"prompts.menu_option.{language}: must contain {{digit}}, got {text!r}"


def _lower_keys(table: dict[str, str]) -> set[str]:
    return {normalize(k) for k in table}


def _team(config: Config) -> Iterator[str]:
    owners: dict[str, str] = {}
    for number in config.operators.numbers:
        owners.setdefault(number, "operators.numbers")
    for index, entry in enumerate(config.operators.team):
        key = f"operators.team[{index}]"
        if not entry.number:
            yield f"{key}.number: required"
        elif not entry.number.startswith(_NUMBER_SCHEMES):
            yield f"{key}.number: must be E.164 (+15551234567), sip: or client:, got {entry.number!r}"
        elif entry.number in owners and owners[entry.number] != "operators.numbers":
            yield f"{key}.number: {entry.number!r} is already listed at {owners[entry.number]}"
        owners[entry.number] = key
        if not entry.languages:
            yield f"{key}.languages: an operator needs at least one language"
        for code in entry.languages:
            yield from _language(f"{key}.languages", code)


def _voices(palabra: PalabraConfig) -> Iterator[str]:
    for name in _DIRECTIONS:
        over: DirectionOverrides = getattr(palabra, name)
        cloning = palabra.voice_cloning if over.voice_cloning is None else over.voice_cloning
        timbre = (
            palabra.voice_timbre_detection
            if over.voice_timbre_detection is None
            else over.voice_timbre_detection
        )
        if cloning and timbre:
            yield (
                f"palabra.{name}.voice_timbre_detection: cannot be used with voice_cloning "
                "(both choose the voice); turn one off for this direction"
            )
        if over.voice_id is not None and not over.voice_id.strip():
            yield f"palabra.{name}.voice_id: must not be empty"
    if not palabra.voice_id.strip():
        yield "palabra.voice_id: must not be empty"
    for key in ("high_timbre_voices", "low_timbre_voices"):
        if not getattr(palabra, key):
            yield f"palabra.{key}: must list at least one voice"
