"""Translator: the Palabra duplex task of one direction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.mixer import MixedFrame
from callbridge.calls.translate import Translator, feed_batch_samples
from callbridge.config import DirectionMode
from callbridge.errors import PalabraUnavailable
from callbridge.palabra.events import (
    ConnectionLost,
    PalabraEvent,
    ServerWarning,
    SpeechChunk,
    SpeechLost,
    Transcript,
)
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction, Role
from tests.calls.fakes import FakeLink, FakeLinks, FakeSink
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


# ---- a started utterance never blocks the listener's queue ------------------------------------

CHUNK_24K = 4800  # Palabra's 200 ms speech chunk
CHUNK_FRAMES_8K = 10  # the same 200 ms as 20 ms frames at 8 kHz


# An utterance's last frame: its chunks' frames, plus the resampler's 3 ms filter tail that its
# end flushes into one more frame.
def last_frame(chunks: int) -> int:
    return chunks * CHUNK_FRAMES_8K


def speech(uid: str, level: int, *, last: bool, part: int = 0) -> SpeechChunk:
    return SpeechChunk(uid, "es", np.full(CHUNK_24K, level, np.int16), last, 0.0, part)


def play(task: Translator, count: int) -> list[MixedFrame]:
    """``count`` frames of what the listener hears (the output task's side of the mixer)."""
    return [task._listener.mixer.next_frame() for _ in range(count)]


def timeline(out: list[MixedFrame]) -> list[tuple[int, str, str]]:
    """(frame index, "start"/"end", utterance id) in play order (no utterance here is short
    enough to start and end in one frame, so a frame's ends come before its starts)."""
    marks: list[tuple[int, str, str]] = []
    for i, frame in enumerate(out):
        marks += [(i, "end", uid) for uid in frame.finished]
        marks += [(i, "start", uid) for uid in frame.started]
    return marks


async def running(task: Translator, links: FakeLinks) -> FakeLink:
    await task.ready.wait()
    return links.opened[DIRECTION]


async def deliver(link: FakeLink, *events: PalabraEvent) -> None:
    for event in events:
        link._send.send_nowait(event)
    await trio.testing.wait_all_tasks_blocked()


async def test_a_reconnect_after_three_of_six_chunks_ends_that_utterance(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The link reconnects after 3 of u1's 6 chunks: u1 plays what it got and ends at once
    (no second-long wait), the original comes back, and the next utterance plays whole."""
    task, links, _, _ = translator()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task.run, SETTINGS)
            link = await running(task, links)
            await deliver(link, *(speech("u1", 3000, last=False) for _ in range(3)))
            await deliver(link, ConnectionLost("connection closed (1011 internal error)"))
            out = play(task, last_frame(3) + 2)
            assert timeline(out)[-1] == (last_frame(3), "end", "u1")
            assert not out[-1].ducked  # the original is back at its level
            chunks = [speech("u2", 3000, last=i == 5) for i in range(6)]
            await deliver(link, *chunks)
            heard = play(task, last_frame(6) + 1)
            nursery.cancel_scope.cancel()
    assert timeline(heard) == [(0, "start", "u2"), (last_frame(6), "end", "u2")]
    assert task.cut == 1
    assert task._listener.mixer.stalled_utterances == 0
    (cut,) = [e for e in logs if e["event"] == "translation_cut"]
    assert cut["utterance_id"] == "u1" and "1011" in cut["reason"]


async def test_the_next_utterance_ends_one_whose_last_chunk_never_came(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No word from the link at all (an older link, a reconnect it could not announce): the
    next utterance's first chunk ends the unfinished one, and both play in order."""
    task, links, _, _ = translator()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task.run, SETTINGS)
        link = await running(task, links)
        await deliver(link, *(speech("u1", 3000, last=False) for _ in range(3)))
        await deliver(link, *(speech("u2", 3000, last=i == 1) for i in range(2)))
        out = play(task, last_frame(5) + 2)
        nursery.cancel_scope.cancel()
    assert [(kind, uid) for _, kind, uid in timeline(out)] == [
        ("start", "u1"),
        ("end", "u1"),
        ("start", "u2"),
        ("end", "u2"),
    ]
    assert timeline(out)[-1][0] == last_frame(5)  # back to back, no stall between
    assert not out[-1].ducked


async def test_a_lost_chunk_ends_its_utterance(autojump_clock: trio.testing.MockClock) -> None:
    task, links, _, _ = translator()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task.run, SETTINGS)
        link = await running(task, links)
        await deliver(link, speech("u1", 3000, last=False))
        await deliver(link, SpeechLost("u1", 0, "the consumer fell behind"))
        out = play(task, last_frame(1) + 1)
        nursery.cancel_scope.cancel()
    assert timeline(out) == [(0, "start", "u1"), (last_frame(1), "end", "u1")]
    assert task.cut == 1


# ---- several translation parts of one transcription ---------------------------------------------


