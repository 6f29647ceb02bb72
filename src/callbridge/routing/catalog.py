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

from typing import Final

__all__ = [
    "AUTO",
    "DETECTABLE_LANGUAGES",
    "LANGUAGE_NAMES",
    "SOURCE_LANGUAGES",
    "TARGET_LANGUAGES",
    "base_language",
    "is_party_language",
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
    return f"must be a language code Palabra knows (en, es, pt-br, zh-hant...), got {code!r}"
