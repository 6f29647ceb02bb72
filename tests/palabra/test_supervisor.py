"""The connection supervisor (``supervisor.py``): reconnects, the budget, the goodbye."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
from trio_websocket import ConnectionClosed

from callbridge.config import MediaConfig
from callbridge.errors import PalabraUnavailable
from callbridge.palabra import ConnectionLost, SpeechChunk
from tests.palabra.fake_server import FakeConnection, FakePalabra
from tests.palabra.helpers import (
    GUARD_S,
    drain,
    feed_realtime,
    make_config,
    open_link,
    received_nonzero_s,
    speech,
    too_fast,
)


class TestReconnect:
    async def test_mid_call_drop_reconnects_and_resumes(self, autojump_clock: Any) -> None:
        """The server drops after 5 s of audio: a new connection (new hash, set_task again)
        carries on; speech fed during the outage is buffered and sent; nothing is lost."""
        fake = FakePalabra(drop_after_audio_s={0: 5.0})
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await feed_realtime(link, 20.0)
        first, second = fake.connections
        assert first.closed_by_server == 1011
        assert second.tasks == first.tasks
        assert second.random_hash != first.random_hash
        assert link.stats.reconnects == 1
        assert received_nonzero_s(fake) == pytest.approx(20.0)
        assert too_fast(fake) == 0
        assert second.end_task

    async def test_a_drop_mid_speech_is_announced_before_the_reconnect(
        self, autojump_clock: Any
    ) -> None:
        """Speech was flowing on the dropped connection: the consumer gets ConnectionLost after
        that connection's last event and before anything from the next; the goodbye's own close
        announces nothing."""
        fake = FakePalabra(drop_after_audio_s={0: 2.0})

        async def speak_when_ready(conn: FakeConnection) -> None:
            await conn.send_speech(f"t{conn.index}", "es", np.zeros(4800, np.int16), last=False)

        fake.on_ready = speak_when_ready
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await feed_realtime(link, 5.0)
        events = await drain(link)
        assert [type(e).__name__ for e in events] == [
            "SpeechChunk",
            "ConnectionLost",
            "SpeechChunk",
        ]
        first, lost, second = events
        assert isinstance(first, SpeechChunk) and first.transcription_id == "t0"
        assert isinstance(lost, ConnectionLost) and "1011" in lost.reason
        assert isinstance(second, SpeechChunk) and second.transcription_id == "t1"

    async def test_drop_past_the_budget_fails_typed(self, autojump_clock: Any) -> None:
        """Every reconnect is refused: after reconnect_attempts the link raises
        PalabraUnavailable out of the async with, cancelling the body."""
        fake = FakePalabra(drop_after_audio_s={0: 2.0}, refuse_from=1)
        body_cancelled = False
        with trio.fail_after(GUARD_S):
            async with fake.running():
                # The body's cancellation is part of what is tested.
                with pytest.raises(PalabraUnavailable, match="gave up after 3 reconnects"):  # noqa: PT012
                    async with open_link(fake, make_config(fake, legacy=True)) as link:
                        try:
                            await trio.sleep_forever()
                        except trio.Cancelled:
                            body_cancelled = True
                            raise
        assert body_cancelled
        assert fake.rejected_upgrades == [503, 503, 503]
        assert link.stats.reconnects == 3
        assert sorted(fake.sessions_deleted) == sorted(fake.sessions_created)
        assert len(fake.sessions_created) == 4

    async def test_reconnect_budget_seconds(self, autojump_clock: Any) -> None:
        """A server that never gets ready again: the seconds budget ends it."""
        fake = FakePalabra(drop_after_audio_s={0: 1.0}, ready_delay_s=1.0)

        async def slow_after_first(conn: FakeConnection) -> None:
            fake.ready_delay_s = 1000.0

        fake.on_ready = slow_after_first
        config = make_config(
            fake, reconnect_attempts=10, reconnect_budget_s=8.0, ready_timeout_s=60.0
        )
        with trio.fail_after(GUARD_S):
            async with fake.running():
                start = trio.current_time()
                with pytest.raises(PalabraUnavailable, match="budget"):
                    async with open_link(fake, config):
                        await trio.sleep_forever()
                assert trio.current_time() - start < 1.0 + 2.0 + 8.0 + 1.0
        assert len(fake.connections) == 2


async def transcribe_every_second(conn: FakeConnection) -> None:
    """What real Palabra does with speech: a partial transcript now and then."""
    try:
        for n in range(10_000):
            await trio.sleep(1.0)
            await conn.send_transcript("partial_transcription", f"t{n}", "hello", "en")
    except ConnectionClosed:
        return


class TestOutputStall:
    async def test_speech_unanswered_replaces_the_connection_without_spending_the_budget(
        self, autojump_clock: Any
    ) -> None:
        """Socket open, task running, pongs fine, but no transcript or speech comes back: after
        output_stall_s of speech the connection is replaced; stalls spend no reconnect attempt
        (reconnect_attempts=0 would otherwise fail the link), and each stall in a row doubles
        the allowance (3 s, then 6 s of speech)."""
        fake = FakePalabra()
        config = make_config(fake, output_stall_s=3.0, reconnect_attempts=0)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, config) as link:
                await feed_realtime(link, 14.0)
        first, second, third = fake.connections
        assert 3.0 <= first.audio_s <= 3.0 + 1.4  # checked once a second, sent in 320 ms chunks
        assert 6.0 <= second.audio_s <= 6.0 + 1.4
        assert third.end_task and third.closed_by_server is None
        assert link.stats.output_stalls == 2 and link.stats.reconnects == 2
        assert received_nonzero_s(fake) == pytest.approx(14.0)  # nothing lost on the way
        events = await drain(link)
        assert [type(e).__name__ for e in events] == ["ConnectionLost", "ConnectionLost"]

    async def test_a_connection_that_answers_is_kept(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        fake.on_ready = transcribe_every_second
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, output_stall_s=3.0)) as link,
            ):
                await feed_realtime(link, 20.0)
        assert len(fake.connections) == 1
        assert link.stats.output_stalls == 0

    async def test_quiet_audio_is_not_unanswered_speech(self, autojump_clock: Any) -> None:
        """Line noise (here -56 dBFS) is not speech Palabra owes an answer to."""
        fake = FakePalabra()
        config = make_config(fake, output_stall_s=3.0)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, config) as link:
                for _ in range(1000):
                    assert link.feed(speech(0.02, value=50))
                    await trio.sleep(0.02)
        assert len(fake.connections) == 1
        assert link.stats.output_stalls == 0


class TestEnding:
    @pytest.mark.parametrize("eos_name", ["end_of_stream", "eos"])
    async def test_end_task_then_end_of_stream(self, autojump_clock: Any, eos_name: str) -> None:
        fake = FakePalabra(eos_name=eos_name)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await feed_realtime(link, 1.0)
        assert fake.connections[0].received[-1] == "end_task"
        assert link.stats.eos_received == 1

    async def test_end_is_bounded_when_no_end_of_stream_comes(self, autojump_clock: Any) -> None:
        fake = FakePalabra(send_eos=False)
        with trio.fail_after(GUARD_S):
            async with fake.running():
                async with open_link(fake, make_config(fake, end_timeout_s=3.0)) as link:
                    start = trio.current_time()
                waited = trio.current_time() - start
        assert fake.connections[0].end_task
        assert link.stats.eos_received == 0
        assert 3.0 <= waited <= 3.0 + 0.33

    async def test_passthrough_direction_is_refused(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        config = make_config(fake, media=MediaConfig(caller_to_operator="passthrough"))
        async with fake.running():
            with pytest.raises(ValueError, match="passthrough"):
                async with open_link(fake, config):
                    pass
