"""The keypad language menu's prompts: each option in the language it selects, in its voice.

``menu_prompts(config)`` turns ``languages.menu`` and ``[prompts.menu_option]`` /
``[prompts.voices]`` into ``MenuPrompt`` values for ``telephony.twiml.language_menu_twiml``:
``["en", "es"]`` gives "For English, press 1." said in English and "Para español, oprima 2." said in
Spanish. ``check-config`` guarantees every menu language has a text with ``{digit}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from callbridge.config.languages import base_language, normalize
from callbridge.routing.rules import LanguageRules
from callbridge.telephony.twiml import MenuPrompt

if TYPE_CHECKING:
    from callbridge.config import Config

__all__ = ["menu_prompts", "prompt_for"]


def prompt_for(table: Mapping[str, str], language: str) -> str | None:
    """``table``'s entry for ``language`` or its base language (``pt`` for ``pt-br``), else
    ``None``. Keys compare normalised (``pt_BR`` = ``pt-br``)."""
    by_key = {normalize(key): value for key, value in table.items()}
    return by_key.get(normalize(language)) or by_key.get(base_language(language))


def menu_prompts(config: Config) -> tuple[MenuPrompt, ...]:
    """One ``MenuPrompt`` per ``languages.menu`` entry, in digit order."""
    prompts = config.prompts
    rules = LanguageRules.from_config(config)
    result = []
    for option in rules.options:
        template = prompt_for(prompts.menu_option, option.language) or "{digit}"
        result.append(
            MenuPrompt(
                digit=option.digit,
                language=option.language,
                text=template.replace("{digit}", option.digit),
                voice=prompt_for(prompts.voices, option.language),
            )
        )
    return tuple(result)
