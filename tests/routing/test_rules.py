"""The caller-language rules: order, longest prefix, the menu, detection, the mid-call switch."""

from __future__ import annotations

import pytest

from callbridge.config import Config, LanguagesConfig
from callbridge.routing import (
    CallerLanguage,
    KeypadSwitch,
    LanguageRules,
    LanguageSource,
    MenuOption,
    MenuRequired,
)

PREFIX, MENU, DETECTED, DEFAULT = (
    LanguageSource.PREFIX,
    LanguageSource.MENU,
    LanguageSource.DETECTED,
    LanguageSource.DEFAULT,
)


def rules(**kw: object) -> LanguageRules:
    return LanguageRules.build(**kw)  # type: ignore[arg-type]


class TestRuleOrder:
    def test_prefix_wins_over_menu_detection_and_default(self) -> None:
        r = rules(by_prefix={"+7": "ru"}, menu=["en", "es"], default="auto", detectable=["en"])
        assert r.decide("+74951234567") == CallerLanguage("ru", PREFIX)
        assert r.decide("+74951234567", "2") == CallerLanguage("ru", PREFIX)

    def test_without_menu_is_the_prefix_else_the_fallback_never_the_menu(self) -> None:
        r = rules(by_prefix={"+7": "ru"}, menu=["en", "es"], default="auto", detectable=["en"])
        assert r.without_menu("+7 495") == CallerLanguage("ru", PREFIX)
        assert r.without_menu("+1555") == CallerLanguage("auto", DETECTED, ("en",))

    def test_menu_is_asked_when_no_prefix_matches(self) -> None:
        r = rules(by_prefix={"+7": "ru"}, menu=["en", "es", "ru"])
        assert r.decide("+15551234567") == MenuRequired(
            (MenuOption("1", "en"), MenuOption("2", "es"), MenuOption("3", "ru"))
        )

    def test_menu_digit_picks_the_nth_language(self) -> None:
        r = rules(menu=["en", "es", "ru"])
        assert r.decide("+15551234567", "2") == CallerLanguage("es", MENU)
        assert r.decide("+15551234567", " 3 ") == CallerLanguage("ru", MENU)

    @pytest.mark.parametrize("digit", ["", "4", "0", "*", "#", "12", "x"])
    def test_no_or_bad_digit_falls_through_to_the_default(self, digit: str) -> None:
        r = rules(menu=["en", "es", "ru"], default="es")
        assert r.decide("+15551234567", digit) == CallerLanguage("es", DEFAULT)

    def test_no_digit_with_auto_falls_through_to_detection(self) -> None:
        r = rules(menu=["en", "es"], default="auto", detectable=["en", "ru"])
        assert r.decide("+15551234567", "") == CallerLanguage("auto", DETECTED, ("en", "ru"))

    def test_detection_when_auto_and_no_menu(self) -> None:
        decided = rules(default="auto", detectable=["en", "ru"]).decide("+15551234567")
        assert decided == CallerLanguage("auto", DETECTED, ("en", "ru"))
        assert isinstance(decided, CallerLanguage) and decided.pending

    def test_default_when_nothing_else_answers(self) -> None:
        assert rules(default="pt_BR").decide("+15551234567") == CallerLanguage("pt-br", DEFAULT)

    def test_detected_result_is_recorded_as_detected(self) -> None:
        assert rules(default="auto").detected("RU") == CallerLanguage("ru", DETECTED)


class TestPrefix:
    def test_longest_prefix_wins_whatever_the_order(self) -> None:
        r = rules(by_prefix={"+1": "en", "+1787": "es", "+17": "fr"})
        assert r.by_number("+17875551234") == "es"
        assert r.by_number("+17005551234") == "fr"
        assert r.by_number("+12125551234") == "en"

    def test_number_spacing_is_ignored(self) -> None:
        assert rules(by_prefix={"+7": "ru"}).by_number(" +7 (495) 123-45-67") == "ru"

    @pytest.mark.parametrize("number", ["", "anonymous", "client:alice", "+44207"])
    def test_odd_or_unmatched_numbers_match_no_prefix(self, number: str) -> None:
        assert rules(by_prefix={"+7": "ru"}).by_number(number) is None

    def test_prefix_needs_the_plus_too(self) -> None:
        assert rules(by_prefix={"+7": "ru"}).by_number("74951234567") is None


class TestFromConfig:
    def test_reads_the_languages_section(self) -> None:
        config = Config(
            languages=LanguagesConfig(
                caller="auto",
                caller_detectable=["en", "es"],
                by_prefix={"+7": "ru", "+34": "es"},
                menu=["en", "ru"],
            )
        )
        r = LanguageRules.from_config(config)
        assert r.by_prefix == (("+34", "es"), ("+7", "ru"))
        assert (r.menu, r.default, r.detectable) == (("en", "ru"), "auto", ("en", "es"))

    def test_todays_settings_alone_give_the_default(self) -> None:
        r = LanguageRules.from_config(Config())
        assert r.decide("+74951234567") == CallerLanguage("en", DEFAULT)


class TestKeypadSwitch:
    def test_star_then_digit_switches(self) -> None:
        switch = KeypadSwitch(rules(menu=["en", "es", "ru"]))
        assert switch.press("*", 10.0) is None
        assert switch.press("3", 10.5) == CallerLanguage("ru", MENU)

    def test_digit_without_star_does_nothing(self) -> None:
        switch = KeypadSwitch(rules(menu=["en", "es", "ru"]))
        assert switch.press("2", 1.0) is None

    def test_star_is_used_once(self) -> None:
        switch = KeypadSwitch(rules(menu=["en", "es", "ru"]))
        switch.press("*", 1.0)
        assert switch.press("2", 1.1) == CallerLanguage("es", MENU)
        assert switch.press("3", 1.2) is None

    def test_star_expires(self) -> None:
        switch = KeypadSwitch(rules(menu=["en", "es"]), window_s=5.0)
        switch.press("*", 1.0)
        assert switch.press("2", 6.5) is None

    def test_other_key_or_digit_outside_the_menu_disarms(self) -> None:
        switch = KeypadSwitch(rules(menu=["en", "es"]))
        switch.press("*", 1.0)
        assert switch.press("7", 1.1) is None
        assert switch.press("2", 1.2) is None
        switch.press("*", 2.0)
        switch.press("#", 2.1)
        assert switch.press("1", 2.2) is None

    def test_star_star_digit_still_switches(self) -> None:
        switch = KeypadSwitch(rules(menu=["en", "es"]))
        switch.press("*", 1.0)
        switch.press("*", 1.1)
        assert switch.press("1", 1.2) == CallerLanguage("en", MENU)
