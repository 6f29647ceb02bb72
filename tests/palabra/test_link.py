"""Opening a link (``link.py``): auth modes, readiness, the task we send; on the mock clock
against the in-process fake Palabra."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from callbridge.config import DirectionOverrides, MediaConfig
from callbridge.errors import PalabraAuthError, PalabraTaskRejected
from callbridge.palabra import (
    Transcript,
)
from callbridge.roles import Direction
from tests.palabra.fake_server import FakePalabra
from tests.palabra.helpers import (
    GUARD_S,
    drain,
    make_config,
    open_link,
)


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
