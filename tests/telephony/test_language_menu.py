"""The keypad language menu: TwiML (golden), the Gather webhook's digits, the prompts per language."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from callbridge.config import Config, LanguagesConfig, PromptsConfig
from callbridge.routing import LanguageRules, LanguageSource
from callbridge.telephony import twiml
from callbridge.telephony.language_menu import menu_prompts, prompt_for
from callbridge.telephony.twiml import MenuPrompt

DECL = '<?xml version="1.0" encoding="UTF-8"?>'
URL = "https://bridge.example.com/twiml/client/language"


class TestMenuTwiml:
    def test_golden_two_rounds_then_redirect(self) -> None:
        doc = twiml.language_menu_twiml(
            [
                MenuPrompt("1", "en", "For English, press 1."),
                MenuPrompt("2", "es", "Para español, oprima 2.", "Polly.Lupe"),
            ],
            action_url=URL,
            timeout_s=4,
        )
        gather = (
            f'<Gather action="{URL}" input="dtmf" method="POST" numDigits="1" timeout="4">'
            '<Say language="en-US">For English, press 1.</Say>'
            '<Say language="es-ES" voice="Polly.Lupe">Para español, oprima 2.</Say>'
            "</Gather>"
        )
        assert doc == (
            DECL + "<Response>" + gather + gather + f'<Redirect method="POST">{URL}</Redirect>'
            "</Response>"
        )

    def test_text_is_escaped(self) -> None:
        doc = twiml.language_menu_twiml(
            [MenuPrompt("1", "en", "<press> 1 & go")], action_url=URL + "?a=1&b=2", timeout_s=5
        )
        root = ET.fromstring(doc.removeprefix(DECL))
        assert root[0][0].text == "<press> 1 & go"
        assert root[0].attrib["action"] == URL + "?a=1&b=2"

    @pytest.mark.parametrize(("prompts", "timeout"), [([], 5), ([MenuPrompt("1", "en", "x")], 0)])
    def test_empty_menu_or_zero_timeout_is_refused(
        self, prompts: list[MenuPrompt], timeout: int
    ) -> None:
        with pytest.raises(ValueError, match=r"menu|timeout"):
            twiml.language_menu_twiml(prompts, action_url=URL, timeout_s=timeout)

    def test_action_url_keeps_a_path_prefix(self) -> None:
        assert (
            twiml.language_menu_url("https://b.example/cb/")
            == "https://b.example/cb/twiml/client/language"
        )


class TestGatherDigits:
    @pytest.mark.parametrize(
        ("form", "digits"),
        [
            ({"Digits": "2", "CallSid": "CA1"}, "2"),
            ({"Digits": " 3 "}, "3"),
            ({}, ""),
            ({"Digits": ""}, ""),
        ],
    )
    def test_digits_or_nothing(self, form: dict[str, str], digits: str) -> None:
        assert twiml.parse_gather_digits(form) == digits

    def test_digits_feed_the_rules(self) -> None:
        rules = LanguageRules.build(menu=["en", "es"], default="ru")
        pressed = rules.decide("+1555", twiml.parse_gather_digits({"Digits": "2"}))
        timed_out = rules.decide("+1555", twiml.parse_gather_digits({}))
        assert (pressed.language, pressed.source) == ("es", LanguageSource.MENU)  # type: ignore[union-attr]
        assert (timed_out.language, timed_out.source) == ("ru", LanguageSource.DEFAULT)  # type: ignore[union-attr]


class TestMenuPrompts:
    def test_each_option_in_its_own_language_and_voice(self) -> None:
        config = Config(
            languages=LanguagesConfig(menu=["en", "es", "ru"]),
            prompts=PromptsConfig(voices={"es": "Polly.Lupe", "ru": "Polly.Tatyana"}),
        )
        assert menu_prompts(config) == (
            MenuPrompt("1", "en", "For English, press 1.", None),
            MenuPrompt("2", "es", "Para español, oprima 2.", "Polly.Lupe"),
            MenuPrompt("3", "ru", "Для русского языка нажмите 3.", "Polly.Tatyana"),
        )

    def test_regional_code_uses_its_base_languages_text(self) -> None:
        config = Config(languages=LanguagesConfig(menu=["pt-br"]))
        assert menu_prompts(config)[0].text == "Para português, pressione 1."

    def test_configured_text_replaces_the_built_in_one(self) -> None:
        config = Config(
            languages=LanguagesConfig(menu=["en"]),
            prompts=PromptsConfig(menu_option={"en": "Press {digit} for English."}),
        )
        assert menu_prompts(config)[0].text == "Press 1 for English."

    def test_prompt_lookup_is_exact_then_base_and_case_blind(self) -> None:
        table = {"pt_BR": "br", "pt": "pt", "EN": "en"}
        assert prompt_for(table, "pt-br") == "br"
        assert prompt_for(table, "pt-pt") == "pt"
        assert prompt_for(table, "en") == "en"
        assert prompt_for(table, "sw") is None
