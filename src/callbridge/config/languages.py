"""The language codes Palabra knows, in one place: what it can recognise, speak and detect.

The sets copy the official Python SDK's language table (PalabraAI/palabra-ai-python,
``src/palabra_ai/lang.py`` at commit d8667b9, https://github.com/PalabraAI/palabra-ai-python):

- ``SOURCE_LANGUAGES`` (its ``VALID_SOURCE_LANGUAGES``): codes Palabra can *recognise*, i.e. valid
  as ``pipeline.transcription.source_language``. Regional variants (``en-us``, ``pt-br``) are
  accepted and recognised as their base language.
- ``TARGET_LANGUAGES`` (``VALID_TARGET_LANGUAGES``): codes Palabra can *translate into and speak*,
  i.e. valid as ``pipeline.translations[].target_language``.
- ``DETECTABLE_LANGUAGES`` (``AUTO_DETECTABLE_LANGUAGES``): codes the service's language
  detection (``source_language = "auto"``) picks from.

A person on a call both speaks (source) and listens (target), so a party's language must be in
both sets (``is_party_language``); Thai, say, can be recognised but not spoken back.

Codes are compared in lower case with ``-`` (``pt_BR`` and ``PT-br`` mean ``pt-br``), as the SDK
does. ``base_language("es-mx") == "es"`` is what "speaks the same language" means in routing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from callbridge.config.schema import Config, DirectionOverrides, PalabraConfig

__all__ = [
    "AUTO",
    "DETECTABLE_LANGUAGES",
    "LANGUAGE_NAMES",
    "MAX_MENU_OPTIONS",
    "SOURCE_LANGUAGES",
    "TARGET_LANGUAGES",
    "base_language",
    "is_party_language",
    "language_problems",
    "normalize",
    "same_language",
    "unknown_reason",
]

AUTO: Final = "auto"

SOURCE_LANGUAGES: Final = frozenset(
    {
        "ar", "ba", "be", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "en-au", "en-ca",
        "en-gb", "en-us", "eo", "es", "es-mx", "et", "eu", "fa", "fi", "fr", "fr-ca", "ga", "gl",
        "he", "hi", "hr", "hu", "ia", "id", "it", "ja", "ko", "lt", "lv", "mn", "mr", "ms", "mt",
        "nl", "no", "pl", "pt", "pt-br", "ro", "ru", "sk", "sl", "sv", "sw", "ta", "th", "tr",
        "ug", "uk", "ur", "vi", "zh", "zh-hans", "zh-hant",
    }
)  # fmt: skip

TARGET_LANGUAGES: Final = frozenset(
    {
        "ar", "ar-ae", "ar-sa", "az", "be", "bg", "bs", "ca", "cs", "cy", "da", "de", "el", "en",
        "en-au", "en-ca", "en-gb", "en-us", "es", "es-mx", "et", "fi", "fil", "fr", "fr-ca", "gl",
        "he", "hi", "hr", "hu", "id", "is", "it", "ja", "kk", "ko", "lt", "lv", "mk", "ms", "nl",
        "no", "pl", "pt", "pt-br", "ro", "ru", "sk", "sl", "sr", "sv", "sw", "ta", "tr", "uk",
        "ur", "vi", "zh", "zh-hans", "zh-hant",
    }
)  # fmt: skip

DETECTABLE_LANGUAGES: Final = frozenset(
    {
        "ar", "cs", "da", "de", "el", "en", "es", "fi", "fr", "he", "hi", "hu", "id", "it", "ja",
        "ko", "nl", "pl", "pt", "ru", "tr", "uk", "zh",
    }
)  # fmt: skip

# English names for logs, pages and error messages (base languages only).
LANGUAGE_NAMES: Final[dict[str, str]] = {
    "ar": "Arabic", "az": "Azerbaijani", "ba": "Bashkir", "be": "Belarusian", "bg": "Bulgarian",
    "bn": "Bengali", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh",
    "da": "Danish", "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish",
    "fil": "Filipino", "fr": "French", "ga": "Irish", "gl": "Galician", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "ia": "Interlingua", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "mn": "Mongolian", "mr": "Marathi",
    "ms": "Malay", "mt": "Maltese", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "sr": "Serbian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "th": "Thai",
    "tr": "Turkish", "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese",
    "zh": "Chinese",
}  # fmt: skip


def normalize(code: str) -> str:
    """``" PT_br "`` -> ``"pt-br"``: the spelling the sets above (and Palabra) use."""
    return code.strip().replace("_", "-").lower()


def base_language(code: str) -> str:
    """``"es-mx"`` -> ``"es"``; ``"zh-hant"`` -> ``"zh"``."""
    return normalize(code).split("-", 1)[0]


def same_language(a: str, b: str) -> bool:
    """True when two codes name the same language (regional variants included); ``auto`` never
    matches anything, since nobody "speaks auto"."""
    if AUTO in (normalize(a), normalize(b)):
        return False
    return base_language(a) == base_language(b)


def is_party_language(code: str) -> bool:
    """A language a person on a call can have: Palabra recognises it and speaks it."""
    key = normalize(code)
    return key in SOURCE_LANGUAGES and key in TARGET_LANGUAGES


def unknown_reason(code: str, *, detectable: bool = False) -> str | None:
    """Why ``code`` cannot be a party's language (with ``detectable``: a language the caller's
    side may be detected as), or ``None`` when it can. The text reads "must ..., got ...", the
    config errors' style."""
    key = normalize(code)
    if key in SOURCE_LANGUAGES and key in TARGET_LANGUAGES:
        if detectable and base_language(key) not in DETECTABLE_LANGUAGES:
            listed = ", ".join(sorted(DETECTABLE_LANGUAGES))
            return f"must be a language Palabra can detect ({listed}), got {code!r}"
        return None
    if key in SOURCE_LANGUAGES:
        return f"must be a language Palabra can also speak, got {code!r} (recognised only)"
    if key in TARGET_LANGUAGES:
        return f"must be a language Palabra can also recognise, got {code!r} (spoken only)"
    return f"must be a language code Palabra knows (en, es, pt-br, zh-hant...), got {code!r}" + (
        _suggestion(key)
    )


def _suggestion(key: str) -> str:
    """`` (did you mean 'en'?)`` for a near-miss code or a language's English name."""
    by_name = {name.lower(): code for code, name in LANGUAGE_NAMES.items()}
    close = difflib.get_close_matches(key, sorted(by_name), n=1, cutoff=0.75)
    if close:
        return f" (did you mean {by_name[close[0]]!r}?)"
    close = difflib.get_close_matches(key, sorted(SOURCE_LANGUAGES | TARGET_LANGUAGES), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