@pytest.mark.parametrize("every_part_flagged", [True, False])
async def test_the_parts_of_a_translation_play_in_order_once_each(
    autojump_clock: trio.testing.MockClock, every_part_flagged: bool
) -> None:
    """Parts 0, 1 and 2 of one transcription, each its own speech. Whether each part's last
    chunk is flagged or only the final one's, every chunk is heard once, in part order, with
    no gap between parts; a late chunk of an earlier part is dropped, not replayed."""
    task, links, _, _ = translator()
    levels = {0: 1000, 1: 2000, 2: 3000}
    sizes = {0: 3, 1: 2, 2: 4}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task.run, SETTINGS)
        link = await running(task, links)
        for part, size in sizes.items():
            flagged = every_part_flagged or part == 2
            await deliver(
                link,
                *(
                    speech("t", levels[part], last=flagged and i == size - 1, part=part)
                    for i in range(size)
                ),
            )
        await deliver(link, speech("t", 9999, last=True, part=1))  # late: part 2 began
        total = sum(sizes.values()) * CHUNK_FRAMES_8K
        out = play(task, total + 5)
        nursery.cancel_scope.cancel()
    assert [(kind, uid) for _, kind, uid in timeline(out)] == [
        ("start", "t"),
        ("end", "t"),
        ("start", "t#1"),
        ("end", "t#1"),
        ("start", "t#2"),
        ("end", "t#2"),
    ]
    heard = np.concatenate([f.pcm for f in out])
    # Each part's level for exactly its length (the filter's edges aside), in order.
    runs = [
        (level, int(np.sum(np.abs(heard.astype(int) - level) < 50))) for level in levels.values()
    ]
    for (_, count), size in zip(runs, sizes.values(), strict=True):
        assert size * 1600 - 40 <= count <= size * 1600
    first_of = [int(np.argmax(np.abs(heard.astype(int) - lv) < 50)) for lv in levels.values()]
    assert first_of == sorted(first_of)
    assert not (np.abs(heard.astype(int) - 9999) < 500).any()
    assert task._parts.late_chunks == 1
    assert task.cut == 0  # a part followed by the next is whole, flagged or not


async def test_a_translations_parts_make_one_text(autojump_clock: trio.testing.MockClock) -> None:
    task, links, sink, broadcaster = translator()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task.run, SETTINGS)
        nursery.start_soon(broadcaster.run)
        link = await running(task, links)
        await deliver(
            link,
            Transcript("final", "t", "Hello, how are you today?", "en", 0.0),
            Transcript("translation", "t", "Hola,", "es", 0.0, 0),
            Transcript("translation_partial", "t", "¿cómo", "es", 0.0, 1),
            Transcript("translation", "t", "¿cómo estás hoy?", "es", 0.0, 1),
        )
        nursery.cancel_scope.cancel()
    assert [(e.kind, e.text) for e in sink.events] == [
        ("final", "Hello, how are you today?"),
        ("translation", "Hola,"),
        ("translation_partial", "Hola, ¿cómo"),
        ("translation", "Hola, ¿cómo estás hoy?"),
    ]
    assert {e.utterance_id for e in sink.events} == {"t"}


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


async def test_speech_fed_in_batches_reaches_palabra_without_silence_in_the_middle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The link sends a chunk of silence when nothing was fed for a whole chunk; the batches
    the duplex task feeds are short enough that continuous speech never looks like that."""
    from tests.palabra.fake_server import FakePalabra
    from tests.palabra.helpers import make_config as palabra_config
    from tests.palabra.helpers import open_link

    assert feed_batch_samples(320) * 2 <= 8000 * 320 // 1000  # at most half a chunk
    fake = FakePalabra()
    config = palabra_config(fake)
    listener = output(Role.OPERATOR)
    opener = partial(_open, fake, config, open_link)
    task = Translator(
        DIRECTION,
        "voice",
        open_link=opener,
        listener=listener,
        broadcaster=CallBroadcaster(FakeSink()),
        call_id="c1",
        batch_samples=feed_batch_samples(config.palabra.chunk_ms),
    )
    async with fake.running(), trio.open_nursery() as nursery:
        await nursery.start(task.run, SETTINGS)
        await trio.sleep(1.0)  # silence keepalive while nobody speaks
        conn = fake.connections[0]
        zeros_before = conn.audio_samples - conn.nonzero_samples
        start = trio.current_time()
        for i in range(200):  # 4 s of speech in 20 ms frames, on Twilio's schedule
            await trio.sleep_until(start + i * 0.02)
            task.feed(tone())
        await trio.sleep(0.3)
        zeros_during = conn.audio_samples - conn.nonzero_samples - zeros_before
        assert conn.nonzero_samples >= 3 * 24000  # the speech went out...
        assert zeros_during < 480  # ...with no silent chunk inside it (only the filter's ramp)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _open(
    fake: Any, config: Any, opener: Any, direction: Direction, settings: TaskSettings
) -> AsyncIterator[Any]:
    async with opener(fake, config, direction, settings=settings) as link:
        yield link
