"""Translator: the Palabra duplex task of one direction."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.translate import Translator
from callbridge.config import DirectionMode
from callbridge.errors import PalabraUnavailable
from callbridge.palabra.events import ServerWarning
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction, Role
from tests.calls.fakes import FakeLinks, FakeSink
from tests.calls.harness import make_config
from tests.calls.media_parts import output, tone

DIRECTION = Direction.CALLER_TO_OPERATOR
CHUNK_FRAMES = 16  # 320 ms, Palabra's input chunk
SETTINGS = TaskSettings.resolve(make_config(), DIRECTION, caller_language="ru")


def translator(
    mode: DirectionMode = "voice",
    detected: list[tuple[Direction, str]] | None = None,
) -> tuple[Translator, FakeLinks, FakeSink, CallBroadcaster]:
    links, sink = FakeLinks(ready_delay=0.1), FakeSink()
    broadcaster = CallBroadcaster(sink)
    listener = output(Role.OPERATOR, sink=sink, mode=mode)
    task = Translator(
        DIRECTION,
        mode,
        open_link=links,
        listener=listener,
        broadcaster=broadcaster,
        call_id="c1",
        batch_samples=160 * CHUNK_FRAMES,
        on_language=None if detected is None else lambda d, lang: detected.append((d, lang)),
    )
    return task, links, sink, broadcaster


async def test_audio_is_fed_upsampled_in_whole_palabra_chunks_once_the_link_is_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task, links, _, _ = translator()
    task.feed(tone())  # before the link exists: nowhere to go, nothing kept
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task.run, SETTINGS)
        await task.ready.wait()
        link = links.opened[DIRECTION]
        for _ in range(CHUNK_FRAMES - 1):
            task.feed(tone())
        assert link.fed_samples == 0  # gathered until the chunk is whole
        task.feed(tone())
        assert link.fed_samples == 3 * 160 * CHUNK_FRAMES  # 8 -> 24 kHz, exactly
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("mode", "heard"), [("voice", True), ("captions", False)])
async def test_speech_reaches_the_listener_only_in_voice_mode_but_text_always(
    autojump_clock: trio.testing.MockClock, mode: DirectionMode, heard: bool
) -> None:
    task, links, sink, broadcaster = translator(mode)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task.run, SETTINGS)
        nursery.start_soon(broadcaster.run)
        await task.ready.wait()
        links.opened[DIRECTION].speak("u1", 1300, 1.0, "es")
        await trio.testing.wait_all_tasks_blocked()
        queued = task._listener.mixer.translation_queue_ms
        assert (queued > 900) is heard
        assert [e.kind for e in sink.events] == ["final", "translation"]
        assert {e.direction for e in sink.events} == {DIRECTION}
        nursery.cancel_scope.cancel()


async def test_notices_are_counted_by_code_and_logged_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task, links, _, _ = translator()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task.run, SETTINGS)
            await task.ready.wait()
            for _ in range(3):
                links.opened[DIRECTION]._send.send_nowait(ServerWarning("TOO_FAST", "slow down"))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert task.notices == {"TOO_FAST": 3}
    assert [e["code"] for e in logs if e["event"] == "translator_notice"] == ["TOO_FAST"]


async def test_a_link_whose_events_end_fails_the_direction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task, links, _, _ = translator()
    with pytest.RaisesGroup(PalabraUnavailable, allow_unwrapped=True, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task.run, SETTINGS)
            await task.ready.wait()
            links.opened[DIRECTION]._send.close()


async def test_the_link_opens_with_the_task_run_is_given_and_update_task_changes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task, links, _, _ = translator()
    spanish = SETTINGS.with_languages("es", "en")
    assert not await task.update_task(spanish)  # no link open: nothing to update
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, SETTINGS)  # started = the link is ready
        link = links.opened[DIRECTION]
        assert link.settings.source_language == "ru"
        assert await task.update_task(spanish)
        assert link.updates == [spanish]
        nursery.cancel_scope.cancel()


async def test_a_detected_language_goes_to_on_language(
    autojump_clock: trio.testing.MockClock,
) -> None:
    detected: list[tuple[Direction, str]] = []
    task, links, _, _ = translator(detected=detected)
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, SETTINGS)
        links.opened[DIRECTION].detect("ru")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert detected == [(DIRECTION, "ru")]


async def test_a_stopped_translator_feeds_nothing_and_runs_again_on_a_new_link(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task, links, _, _ = translator()
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as first:
            first.start_soon(task.run, SETTINGS)
            await task.ready.wait()
            first.cancel_scope.cancel()
        old = links.opened[DIRECTION]
        assert old.closed
        assert task.link_stats is old.stats  # still there for the call's final metrics
        for _ in range(CHUNK_FRAMES):
            task.feed(tone())
        assert old.fed_samples == 0
        await nursery.start(task.run, SETTINGS)
        assert links.opened[DIRECTION] is not old and len(links.history) == 2
        nursery.cancel_scope.cancel()
