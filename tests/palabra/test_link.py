"""The trio link against the in-process fake Palabra, on the mock clock."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from callbridge.config import DirectionOverrides, MediaConfig
from callbridge.errors import PalabraAuthError, PalabraTaskRejected, PalabraUnavailable
from callbridge.palabra import (
    LanguageDetected,
    PalabraEvent,
    ServerError,
    ServerWarning,
    SpeechChunk,
    Transcript,
)
from callbridge.roles import Direction
from tests.palabra.fake_server import SAMPLE_RATE, FakeConnection, FakePalabra
from tests.palabra.helpers import make_config, open_link

GUARD_S = 600  # mock-clock seconds; a hang fails the test instead of freezing it
FRAME = 480  # 20 ms at 24 kHz, what the Twilio side feeds


def speech(seconds: float, value: int = 1000) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.full(round(seconds * SAMPLE_RATE), value, dtype=np.int16)


async def feed_realtime(link: Any, seconds: float, frame: int = FRAME) -> None:
    """Feed non-silent audio in `frame`-sized pieces at real-time pace."""
    for _ in range(round(seconds * SAMPLE_RATE / frame)):
        assert link.feed(speech(frame / SAMPLE_RATE))
        await trio.sleep(frame / SAMPLE_RATE)


def received_nonzero_s(fake: FakePalabra) -> float:
    return sum(c.nonzero_samples for c in fake.connections) / SAMPLE_RATE


def too_fast(fake: FakePalabra) -> int:
    return sum(c.warnings_sent.count("AUDIO_STREAM_TOO_FAST") for c in fake.connections)


async def drain(link: Any) -> list[PalabraEvent]:
    events: list[PalabraEvent] = []
    while True:
        try:
            events.append(link.events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return events


class TestAuthModes:
    async def test_api_key_mode_random_path_and_token(self, autojump_clock: Any) -> None:
        """API key: fresh random path segment per connection, key in ?token=, no REST."""
        fake = FakePalabra()
        config = make_config(fake)
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, config),
                open_link(fake, config, Direction.OPERATOR_TO_CALLER),
            ):
                pass
        first, second = fake.connections
        assert first.token == second.token == fake.api_key
        assert len(first.random_hash) == 32
        assert first.random_hash != second.random_hash
        assert fake.rest_requests == []

    async def test_legacy_mode_session_created_used_and_deleted(self, autojump_clock: Any) -> None:
        """Client id/secret: POST session, connect to ws_url?token=publisher, DELETE on exit."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake, legacy=True)):
                assert fake.sessions_deleted == []
        assert fake.sessions_created == ["session-0"]
        assert fake.sessions_deleted == ["session-0"]
        assert fake.connections[0].token == "publisher-0"
        assert fake.connections[0].end_task

    async def test_legacy_session_deleted_when_the_task_is_rejected(
        self, autojump_clock: Any
    ) -> None:
        fake = FakePalabra(min_silence_threshold=0.8)
        with trio.fail_after(GUARD_S):
            async with fake.running():
                with pytest.raises(PalabraTaskRejected):
                    async with open_link(fake, make_config(fake, legacy=True)):
                        pytest.fail("must not become ready")
        assert fake.sessions_deleted == fake.sessions_created == ["session-0"]

    async def test_legacy_session_deleted_when_the_caller_is_cancelled(
        self, autojump_clock: Any
    ) -> None:
        """A cancelled call still says goodbye (end_task) and deletes the session."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running():
                with trio.move_on_after(3):
                    async with open_link(fake, make_config(fake, legacy=True)):
                        await trio.sleep_forever()
        assert fake.sessions_deleted == ["session-0"]
        assert fake.connections[0].end_task

    async def test_legacy_bad_credentials_is_auth_error(self, autojump_clock: Any) -> None:
        fake = FakePalabra(client_secret="other")
        config = make_config(FakePalabra(), legacy=True)
        with trio.fail_after(GUARD_S):
            async with fake.running():
                with pytest.raises(PalabraAuthError) as caught:
                    async with open_link(fake, config):
                        pass
        assert caught.value.status == 401
        assert len(fake.rest_requests) == 1  # never retried

    async def test_wrong_api_key_refused_at_upgrade_is_auth_error(
        self, autojump_clock: Any
    ) -> None:
        fake = FakePalabra(api_key="the-real-key")
        config = make_config(FakePalabra(api_key="wrong"))
        with trio.fail_after(GUARD_S):
            async with fake.running():
                with pytest.raises(PalabraAuthError, match="403"):
                    async with open_link(fake, config):
                        pass
        assert fake.rejected_upgrades == [403]


class TestReadiness:
    async def test_ready_by_acknowledgement_without_polling(self, autojump_clock: Any) -> None:
        fake = FakePalabra(acknowledge=True, ready_delay_s=0.3)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                assert fake.connections[0].ready
                assert link.stats.ready_polls == 0
        assert fake.connections[0].get_task_count == 0

    async def test_ready_by_polling_not_found_then_running(self, autojump_clock: Any) -> None:
        """An older server never acknowledges: get_task answers NOT_FOUND, then current_task."""
        fake = FakePalabra(acknowledge=False, ready_delay_s=5.0)
        with trio.fail_after(GUARD_S):
            async with fake.running():
                start = trio.current_time()
                async with open_link(fake, make_config(fake)) as link:
                    waited = trio.current_time() - start
                    conn = fake.connections[0]
                    assert conn.errors_sent.count("NOT_FOUND") == 2  # polls at 2.1 s and 4.2 s
                    assert link.stats.ready_polls == 3
                    assert 6.0 < waited < 6.5  # the third poll, at 6.3 s, saw it running
                    assert await drain(link) == []  # NOT_FOUND before readiness is not an event

    async def test_rejected_task_is_typed_error_with_server_code_and_text(
        self, autojump_clock: Any
    ) -> None:
        fake = FakePalabra(min_silence_threshold=0.8)
        with trio.fail_after(GUARD_S):
            async with fake.running():
                with pytest.raises(PalabraTaskRejected) as caught:
                    async with open_link(fake, make_config(fake)):
                        pytest.fail("must not become ready")
        assert caught.value.code == "VALIDATION_ERROR"
        assert "greater than or equal to 0.8" in caught.value.desc
        assert len(fake.connections) == 1  # a rejection is never retried

    async def test_double_encoded_data_everywhere(self, autojump_clock: Any) -> None:
        """data as a JSON string (acknowledgement included) is decoded like an object."""
        fake = FakePalabra(double_encode=True)
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_transcript("validated_transcription", "t1", "hello", "en")
                event = await link.events.receive()
        assert isinstance(event, Transcript)
        assert event == Transcript("final", "t1", "hello", "en", event.received_at)


class TestEvents:
    async def test_transcripts_speech_warnings_errors(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_transcript("partial_transcription", "t1", "hel", "en")
                await conn.send_transcript("validated_transcription", "t1", "hello", "en")
                await conn.send_transcript("partial_translated_transcription", "t1", "ho", "es")
                await conn.send_transcript("translated_transcription", "t1", "hola", "es")
                await conn.send_speech("t1", "es", np.arange(4800, dtype=np.int16), last=False)
                await conn.send_speech("t1", "es", np.arange(4800, dtype=np.int16), last=True)
                await conn.send("warning", {"code": "VOICE_NOT_FOUND", "message": "using default"})
                await conn.send("error", {"code": "SOMETHING", "desc": "non-fatal", "param": None})
                events = [await link.events.receive() for _ in range(8)]
        kinds = [(e.kind, e.text, e.language) for e in events[:4] if isinstance(e, Transcript)]
        assert kinds == [
            ("partial", "hel", "en"),
            ("final", "hello", "en"),
            ("translation_partial", "ho", "es"),
            ("translation", "hola", "es"),
        ]
        chunks = [e for e in events if isinstance(e, SpeechChunk)]
        assert [c.last_chunk for c in chunks] == [False, True]
        assert chunks[0].language == "es" and chunks[0].transcription_id == "t1"
        assert np.array_equal(chunks[0].pcm, np.arange(4800, dtype=np.int16))
        assert events[6] == ServerWarning("VOICE_NOT_FOUND", "using default")
        assert events[7] == ServerError("SOMETHING", "non-fatal")

    async def test_noise_is_counted_never_fatal(self, autojump_clock: Any) -> None:
        """No message_type: ignored. Unknown types: counted per type. Bad JSON: an error event
        naming the size; the link carries on."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_raw("{}")
                await conn.send_raw('{"es": {"current_queue_level_ms": 320}}')
                await conn.send("pipeline_timings", {"timings": {}})
                await conn.send("pipeline_timings", {"timings": {}})
                await conn.send("tts_buffer_stats", {})
                await conn.send_raw("{not json")
                await conn.send_transcript("validated_transcription", "t2", "still alive", "en")
                first = await link.events.receive()
                second = await link.events.receive()
        assert first == ServerError("MALFORMED_MESSAGE", "invalid JSON (9 bytes)")
        assert isinstance(second, Transcript) and second.text == "still alive"
        assert link.stats.unknown_types == {"pipeline_timings": 2, "tts_buffer_stats": 1}
        assert link.stats.ignored_frames == 2
        assert link.stats.malformed == 1

    async def test_auto_source_language_travels_with_transcripts(self, autojump_clock: Any) -> None:
        from callbridge.config import LanguagesConfig

        fake = FakePalabra()
        languages = LanguagesConfig(caller="auto", operator="es", caller_detectable=["en", "de"])
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, languages=languages)) as link,
            ):
                transcription = fake.connections[0].tasks[0]["pipeline"]["transcription"]
                assert transcription["source_language"] == "auto"
                assert transcription["detectable_languages"] == ["en", "de"]
                await fake.connections[0].send_transcript(
                    "validated_transcription", "t", "hallo", "de"
                )
                detected = await link.events.receive()
                event = await link.events.receive()
        assert isinstance(event, Transcript) and event.language == "de"
        assert detected == LanguageDetected("de", "t", event.received_at)

    async def test_events_channel_ends_with_the_link(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running():
                async with open_link(fake, make_config(fake)) as link:
                    pass
                with pytest.raises(trio.EndOfChannel):
                    await link.events.receive()

    async def test_stuck_consumer_drops_and_counts(self, autojump_clock: Any) -> None:
        """Nobody reads events: transcripts are dropped at once, speech after waiting; both
        counted; the link stays alive (no reconnect, pings answered)."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                for i in range(300):
                    await conn.send_transcript("partial_transcription", f"t{i}", "x", "en")
                for _ in range(3):
                    await conn.send_speech("t", "es", np.zeros(4800, dtype=np.int16), last=False)
                await trio.sleep(30)
                stats = link.stats
        assert stats.events_dropped == 300 - 256
        assert stats.speech_dropped == 3
        assert stats.reconnects == 0


class TestTaskWeSend:
    async def test_set_task_from_config_and_direction_overrides(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        config = make_config(
            fake,
            voice_id="default_high",
            caller_to_operator=DirectionOverrides(voice_id="v-caller", translate_partials=True),
        )
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, config, Direction.CALLER_TO_OPERATOR),
                open_link(fake, config, Direction.OPERATOR_TO_CALLER),
            ):
                pass
        c2o, o2c = (c.tasks[0] for c in fake.connections)
        assert c2o["pipeline"]["transcription"]["source_language"] == "en"
        assert c2o["pipeline"]["translations"][0]["target_language"] == "es"
        assert c2o["pipeline"]["translations"][0]["speech_generation"] == {"voice_id": "v-caller"}
        assert "partial_translated_transcription" in c2o["pipeline"]["allowed_message_types"]
        assert o2c["pipeline"]["transcription"]["source_language"] == "es"
        assert o2c["pipeline"]["translations"][0]["target_language"] == "en"
        assert o2c["pipeline"]["translations"][0]["speech_generation"] == {
            "voice_id": "default_high"
        }
        assert "partial_translated_transcription" not in o2c["pipeline"]["allowed_message_types"]

    async def test_captions_mode_requests_no_speech(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        config = make_config(fake, media=MediaConfig(caller_to_operator="captions"))
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, config):
                pass
        assert fake.connections[0].tasks[0]["output_stream"] is None


class TestPacing:
    async def test_sixty_seconds_realtime_no_too_fast(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await feed_realtime(link, 60.0)
        conn = fake.connections[0]
        assert too_fast(fake) == 0
        assert conn.max_ahead_s <= 0.320 + 1e-6
        assert received_nonzero_s(fake) == pytest.approx(60.0)
        assert link.stats.feed_drops == 0

    async def test_bursty_and_all_at_once_feeding_stays_paced(self, autojump_clock: Any) -> None:
        """A late feeder (1 s bursts) and 4 s fed at once are sent at real time, not in bursts."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                for _ in range(10):
                    await trio.sleep(1.0)
                    assert link.feed(speech(1.0))
                await trio.sleep(2.0)
                assert link.feed(speech(4.0))
                await trio.sleep(5.0)
        assert too_fast(fake) == 0
        assert received_nonzero_s(fake) == pytest.approx(14.0)

    async def test_audio_fed_right_after_ready_is_not_lost(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                link.feed(speech(0.7))
        assert received_nonzero_s(fake) == pytest.approx(0.7)
        assert fake.connections[0].audio_before_ready == 0

    async def test_idle_keepalive_thirty_seconds_before_audio(self, autojump_clock: Any) -> None:
        """Ringing for 30 s with no audio: real-time silence keeps the task alive."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                await trio.sleep(30.0)
                await feed_realtime(link, 2.0)
        conn = fake.connections[0]
        assert "SERVICE_TIMEOUT" not in conn.errors_sent
        assert conn.closed_by_server is None
        assert len(fake.connections) == 1 and link.stats.reconnects == 0
        assert link.stats.silence_chunks_sent >= 90
        assert received_nonzero_s(fake) == pytest.approx(2.0)

    async def test_feed_buffer_is_bounded(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, input_buffer_ms=1000)) as link,
            ):
                assert link.feed(speech(0.9))
                assert not link.feed(speech(0.2))
                assert link.stats.feed_drops == 1


class TestFakeEnforces:
    """The fake's rules fire for a client that breaks them, so passing tests mean something."""

    async def test_fake_times_out_an_idle_stream(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                fake.connector()(fake.streaming_url() + "?token=test-key") as ws,
            ):
                await ws.send_message('{"message_type":"set_task","data":' + _task_json() + "}")
                await trio.sleep(11)
        assert fake.connections[0].errors_sent == ["SERVICE_TIMEOUT"]
        assert fake.connections[0].closed_by_server == 1008

    async def test_fake_warns_a_client_that_runs_ahead(self, autojump_clock: Any) -> None:
        from callbridge.palabra.protocol import encode_input_audio

        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                fake.connector()(fake.streaming_url() + "?token=test-key") as ws,
            ):
                await ws.send_message('{"message_type":"set_task","data":' + _task_json() + "}")
                await trio.sleep(1)
                for _ in range(3):
                    await ws.send_message(encode_input_audio(speech(0.32)))
                await trio.sleep(0.1)
        assert fake.connections[0].warnings_sent == ["AUDIO_STREAM_TOO_FAST"] * 2


def _task_json() -> str:
    import orjson

    from callbridge.config import Config
    from callbridge.palabra import build_set_task

    return orjson.dumps(build_set_task(Config(), Direction.CALLER_TO_OPERATOR)).decode()


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
