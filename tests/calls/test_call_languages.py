"""Each call in its own languages: admission, the operator's plan, *digit, detection, the end line.

Whole calls on fakes and the mock clock (``tests.calls.harness``); the Palabra links are fakes
that record the task they were opened with and every ``update_task``.
"""

from __future__ import annotations

import attrs
import numpy as np
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.calls.session import CallSession
from callbridge.config import Config, OperatorEntry
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction, Role
from callbridge.routing import CallerLanguage, LanguageSource
from tests.calls.fakes import FakePhone, role_freq, twilio_side
from tests.calls.harness import Harness, harness, make_config

C2O, O2C = Direction.CALLER_TO_OPERATOR, Direction.OPERATOR_TO_CALLER
RUSSIAN = CallerLanguage("ru", LanguageSource.PREFIX)
SPEAKS_RU = "+15550000009"


def config_with(
    *, team: list[OperatorEntry] | None = None, menu: list[str] | None = None, **env: str
) -> Config:
    """The harness config (three plain operators speaking ``es``) plus a team and a menu."""
    config = make_config(**env)
    operators = attrs.evolve(config.operators, team=team or [])
    languages = attrs.evolve(config.languages, menu=menu or [])
    return attrs.evolve(config, operators=operators, languages=languages)


def languages_of(settings: TaskSettings) -> tuple[str, str]:
    return settings.source_language, settings.target_language


async def answer(h: Harness, session: CallSession, sid: str) -> FakePhone:
    """The operator ``sid`` answers and streams; returns once the call is bridged."""
    assert session.operator_answered(sid)
    await trio.testing.wait_all_tasks_blocked()
    socket_in, inbound = twilio_side()
    leg = session.attach_leg(Role.OPERATOR, inbound)
    assert leg is not None
    operator = FakePhone(leg, socket_in, sid, role_freq(Role.OPERATOR))
    h.nursery.start_soon(operator.listen)
    await operator.start()
    h.nursery.start_soon(operator.stream)
    while session.record.status != "connected":
        await trio.sleep(0.01)
    return operator


