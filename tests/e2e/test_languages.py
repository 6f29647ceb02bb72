"""Each caller in their own language, end to end: the real daemon between both simulators.

In tone mode the Palabra simulator "translates" into a tone per target language (en 2000 Hz,
es and ru 1300, de 1500, fr 1700) and reports every task it ran, each ``set_task`` update and, per
utterance, the source language and the languages it was translated into; the Twilio simulator
answers the keypad menu with the scenario's keys and sends ``dtmf`` events on the caller's stream.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from callbridge.sim.stack import Stack
from tests.e2e.conftest import (
    FAST_PALABRA,
    StackFactory,
    daemon_event,
    daemon_events_when,
    wait_report,
)
from tests.e2e.timeline import Timeline

pytestmark = pytest.mark.e2e

OPERATOR_VOICE = 800.0  # the operator's tone (Hz)
TRANSLATION_TONES = (2000.0, 1300.0, 1500.0, 1700.0)
HEARD_DB = -45.0


def connections_since(stack: Stack, seen: int, count: int) -> list[dict[str, Any]]:
    """The Palabra simulator's connections after the first ``seen``, once there are ``count``."""
    report = wait_report(
        stack, "palabra", lambda r: len(r["connections"]) >= seen + count, what="connections"
    )
    new: list[dict[str, Any]] = report["connections"][seen:]
    return new


def first_task(connection: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    task = connection["tasks"][0]
    return task["source_language"], tuple(task["target_languages"])


def test_by_prefix_and_by_detection(stack_factory: StackFactory) -> None:
    """A ``+7`` caller gets a Russian task; with ``caller = "auto"`` another caller is recorded
    in the language the simulator detected, which becomes what they hear."""
    stack = stack_factory(
        caller_language="auto",
        languages_toml='caller_detectable = ["en", "ru"]',
        config_toml='[languages.by_prefix]\n"+7" = "ru"\n',
        palabra_args=[*FAST_PALABRA, "--detect-language", "ru"],
    )
    stack.place_call(**{"from": "+74951234567", "hangup_at_s": 8})
    ended = stack.call_ended(timeout_s=60)
    assert (ended["caller_language"], ended["caller_language_source"]) == ("ru", "prefix")
    tasks = {first_task(c) for c in connections_since(stack, 0, 2)}
    assert tasks == {("ru", ("es",)), ("es", ("ru",))}

    stack.place_call(**{"from": "+442079460000", "hangup_at_s": 20})
    daemon_event(stack, "caller_language_detected", language="ru")
    ended = daemon_events_when(stack, "call_ended", 2, timeout_s=60)[-1]
    assert ended["reason"] == "caller_hangup"
    assert (ended["caller_language"], ended["caller_language_source"]) == ("ru", "detected")
    report = wait_report(
        stack,
        "palabra",
        lambda r: any(t["event"] == "updated" for c in r["connections"][2:] for t in c["tasks"]),
        what="the operator's task updated to the detected language",
    )
    by_source = {first_task(c)[0]: c for c in report["connections"][2:]}
    assert by_source["auto"]["detected_language"] == "ru"
    assert [t["target_languages"] for t in by_source["es"]["tasks"]] == [["en"], ["ru"]]


def test_menu_then_star_digit_mid_call(stack_factory: StackFactory) -> None:
    """A caller who presses 2 hears Spanish prompts and gets a Spanish task; ``*3`` mid-call
    switches them to the third language, and the translation that follows uses it."""
    stack = stack_factory(
        operator_language="fr",
        languages_toml='menu = ["en", "es", "de"]\nmenu_timeout_s = 2',
        greetings={"es": "Espere."},
    )
    caller_sid = stack.place_call(menu_digits=["2"], hangup_at_s=60)
    daemon_event(stack, "call_bridged", translated=True)
    c2o, o2c = sorted(
        connections_since(stack, 0, 2), key=lambda c: c["tasks"][0]["source_language"]
    )
    assert first_task(c2o) == ("es", ("fr",)) and first_task(o2c) == ("fr", ("es",))
    said = [e for e in stack.report("twilio")["parties"]["caller"]["events"] if e["kind"] == "say"]
    assert ("Espere.", "es-ES") in [(e["text"], e["language"]) for e in said]
    wait_report(
        stack,
        "palabra",
        lambda r: any(u["translated_texts"] for u in by_id(r, c2o)["utterances"]),
        what="a Spanish utterance translated",
    )
    stack.press_keys("*3")
    daemon_event(stack, "caller_language_switched", language="de")
    report = wait_report(
        stack,
        "palabra",
        lambda r: (
            any(u["source_language"] == "de" for u in by_id(r, c2o)["utterances"])
            and any("de" in u["translated_texts"] for u in by_id(r, o2c)["utterances"])
        ),
        timeout_s=40,
        what="translations in German both ways after *3",
    )
    assert [t["source_language"] for t in by_id(report, c2o)["tasks"]] == ["es", "de"]
    assert [t["target_languages"] for t in by_id(report, o2c)["tasks"]] == [["es"], ["de"]]
    assert len(report["connections"]) == 2  # updated in place: the call kept its links
    stack.sim_post("twilio", "/_sim/hangup", {"call_sid": caller_sid})
    ended = stack.call_ended(timeout_s=60)
    assert ended["reason"] == "caller_hangup"
    assert (ended["caller_language"], ended["caller_language_source"]) == ("de", "menu")
    assert ended["language_switches"] == 1


def by_id(report: dict[str, Any], connection: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in report["connections"] if c["id"] == connection["id"]]
    return found[0]


def test_an_operator_who_speaks_the_callers_language_is_bridged_untranslated(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(
        config_toml='[[operators.team]]\nnumber = "+15550200003"\nlanguages = ["en"]\n'
    )
    stack.place_call(hangup_at_s=15)
    bridged = daemon_event(stack, "call_bridged")
    assert bridged["operator"] == "+15550200003" and bridged["translated"] is False
    ended = stack.call_ended(timeout_s=60)
    assert ended["reason"] == "caller_hangup"
    assert (ended["operator_language"], ended["operator_language_source"]) == (
        "en",
        "operator_speaks",
    )
    assert stack.report("palabra")["connections"] == []  # no Palabra session at all
    assert stack.wait_idle(30)
    wavs = stack.options.workdir / "wavs"
    stack.sim_post("twilio", "/_sim/write-wavs", {"dir": str(wavs)})
    # From a second after the bridge (before it the caller heard the hold chime).
    bridged_at = dt.datetime.fromisoformat(bridged["ts"].replace("Z", "+00:00")).timestamp()
    heard = Timeline.load(wavs / "caller-heard.timeline.json").window(bridged_at + 1, np.inf)
    assert len(heard.times) > 250
    assert float(np.mean(heard.level_db(OPERATOR_VOICE) > HEARD_DB)) > 0.1
    for tone in TRANSLATION_TONES:
        assert not np.any(heard.level_db(tone) > HEARD_DB), tone
