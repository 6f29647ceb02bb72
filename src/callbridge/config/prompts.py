"""What callbridge says on the phone: prompts by language, and how one is picked."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from callbridge.config.fields import setting

__all__ = ["MENU_OPTION_PROMPTS", "PromptsConfig", "pick_prompt"]

# "For English press 1", each in its own language (languages.menu announces every option in the
# language it selects). {digit} is replaced by the key.
MENU_OPTION_PROMPTS: dict[str, str] = {
    "en": "For English, press {digit}.",
    "es": "Para español, oprima {digit}.",
    "fr": "Pour le français, appuyez sur {digit}.",
    "de": "Für Deutsch drücken Sie die {digit}.",
    "it": "Per l'italiano, premere {digit}.",
    "pt": "Para português, pressione {digit}.",
    "ru": "Для русского языка нажмите {digit}.",
    "uk": "Для української мови натисніть {digit}.",
    "pl": "Aby wybrać język polski, naciśnij {digit}.",
    "nl": "Voor Nederlands, druk op {digit}.",
    "tr": "Türkçe için {digit} tuşuna basın.",
    "ar": "للعربية، اضغط {digit}.",
    "hi": "हिंदी के लिए {digit} दबाएँ।",
    "zh": "普通话请按{digit}。",
    "ja": "日本語は{digit}を押してください。",
    "ko": "한국어는 {digit}번을 누르세요.",
}


@attrs.frozen
class PromptsConfig:
    greeting: dict[str, str] = setting(
        {
            "en": "Hello. Please hold while we connect you to an operator. Your call will be translated.",
            "es": "Hola. Espere mientras le conectamos con un operador. Su llamada será traducida.",
            "ru": "Здравствуйте. Пожалуйста, подождите, мы соединяем вас с оператором.",
        },
        "said to the caller before hold audio, by caller language",
    )
    busy: dict[str, str] = setting(
        {
            "en": "All our lines are busy. Please call again later.",
            "es": "Todas las líneas están ocupadas.",
        },
        "said when max_calls is reached or the daemon is draining",
    )
    apology: dict[str, str] = setting(
        {
            "en": "Sorry, no operator is available right now. Please call again later.",
            "es": "Lo sentimos, no hay ningún operador disponible.",
        },
        "said when no operator answered",
    )
    operator_intro: dict[str, str] = setting(
        {"en": "Connecting a translated call.", "es": "Conectando una llamada traducida."},
        "said to the operator on answer, by operator language",
    )
    menu_option: dict[str, str] = setting(
        dict(MENU_OPTION_PROMPTS),
        "one keypad menu option, in its own language; {digit} is the key to press",
    )
    voices: dict[str, str] = setting(
        {}, 'Twilio <Say> voice by language, e.g. es = "Polly.Lupe" (unset: the console\'s)'
    )


def pick_prompt(texts: Mapping[str, str], language: str) -> str:
    """A prompt in ``language`` (or its base language), else English, else any."""
    base = language.split("-")[0]
    return (
        texts.get(language) or texts.get(base) or texts.get("en") or next(iter(texts.values()), "")
    )