async def test_admission_records_the_callers_language_and_how_it_was_chosen(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(
        make_config(),
        languages=attrs.evolve(make_config().languages, by_prefix={"+7": "ru"}),
    )
    async with harness(config) as h:
        by_webhook = await h.supervisor.admit(
            caller_sid="CA" + "1" * 32,
            caller_number="+15551112222",
            language=CallerLanguage("de", LanguageSource.MENU),
        )
        by_number = await h.supervisor.admit(
            caller_sid="CA" + "2" * 32, caller_number="+7 495 1234567"
        )
        default = await h.supervisor.admit(caller_sid="CA" + "3" * 32, caller_number="+44")
        records = [s.record for s in (by_webhook, by_number, default) if s is not None]
        assert [(r.caller_language, r.caller_language_source) for r in records] == [
            ("de", "menu"),
            ("ru", "prefix"),
            ("en", "default"),
        ]
        h.supervisor.cancel_all()


async def test_a_translated_call_opens_both_links_with_the_calls_languages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        with capture_logs() as logs:
            session, caller, _ = await h.bridged_call(language=RUSSIAN)
            assert languages_of(h.links.opened[C2O].settings) == ("ru", "es")
            assert languages_of(h.links.opened[O2C].settings) == ("es", "ru")
            record = session.record
            assert (record.operator_language, record.operator_language_source) == ("es", "default")
            assert h.sink.records[-1]["caller_language"] == "ru"  # published for the page
            await caller.stop()
            await h.ended(session)
        (ended,) = [e for e in logs if e["event"] == "call_ended"]
        assert ended["translated"] is True
        assert (ended["caller_language"], ended["caller_language_source"]) == ("ru", "prefix")
        assert (ended["operator_language"], ended["operator_language_source"]) == ("es", "default")


async def test_an_operator_who_speaks_the_callers_language_is_bridged_untranslated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = config_with(team=[OperatorEntry(SPEAKS_RU, ["ru", "en"])])
    async with harness(config) as h:
        with capture_logs() as logs:
            session, caller, operator = await h.bridged_call(language=RUSSIAN)
            assert h.control.actions[0][:2] == ("create", SPEAKS_RU)  # preferred over the rest
            record = session.record
            assert (record.operator_language, record.operator_language_source) == (
                "ru",
                "operator_speaks",
            )
            assert h.links.history == []  # no Palabra session at all
            caller.speaking = True
            await trio.sleep(2)
            heard = np.concatenate(operator.heard[-50:])
            assert np.abs(heard).max() > 1000  # the caller's own voice reaches the operator
            await caller.stop()
            await h.ended(session)
            h.assert_nothing_left(caller, operator)
        (ended,) = [e for e in logs if e["event"] == "call_ended"]
        assert ended["translated"] is False
        assert ended["operator_language_source"] == "operator_speaks"


async def test_a_second_operator_who_does_not_speak_the_callers_language_gets_a_translated_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Round-robin from the first team member: the Russian speaker rings first, misses the
    # call; the next operator speaks Spanish only, so the call is translated after all.
    config = config_with(team=[OperatorEntry(SPEAKS_RU, ["ru"])])
    async with harness(config) as h:
        session, caller = await h.caller_call(RUSSIAN)
        first = await h.dialed()
        await trio.sleep(2)
        assert h.links.history == []  # passthrough while the Russian speaker rings
        h.status(session, first, "no-answer", 2)
        second = await h.dialed(2)
        await answer(h, session, second)
        assert len(h.links.history) == 2
        assert {link.direction: languages_of(link.settings) for link in h.links.history} == {
            C2O: ("ru", "es"),
            O2C: ("es", "ru"),
        }
        assert session.record.operator_language_source == "default"
        await caller.stop()
        await h.ended(session)


async def test_a_second_operator_with_another_language_retasks_the_open_links(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = config_with(team=[OperatorEntry(SPEAKS_RU, ["de"])])  # rings first
    async with harness(config) as h:
        session, caller = await h.caller_call(RUSSIAN)
        first = await h.dialed()
        await trio.sleep(2)  # the links open while the German speaker's phone rings
        opened = dict(h.links.opened)
        assert languages_of(opened[C2O].settings) == ("ru", "de")
        h.status(session, first, "no-answer", 2)
        await answer(h, session, await h.dialed(2))
        assert h.links.history == list(opened.values())  # the same links, not reopened
        assert [languages_of(s) for s in opened[C2O].updates] == [("ru", "es")]
        assert [languages_of(s) for s in opened[O2C].updates] == [("es", "ru")]
        await caller.stop()
        await h.ended(session)


async def test_star_digit_switches_the_caller_and_updates_both_running_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = config_with(menu=["en", "fr", "de"])
    async with harness(config) as h:
        session, caller, _ = await h.bridged_call(
            language=CallerLanguage("en", LanguageSource.MENU)
        )
        links = dict(h.links.opened)
        await caller.press("*3")
        await trio.sleep(3)
        assert [languages_of(s) for s in links[C2O].updates] == [("de", "es")]
        assert [languages_of(s) for s in links[O2C].updates] == [("es", "de")]
        assert h.links.history == list(links.values())  # updated in place, nothing reopened
        record = session.record
        assert (record.caller_language, record.caller_language_source) == ("de", "menu")
        assert h.sink.records[-1]["caller_language"] == "de"
        await caller.press("3")  # a digit without "*" does nothing
        await caller.press("*9")  # nor a key the menu does not offer
        await caller.press("*3")  # nor the language already chosen
        await trio.sleep(3)
        assert len(links[C2O].updates) == 1
        assert session.languages.switches == 1
        assert session.ended is False
        await caller.stop()
        await h.ended(session)


async def test_the_receive_loop_never_waits_for_a_task_update(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = config_with(menu=["en", "fr"])
    async with harness(config) as h:
        session, caller, operator = await h.bridged_call(
            language=CallerLanguage("en", LanguageSource.MENU)
        )
        for link in h.links.opened.values():
            link.update_delay = 2.0  # Palabra's rate limit
        before = len(operator.heard)
        await caller.press("*2")
        await trio.sleep(1.0)  # halfway through the update
        assert not h.links.opened[C2O].updates
        assert len(operator.heard) - before >= 45  # the operator kept hearing 20 ms frames
        await trio.sleep(2.0)
        assert [languages_of(s) for s in h.links.opened[C2O].updates] == [("fr", "es")]
        await caller.stop()
        await h.ended(session)


async def test_star_digit_into_the_operators_language_closes_the_translation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = config_with(menu=["de", "es"])
    async with harness(config) as h:
        session, caller, _ = await h.bridged_call(
            language=CallerLanguage("de", LanguageSource.MENU)
        )
        links = list(h.links.history)
        assert len(links) == 2
        await caller.press("*2")  # Spanish: the operator's own language
        await trio.sleep(1)
        assert all(link.closed for link in links)
        assert session.record.operator_language_source == "operator_speaks"
        assert session.media.translators_ready()  # nothing left to wait for
        await caller.stop()
        await h.ended(session)


async def test_a_detected_caller_language_is_recorded_and_becomes_the_operators_target(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = make_config(
        CALLBRIDGE_LANGUAGES_CALLER="auto", CALLBRIDGE_LANGUAGES_CALLER_DETECTABLE="en,ru"
    )
    async with harness(config) as h:
        session, caller, _ = await h.bridged_call()
        record = session.record
        assert (record.caller_language, record.caller_language_source) == ("auto", "detected")
        c2o, o2c = h.links.opened[C2O], h.links.opened[O2C]
        assert c2o.settings.source_language == "auto"
        assert c2o.settings.detectable_languages == ("en", "ru")
        assert o2c.settings.target_language == "en"  # the first detectable, until known
        o2c.detect("de")  # the operator's side is not detected: ignored
        c2o.detect("ru")
        await trio.sleep(1)
        assert (record.caller_language, record.caller_language_source) == ("ru", "detected")
        assert h.sink.records[-1]["caller_language"] == "ru"
        assert [languages_of(s) for s in o2c.updates] == [("es", "ru")]
        assert c2o.updates == []  # the caller's own direction keeps detecting
        await caller.stop()
        await h.ended(session)


async def test_keys_on_the_operators_leg_change_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = config_with(menu=["en", "fr"])
    async with harness(config) as h:
        session, caller, operator = await h.bridged_call(
            language=CallerLanguage("en", LanguageSource.MENU)
        )
        await operator.press("*2")
        await trio.sleep(3)
        assert session.record.caller_language == "en"
        assert all(not link.updates for link in h.links.opened.values())
        await caller.stop()
        await h.ended(session)
