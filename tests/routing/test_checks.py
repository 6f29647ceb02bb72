"""check-config rejects bad language, menu, operator and voice settings, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbridge.config import OperatorEntry, load_config
from tests.test_cli import run_cli
from tests.test_config import SEED_ENV, problems_of, write

GOOD = """
[operators]
numbers = ["+15550200009"]
[[operators.team]]
number = "+15550200001"
languages = ["es", "en"]
name = "Lucía"
[[operators.team]]
number = "sip:ana@example.com"
languages = ["ru"]

[languages]
caller = "auto"
caller_detectable = ["en", "es", "ru"]
menu = ["en", "es", "ru"]
[languages.by_prefix]
"+7" = "ru"
"+1787" = "es"

[palabra.caller_to_operator]
voice_cloning = true
[palabra.operator_to_caller]
voice_timbre_detection = true
"""


def test_a_full_multilingual_setup_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {})
    assert config.operators.team == [
        OperatorEntry("+15550200001", ["es", "en"], "Lucía"),
        OperatorEntry("sip:ana@example.com", ["ru"], ""),
    ]
    assert config.languages.by_prefix == {"+7": "ru", "+1787": "es"}
    assert config.languages.menu == ["en", "es", "ru"]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[languages]\ncaller = "klingon"', "languages.caller: must be a language code Palabra"),
        ('[languages]\noperator = "th"', "languages.operator: must be a language Palabra can also speak"),
        ('[languages]\ncaller = "auto"\ncaller_detectable = ["en", "xx"]', "languages.caller_detectable: must be a language code"),
        ('[languages]\ncaller = "auto"\ncaller_detectable = ["en", "ca"]', "languages.caller_detectable: must be a language Palabra can detect"),
        ('[languages.by_prefix]\n"+7" = "russian"', 'languages.by_prefix."+7": must be a language code'),
        ('[languages.by_prefix]\n"7" = "ru"', 'languages.by_prefix."7": a prefix must be + and digits'),
        ('[languages]\nmenu = ["en", "xx"]', "languages.menu: must be a language code"),
        ('[languages]\nmenu = ["en", "es", "EN"]', "languages.menu: 'EN' is listed twice (keys 1 and 3)"),
        ('[languages]\nmenu = ["en", "es", "ru", "fr", "de", "it", "pt", "uk", "pl", "nl"]', "languages.menu: at most 9 languages"),
        ('[languages]\nmenu = ["en", "sw"]', "prompts.menu_option: no text for 'sw'"),
        ('[languages]\nmenu = ["en"]\n[prompts.menu_option]\nen = "Press one"', "prompts.menu_option.en: must contain {digit}"),
        ('[[operators.team]]\nnumber = "+1555"', "operators.team[0].languages: an operator needs at least one language"),
        ('[[operators.team]]\nnumber = "+1555"\nlanguages = []', "operators.team[0].languages: an operator needs at least one language"),
        ('[[operators.team]]\nlanguages = ["es"]', "operators.team[0].number: required"),
        ('[[operators.team]]\nnumber = "5551234"\nlanguages = ["es"]', "operators.team[0].number: must be E.164"),
        ('[[operators.team]]\nnumber = "+1555"\nlanguages = ["es", "xx"]', "operators.team[0].languages: must be a language code"),
        ('[[operators.team]]\nnumber = "+1555"\nlanguages = ["es"]\n[[operators.team]]\nnumber = "+1555"\nlanguages = ["ru"]', "operators.team[1].number: '+1555' is already listed at operators.team[0]"),
        ('[[operators.team]]\nnumber = "+1555"\nlanguages = ["es"]\nrole = "boss"', "operators.team[0].role: unknown key"),
        ('[operators]\nteam = "+1555"', "operators.team: must be an array of tables"),
        ("[palabra]\nvoice_cloning = true\nvoice_timbre_detection = true", "palabra.caller_to_operator.voice_timbre_detection: cannot be used with voice_cloning"),
        ("[palabra]\nvoice_cloning = true\n[palabra.operator_to_caller]\nvoice_timbre_detection = true", "palabra.operator_to_caller.voice_timbre_detection: cannot be used with voice_cloning"),
        ('[palabra.operator_to_caller]\nvoice_id = " "', "palabra.operator_to_caller.voice_id: must not be empty"),
        ("[palabra]\nhigh_timbre_voices = []", "palabra.high_timbre_voices: must list at least one voice"),
    ],
)  # fmt: skip
def test_bad_setting_is_rejected_naming_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    problems = problems_of(write(tmp_path, toml))
    assert any(p.startswith(expected) for p in problems), problems


def test_one_direction_may_clone_while_the_other_detects_timbre(tmp_path: Path) -> None:
    toml = "[palabra.caller_to_operator]\nvoice_cloning = true\n"
    toml += "[palabra.operator_to_caller]\nvoice_timbre_detection = true\n"
    assert load_config(write(tmp_path, toml), {}).palabra.caller_to_operator.voice_cloning


def test_a_number_in_both_lists_keeps_its_team_entry(tmp_path: Path) -> None:
    toml = (
        '[operators]\nnumbers = ["+1555"]\n[[operators.team]]\nnumber = "+1555"\nlanguages = ["ru"]'
    )
    assert load_config(write(tmp_path, toml), {}).operators.team[0].number == "+1555"


def test_team_cannot_come_from_the_environment() -> None:
    problems = problems_of(None, {"CALLBRIDGE_OPERATORS_TEAM": "+1555=es"})
    assert problems == [
        "operators.team: cannot come from the environment; use [[operators.team]] in the file"
    ]


def test_seed_language_variables_are_checked_too() -> None:
    problems = problems_of(None, {"SOURCE_LANGUAGE": "english"})
    assert problems[0].startswith("languages.caller: must be a language code Palabra knows")


def test_a_team_alone_satisfies_the_operator_requirement(tmp_path: Path) -> None:
    env = {k: v for k, v in SEED_ENV.items() if k != "OPERATOR_NUMBER"}
    path = write(tmp_path, '[[operators.team]]\nnumber = "+1555"\nlanguages = ["es"]')
    result = run_cli("check-config", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr


def test_check_config_names_the_key_of_a_bad_operator(tmp_path: Path) -> None:
    path = write(tmp_path, '[[operators.team]]\nnumber = "+1555"\nlanguages = []')
    result = run_cli("check-config", "--config", str(path), env=SEED_ENV)
    assert result.returncode == 2  # a configuration problem, as for serve
    assert "operators.team[0].languages: an operator needs at least one language" in result.stderr
