"""Our language codes (Palabra style: ``en``, ``es``, ``pt-BR``, ``zh-hant``) to Twilio ``<Say>`` codes.

Twilio's ``<Say language>`` wants ``ll-RR`` (``en-US``, ``es-ES``); which voice speaks it is chosen
per language in the Twilio Console (Voice > Settings > Text-to-speech), since our TwiML sets no
``voice``. A code Twilio does not know would make ``<Say>`` fail, so anything unmapped becomes
``en-US``: an English prompt is better than silence.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_SAY_LANGUAGE", "TWILIO_SAY_LANGUAGES", "say_language"]

DEFAULT_SAY_LANGUAGE: Final = "en-US"

# Locales Twilio's <Say> accepts (Twilio TTS voices page: the Polly and Google voice locales).
TWILIO_SAY_LANGUAGES: Final = frozenset(
    {
        "af-ZA", "ar-AE", "ar-XA", "bg-BG", "bn-IN", "ca-ES", "cmn-CN", "cmn-TW", "cs-CZ",
        "cy-GB", "da-DK", "de-AT", "de-CH", "de-DE", "el-GR", "en-AU", "en-CA", "en-GB", "en-IE",
        "en-IN", "en-NZ", "en-US", "en-ZA", "es-ES", "es-MX", "es-US", "eu-ES", "fi-FI", "fil-PH",
        "fr-BE", "fr-CA", "fr-CH", "fr-FR", "gl-ES", "gu-IN", "he-IL", "hi-IN", "hu-HU", "id-ID",
        "is-IS", "it-IT", "ja-JP", "kn-IN", "ko-KR", "lt-LT", "lv-LV", "ml-IN", "mr-IN", "ms-MY",
        "nb-NO", "nl-BE", "nl-NL", "pa-IN", "pl-PL", "pt-BR", "pt-PT", "ro-RO", "ru-RU", "sk-SK",
        "sr-RS", "sv-SE", "ta-IN", "te-IN", "th-TH", "tr-TR", "uk-UA", "vi-VN", "yue-HK", "zh-CN",
        "zh-HK", "zh-TW",
    }
)  # fmt: skip

# A bare language (or a script/region code Twilio spells differently) -> the Twilio locale.
_BY_LANGUAGE: Final[dict[str, str]] = {
    "af": "af-ZA", "ar": "ar-AE", "bg": "bg-BG", "bn": "bn-IN", "ca": "ca-ES", "cs": "cs-CZ",
    "cy": "cy-GB", "da": "da-DK", "de": "de-DE", "el": "el-GR", "en": "en-US", "es": "es-ES",
    "eu": "eu-ES", "fi": "fi-FI", "fil": "fil-PH", "tl": "fil-PH", "fr": "fr-FR", "gl": "gl-ES",
    "gu": "gu-IN", "he": "he-IL", "iw": "he-IL", "hi": "hi-IN", "hu": "hu-HU", "id": "id-ID",
    "is": "is-IS", "it": "it-IT", "ja": "ja-JP", "kn": "kn-IN", "ko": "ko-KR", "lt": "lt-LT",
    "lv": "lv-LV", "ml": "ml-IN", "mr": "mr-IN", "ms": "ms-MY", "nb": "nb-NO", "no": "nb-NO",
    "nl": "nl-NL", "pa": "pa-IN", "pl": "pl-PL", "pt": "pt-PT", "ro": "ro-RO", "ru": "ru-RU",
    "sk": "sk-SK", "sr": "sr-RS", "sv": "sv-SE", "ta": "ta-IN", "te": "te-IN", "th": "th-TH",
    "tr": "tr-TR", "uk": "uk-UA", "vi": "vi-VN", "zh": "zh-CN", "cmn": "zh-CN", "yue": "yue-HK",
    "zh-hans": "zh-CN", "zh-hant": "zh-TW", "en-uk": "en-GB", "es-419": "es-MX",
    "ar-sa": "ar-AE",
}  # fmt: skip

_BY_LOWER_LOCALE: Final[dict[str, str]] = {code.lower(): code for code in TWILIO_SAY_LANGUAGES}


def say_language(lang: str) -> str:
    """Map ``lang`` (``en``, ``es``, ``pt-BR``, ``pt_br``, ``zh-hant``) to a Twilio ``<Say>`` locale.

    Tries the exact locale, then a known alias, then the bare language; ``en-US`` when all fail
    (including ``auto`` and the empty string).
    """
    key = lang.strip().replace("_", "-").lower()
    if key in _BY_LOWER_LOCALE:
        return _BY_LOWER_LOCALE[key]
    if key in _BY_LANGUAGE:
        return _BY_LANGUAGE[key]
    base = key.split("-", 1)[0]
    return _BY_LANGUAGE.get(base, DEFAULT_SAY_LANGUAGE)
