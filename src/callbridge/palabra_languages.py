"""The language codes Palabra's real-time translation accepts, for checking the configuration.

A callbridge language is both a source (that party speaks it) and a target (the other party's
speech is translated into it), so a code is accepted when it is either. Codes are compared
without case (``pt-BR`` = ``pt-br``). ``auto`` (detect the source) is handled by the caller.

Source: Palabra's official JavaScript SDK, ``packages/lib/src/utils/source.ts`` and
``packages/lib/src/utils/target.ts`` (https://github.com/PalabraAI/palabra-ai-javascript), the
language lists its UI offers for ``pipeline.transcription.source_language`` and
``pipeline.translations[].target_language``.
"""

from __future__ import annotations

import difflib
from typing import Final

__all__ = ["SOURCE_LANGUAGES", "TARGET_LANGUAGES", "known_language", "suggest_language"]

SOURCE_LANGUAGES: Final = frozenset(
    {
        "ar", "ba", "be", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "eo", "es", "et",
        "eu", "fa", "fi", "fr", "ga", "gl", "he", "hi", "hr", "hu", "ia", "id", "it", "ja", "ko",
        "lt", "lv", "mn", "mr", "ms", "mt", "nl", "no", "pl", "pt", "ro", "ru", "sk", "sl", "sv",
        "sw", "ta", "th", "tr", "ug", "uk", "ur", "vi", "zh",
    }
)  # fmt: skip

TARGET_LANGUAGES: Final = frozenset(
    {
        "ar-ae", "ar-sa", "bg", "cs", "da", "de", "el", "en-au", "en-ca", "en-gb", "en-us", "es",
        "es-mx", "fi", "fil", "fr", "fr-ca", "hi", "hr", "hu", "id", "it", "ja", "ko", "ms", "nl",
        "pl", "pt", "pt-br", "ro", "ru", "sk", "sv", "ta", "tr", "uk", "yue", "zh", "zh-hant",
    }
)  # fmt: skip

_KNOWN: Final = SOURCE_LANGUAGES | TARGET_LANGUAGES


def known_language(code: str) -> bool:
    """True when Palabra knows ``code`` as a source or a target language (any case)."""
    return code.strip().lower().replace("_", "-") in _KNOWN


def suggest_language(code: str) -> str:
    """`` (did you mean 'xx'?)`` for a close known code, or an empty string."""
    close = difflib.get_close_matches(code.strip().lower(), sorted(_KNOWN), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
