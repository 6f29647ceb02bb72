"""Per-call languages on a Palabra link: the task a call starts with, switching it live with
``update_task`` (the caller pressed *3), and the detected language of an ``auto`` source."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from callbridge.config import LanguagesConfig
from callbridge.palabra import LanguageDetected, ServerError, TaskSettings, Transcript
from callbridge.roles import Direction
from tests.palabra.fake_server import FakePalabra
from tests.palabra.helpers import GUARD_S, drain, feed_realtime, make_config, open_link

C2O = Direction.CALLER_TO_OPERATOR


def transcription(task: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = task["pipeline"]["transcription"]
    return result


def target(task: dict[str, Any]) -> str:
    return str(task["pipeline"]["translations"][0]["target_language"])


class TestCallLanguages:
    async def test_link_runs_the_task_it_is_given(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        config = make_config(fake)
        settings = TaskSettings.resolve(config, C2O, caller_language="ru", operator_language="de")
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, config, settings=settings) as link:
                assert link.settings is settings
        task = fake.connections[0].tasks[0]
        assert (transcription(task)["source_language"], target(task)) == ("ru", "de")


class TestUpdateTask:
    async def test_switch_is_sent_on_the_live_connection_without_dropping_it(
        self, autojump_clock: Any
    ) -> None:
        """*3: the caller now speaks Russian. One connection, a second set_task, acknowledged
        'updated'; audio keeps flowing before and after."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await feed_realtime(link, 3.0)
                await link.update_task(link.settings.with_languages("ru", "es"))
                await feed_realtime(link, 3.0)
                assert link.settings.source_language == "ru"
        (conn,) = fake.connections
        assert [transcription(t)["source_language"] for t in conn.tasks] == ["en", "ru"]
        assert conn.received.count("set_task") == 2
        assert 0 < conn.audio_at_task[1] < conn.audio_samples  # speech before and after
        assert link.stats.task_updates == 1
        assert link.stats.reconnects == 0

    async def test_updates_respect_one_set_task_per_2_s(self, autojump_clock: Any) -> None:
        fake = FakePalabra(ready_delay_s=0.1)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await link.update_task(link.settings.with_languages("ru", "es"))
                await link.update_task(link.settings.with_languages("de", "es"))
        times = fake.connections[0].task_times
        assert len(times) == 3
        assert times[1] - times[0] >= 2.0
        assert times[2] - times[1] >= 2.0

    async def test_a_reconnect_after_a_switch_sends_the_new_task(self, autojump_clock: Any) -> None:
        fake = FakePalabra(drop_after_audio_s={0: 4.0})
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await link.update_task(link.settings.with_languages("ru", "es"))
                await feed_realtime(link, 8.0)
        assert len(fake.connections) == 2
        assert transcription(fake.connections[1].tasks[0])["source_language"] == "ru"

    async def test_a_refused_update_is_an_event_and_the_link_goes_on(
        self, autojump_clock: Any
    ) -> None:
        fake = FakePalabra(min_silence_threshold=0.5)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                bad = attrs.evolve(link.settings, silence_threshold_s=0.4)
                await link.update_task(bad)
                await feed_realtime(link, 1.0)
                events = await drain(link)
        assert [e.code for e in events if isinstance(e, ServerError)] == ["VALIDATION_ERROR"]
        assert len(fake.connections) == 1

    async def test_update_after_close_is_refused(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running():
                async with open_link(fake, make_config(fake)) as link:
                    pass
                with pytest.raises(trio.ClosedResourceError):
                    await link.update_task(link.settings)


class TestDetection:
    async def test_detected_language_is_announced_once_and_on_change(
        self, autojump_clock: Any
    ) -> None:
        fake = FakePalabra()
        languages = LanguagesConfig(caller="auto", caller_detectable=["en", "ru"])
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, languages=languages)) as link,
            ):
                conn = fake.connections[0]
                for tid, language in [("a", "ru"), ("a", "ru"), ("b", "ru"), ("c", "en")]:
                    await conn.send_transcript("partial_transcription", tid, "...", language)
                await conn.send_transcript("translated_transcription", "c", "hola", "es")
                await trio.sleep(0.1)
                events = await drain(link)
        detected = [e for e in events if isinstance(e, LanguageDetected)]
        assert [(d.language, d.transcription_id) for d in detected] == [("ru", "a"), ("en", "c")]
        assert sum(isinstance(e, Transcript) for e in events) == 5
        assert link.stats.languages_detected == 2

    async def test_fixed_source_language_announces_nothing(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await fake.connections[0].send_transcript("partial_transcription", "a", "x", "de")
                await trio.sleep(0.1)
                events = await drain(link)
        assert not any(isinstance(e, LanguageDetected) for e in events)

    async def test_switching_to_auto_detects_again(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        languages = LanguagesConfig(caller="auto", caller_detectable=["en", "ru"])
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, languages=languages)) as link,
            ):
                conn = fake.connections[0]
                await conn.send_transcript("partial_transcription", "a", "...", "ru")
                await trio.sleep(0.1)
                await link.update_task(link.settings.with_languages("auto", "es", ("en", "ru")))
                await conn.send_transcript("partial_transcription", "b", "...", "ru")
                await trio.sleep(0.1)
                events = await drain(link)
        assert [e.language for e in events if isinstance(e, LanguageDetected)] == ["ru", "ru"]
