"""Keys in the Twilio simulator: <Gather> menus answered by the scenario, and dtmf events on the
media stream (scripted and pressed at runtime)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from callbridge.sim.twilio import Scenario, ScenarioError, scenario_from_dict
from callbridge.sim.twilio.scenario import CallerSpec, DtmfSpec, Timing
from callbridge.sim.twilio.twiml import Gather, Say, parse_twiml
from callbridge.telephony.media_stream import Dtmf, parse
from callbridge.telephony.twiml import MenuPrompt, language_menu_twiml
from tests.sim_twilio.harness import FakeApp, WsConn, running

FAST = Timing(say_ms_per_char=2)
PROMPTS = [
    MenuPrompt("1", "en", "For English, press 1."),
    MenuPrompt("2", "es", "Para español, oprima 2.", "Polly.Lupe"),
    MenuPrompt("3", "ru", "Для русского языка нажмите 3."),
]


def menu_app(timeout_s: int = 1) -> FakeApp:
    """The real menu TwiML at /twiml/client; the language chosen is said back at the action."""

    def client(app: FakeApp) -> str:
        last = app.requests[-1]
        if last["path"] == "/twiml/client/language":
            digits = last["params"].get("Digits", "none")
            return f"<Response><Say>chose {digits}</Say><Hangup/></Response>"
        action = app.url + "/twiml/client/language"
        return language_menu_twiml(PROMPTS, action_url=action, timeout_s=timeout_s)

    return FakeApp(client_twiml=client)


def said(sim: Any) -> list[tuple[str, str]]:
    events = sim.parties["caller"].events
    return [(e["text"], e["language"]) for e in events if e["kind"] == "say"]


class TestGather:
    def test_parses_nested_prompts_and_attributes(self) -> None:
        doc = language_menu_twiml(PROMPTS[:2], action_url="https://a/x", timeout_s=4)
        first = parse_twiml(doc)[0]
        assert first == Gather(
            action="https://a/x",
            method="POST",
            num_digits=1,
            timeout=4,
            prompts=(
                Say("For English, press 1.", "en-US"),
                Say("Para español, oprima 2.", "es-ES", "Polly.Lupe"),
            ),
        )

    async def test_key_pressed_posts_digits_to_the_action(self) -> None:
        scenario = Scenario(caller=CallerSpec(menu_digits=["2"]), timing=FAST)
        app = menu_app()
        with trio.fail_after(10):
            async with running(scenario, app) as (sim, _):
                call = sim.start_inbound_call()
                assert await sim.wait_idle(8)
        (action,) = app.of_kind("/twiml/client/language")
        assert action["valid"] and action["params"]["Digits"] == "2"
        assert action["params"]["CallSid"] == call.sid
        assert said(sim) == [
            ("For English, press 1.", "en-US"),
            ("Para español, oprima 2.", "es-ES"),
            ("Для русского языка нажмите 3.", "ru-RU"),
            ("chose 2", "en-US"),
        ]
        voices = [e.get("voice") for e in sim.parties["caller"].events if e["kind"] == "say"]
        assert voices[1] == "Polly.Lupe"

    async def test_no_key_repeats_the_menu_once_then_redirects_without_digits(self) -> None:
        scenario = Scenario(timing=FAST)
        app = menu_app(timeout_s=1)
        with trio.fail_after(10):
            async with running(scenario, app) as (sim, _):
                sim.start_inbound_call()
                assert await sim.wait_idle(8)
        (action,) = app.of_kind("/twiml/client/language")
        assert "Digits" not in action["params"]
        texts = [text for text, _ in said(sim)]
        assert texts.count("For English, press 1.") == 2
        assert texts[-1] == "chose none"
        gathers = [e for e in sim.parties["caller"].events if e["kind"] == "gather"]
        assert [g["digits"] for g in gathers] == ["", ""]

    async def test_key_in_the_second_round(self) -> None:
        scenario = Scenario(caller=CallerSpec(menu_digits=["", "3"]), timing=FAST)
        app = menu_app(timeout_s=1)
        with trio.fail_after(10):
            async with running(scenario, app) as (sim, _):
                sim.start_inbound_call()
                assert await sim.wait_idle(8)
        (action,) = app.of_kind("/twiml/client/language")
        assert action["params"]["Digits"] == "3"
        assert [t for t, _ in said(sim)].count("For English, press 1.") == 2

    async def test_action_on_empty_result_posts_without_digits(self) -> None:
        doc = (
            '<Response><Gather numDigits="1" timeout="1" actionOnEmptyResult="true" '
            'action="/twiml/client/language"><Say>press</Say></Gather>'
            "<Say>not reached</Say></Response>"
        )
        app = menu_app()
        first = app.client_twiml
        app.client_twiml = lambda a: doc if len(a.requests) == 1 else first(a)
        with trio.fail_after(10):
            async with running(Scenario(timing=FAST), app) as (sim, _):
                sim.start_inbound_call()
                assert await sim.wait_idle(8)
        (action,) = app.of_kind("/twiml/client/language")
        assert "Digits" not in action["params"]
        assert "not reached" not in [t for t, _ in said(sim)]


class TestDtmfOnTheStream:
    async def test_scripted_and_runtime_keys_arrive_as_dtmf_events(self) -> None:
        got: list[dict[str, Any]] = []

        async def collect(conn: WsConn) -> None:
            await conn.recv_until("start")
            while True:
                msg = await conn.recv()
                if msg.get("event") == "dtmf":
                    got.append(msg)
                elif msg.get("event") == "stop":
                    return

        scenario = Scenario(
            caller=CallerSpec(hangup_at_s=2.5), dtmf=(DtmfSpec("*3", at_s=0.3, gap_s=0.2),)
        )
        with trio.fail_after(10):
            async with running(scenario, FakeApp(ws_handler=collect)) as (sim, _):
                sim.start_inbound_call()
                await trio.sleep(1.2)
                assert len(sim.press_keys("caller", "#")) == 1
                assert sim.press_keys("operator", "1") == []  # no operator stream
                assert await sim.wait_idle(8)
        parsed = [parse(json.dumps(m)) for m in got]
        assert [p.digit for p in parsed if isinstance(p, Dtmf)] == ["*", "3", "#"]
        assert all(isinstance(p, Dtmf) and p.track == "inbound_track" for p in parsed)
        seqs = [int(m["sequenceNumber"]) for m in got]
        assert seqs == sorted(seqs)
        (stream,) = sim.report()["streams"]
        assert [d["digit"] for d in stream["dtmf_sent"]] == ["*", "3", "#"]
        pressed = [e["digit"] for e in sim.parties["caller"].events if e["kind"] == "dtmf"]
        assert pressed == ["*", "3", "#"]


class TestScenario:
    def test_dtmf_and_menu_digits_from_json(self) -> None:
        scenario = scenario_from_dict(
            {
                "caller": {"menu_digits": ["", "2"], "menu_press_delay_s": 0.1},
                "dtmf": [{"digits": "*3", "at_s": 5}],
            }
        )
        assert scenario.caller.menu_digits == ["", "2"]
        assert scenario.dtmf == (DtmfSpec("*3", at_s=5),)

    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            ({"dtmf": [{"digits": "*x"}]}, "dtmf[0]: digits must be keypad keys"),
            ({"dtmf": [{"digits": "1", "party": "boss"}]}, "dtmf[0]: party 'boss'"),
            ({"caller": {"menu_digits": ["A"]}}, "caller.menu_digits: 'A'"),
        ],
    )
    def test_bad_keys_are_refused(self, data: dict[str, Any], problem: str) -> None:
        with pytest.raises(ScenarioError) as info:
            scenario_from_dict(data)
        assert any(p.startswith(problem) for p in info.value.problems), info.value.problems
