"""A whole call in one nursery, on the mock clock: lifecycle, bridge, and every way it ends."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
import structlog
import structlog.testing
import trio
import trio.testing

from callbridge.calls.session import CLEANUP_TIMEOUT_S
from callbridge.errors import TwilioError
from callbridge.roles import Direction
from callbridge.sim.analysis import tone_power_db
from tests.calls.harness import CALLER_SID, harness


class TestHappyPath:
    async def test_bridged_call_translates_both_ways_and_ends_on_caller_hangup(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            async with trio.open_nursery() as talk:
                talk.start_soon(caller.talk, 2.0)
                talk.start_soon(operator.talk, 2.0)
                await trio.sleep(0.5)
                h.links.opened[Direction.CALLER_TO_OPERATOR].speak("u1", 1300, 1.0, "es")
                h.links.opened[Direction.OPERATOR_TO_CALLER].speak("u2", 2000, 1.0, "en")
            await trio.sleep(0.5)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            op_sid = session.record.operator_sid
            assert ("hangup", op_sid) in h.control.actions
            assert ("hangup", CALLER_SID) not in h.control.actions
            h.assert_nothing_left(caller, operator)
            # Each side hears the other's original and the other's translation, never their own.
            op_heard, caller_heard = operator.heard_pcm(), caller.heard_pcm()
            assert tone_power_db(op_heard, 1300) > tone_power_db(op_heard, 2000) + 30
            assert tone_power_db(op_heard, 500) > tone_power_db(op_heard, 800) + 30
            assert tone_power_db(caller_heard, 2000) > tone_power_db(caller_heard, 1300) + 30
            assert tone_power_db(caller_heard, 800) > tone_power_db(caller_heard, 500) + 30
            # Both translators got the speakers' audio at 24 kHz.
            assert h.links.opened[Direction.CALLER_TO_OPERATOR].fed_samples >= 24000 * 1.9
            assert h.links.opened[Direction.OPERATOR_TO_CALLER].fed_samples >= 24000 * 1.9
            # Marks tell when each translation finished playing, and reach the transcript.
            assert [m for m in operator.marks if m.startswith("u:")] == ["u:u1"]
            assert [m for m in caller.marks if m.startswith("u:")] == ["u:u2"]
            played = {e.utterance_id for e in h.sink.events if e.kind == "played"}
            assert played == {"u1", "u2"}
            assert session.record.answered_at is not None

    async def test_output_is_continuous_without_gaps(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            before = len(operator.heard)
            start = trio.current_time()
            await caller.talk(
                3.0
            )  # the operator is silent: Twilio still sends their (silent) frames
            elapsed = trio.current_time() - start
            frames = len(operator.heard) - before
            assert abs(frames - elapsed / 0.02) <= 2
            assert float(np.max(np.diff(operator.heard_at[before:]))) <= 0.021  # no gap, no burst
            await operator.stop()
            assert await h.ended(session) == "operator_hangup"
            assert ("hangup", CALLER_SID) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_caller_hears_hold_audio_while_operator_rings(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller = await h.caller_call()
            await trio.sleep(2.0)
            held = caller.heard_pcm()
            assert len(held) >= 8000 * 1.9  # 20 ms frames, continuously
            assert np.abs(held).max() > 0  # not silence
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            sid = next(a for a in h.control.actions if a[0] == "create")[2]
            assert ("cancel", sid) in h.control.actions  # the ringing operator is cancelled
            h.assert_nothing_left(caller)


class TestGreeting:
    async def test_caller_hanging_up_during_the_greeting_is_noticed_and_the_operator_cancelled(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session = await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1555")
            assert session is not None
            sid = await h.dialed()
            await trio.sleep(3.0)
            assert h.supervisor.find(session.record.id) is not None  # still greeting: fine
            h.control.statuses[CALLER_SID] = "completed"  # hung up before the stream came
            start = trio.current_time()
            assert await h.ended(session) == "caller_hangup"
            assert trio.current_time() - start <= 2.5
            assert ("cancel", sid) in h.control.actions
            assert sorted(h.pool.idle) == sorted(h.config.operators.numbers)


class TestCleanup:
    async def test_a_twilio_that_never_answers_cannot_keep_the_calls_resources(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            h.control.stalled = True
            await operator.stop()
            start = trio.current_time()
            assert await h.ended(session) == "operator_hangup"
            assert trio.current_time() - start == pytest.approx(CLEANUP_TIMEOUT_S, abs=0.5)
            assert ("hangup", CALLER_SID) in h.control.actions  # tried, timed out
            # Sockets closed, the operator's number free again, the hub told: all the same.
            assert session.record.status == "ended"
            assert h.sink.records[-1]["status"] == "ended"
            h.assert_nothing_left(caller, operator)


class TestFailures:
    async def test_translator_failure_mid_call_ends_call_cleanly(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            h.links.opened[Direction.OPERATOR_TO_CALLER].failure.set()
            assert await h.ended(session) == "translation_failed"
            assert any(a[0] == "twiml" and a[1] == CALLER_SID for a in h.control.actions)
            assert ("hangup", session.record.operator_sid) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_a_provider_failure_ends_the_call_without_a_traceback(
        self, autojump_clock: Any
    ) -> None:
        """Palabra's failure was logged where it happened: ``call_ended`` names it at info level,
        with no traceback (a traceback at error level is kept for our own bugs)."""
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            with structlog.testing.capture_logs() as logs:
                h.links.opened[Direction.OPERATOR_TO_CALLER].failure.set()
                assert await h.ended(session) == "translation_failed"
            (ended,) = [r for r in logs if r["event"] == "call_ended"]
            assert ended["log_level"] == "info" and "exc_info" not in ended
            assert ended["failure"].startswith("PalabraUnavailable(")
            h.assert_nothing_left(caller, operator)

    async def test_translator_that_cannot_open_ends_call(self, autojump_clock: Any) -> None:
        async with harness(fail_open=True) as h:
            session, caller = await h.caller_call()
            assert await h.ended(session) == "translation_failed"
            h.assert_nothing_left(caller)

    async def test_operator_socket_ending_without_stop_is_a_lost_leg(
        self, autojump_clock: Any
    ) -> None:
        """Twilio says ``stop`` before it closes: without it the stream broke, and both people
        may still be on the line, so the caller hears the apology and the operator is hung up."""
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator.socket_in.close()
            assert await h.ended(session) == "media_lost"
            assert "twiml" in [a[0] for a in h.control.actions if a[1] == CALLER_SID]
            assert ("hangup", operator.call_sid) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_a_failure_is_logged_once_with_what_went_wrong(self, autojump_clock: Any) -> None:
        """``call_ended`` gives the reason; ``call_failed`` (once, a warning) says what broke
        and where, for the reasons the caller hears the apology for."""
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            with structlog.testing.capture_logs(
                processors=[structlog.contextvars.merge_contextvars]
            ) as logs:
                operator.socket_in.close()
                assert await h.ended(session) == "media_lost"
            (failed,) = [r for r in logs if r["event"] == "call_failed"]
            assert failed["log_level"] == "warning" and failed["reason"] == "media_lost"
            assert failed["detail"].startswith("operator: ") and "closed" in failed["detail"]
            assert failed["call_id"] == session.record.id
            h.assert_nothing_left(caller, operator)

    async def test_a_hang_up_is_no_failure(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            with structlog.testing.capture_logs() as logs:
                await caller.stop()
                assert await h.ended(session) == "caller_hangup"
            assert not [r for r in logs if r["event"] == "call_failed"]
            h.assert_nothing_left(caller, operator)

    async def test_a_legs_log_lines_name_the_call(self, autojump_clock: Any) -> None:
        """The receive task is started by whoever attached the leg (the media socket's handler,
        which knows no call), yet what it logs carries the call's id."""
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            with structlog.testing.capture_logs(
                processors=[structlog.contextvars.merge_contextvars]
            ) as logs:
                await caller.send(b"\x00\x01")
                with trio.fail_after(1):
                    while not any(r["event"] == "media_invalid" for r in logs):
                        await trio.sleep(0.02)
            (invalid,) = [r for r in logs if r["event"] == "media_invalid"]
            assert invalid["call_id"] == session.record.id and invalid["role"] == "caller"
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            h.assert_nothing_left(caller, operator)

    async def test_leg_sending_nothing_valid_times_out(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            h.control.statuses[CALLER_SID] = "in-progress"
            h.control.fetch_error = TwilioError("Twilio fetch failed", status=503)  # no word
            caller.muted = True
            with contextlib.suppress(trio.BrokenResourceError):
                for _ in range(200):  # garbage keeps arriving, but nothing valid
                    await caller.send("not json")
                    await caller.send(b"\x00\x01")
                    await trio.sleep(0.02)
            assert await h.ended(session) == "leg_timeout"
            assert ("hangup", session.record.operator_sid) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_second_leg_never_arriving_ends_the_call(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller = await h.caller_call()
            sid = await h.dialed()
            assert session.operator_answered(sid)
            start = trio.current_time()
            assert await h.ended(session) == "media_timeout"
            assert trio.current_time() - start == pytest.approx(
                h.config.media.legs_connect_timeout_s, abs=0.5
            )
            assert ("hangup", sid) in h.control.actions
            h.assert_nothing_left(caller)

    async def test_operator_completed_status_ends_call(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            sid = session.record.operator_sid
            assert sid is not None
            h.status(session, sid, "completed", 5)
            h.status(session, sid, "completed", 5)
            assert await h.ended(session) == "operator_hangup"
            assert ("hangup", sid) not in h.control.actions  # already gone
            h.assert_nothing_left(caller, operator)

    async def test_operator_hanging_up_before_the_bridge_ends_the_call_at_once(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller = await h.caller_call()
            sid = await h.dialed()
            assert session.operator_answered(sid)
            await trio.sleep(1.0)  # answered, but their stream never comes
            start = trio.current_time()
            h.status(session, sid, "completed", 4)
            assert await h.ended(session) == "operator_hangup"
            assert trio.current_time() - start < 1.0  # not after the media timeout
            h.assert_nothing_left(caller)

    async def test_translators_never_ready_after_answer_fail_the_call(
        self, autojump_clock: Any
    ) -> None:
        async with harness(ready_delay=1000.0) as h:
            session, caller = await h.caller_call()
            sid = await h.dialed()
            assert session.operator_answered(sid)
            assert await h.ended(session) == "translation_failed"
            h.assert_nothing_left(caller)
            assert any(a[0] == "twiml" and a[1] == CALLER_SID for a in h.control.actions)  # apology
            assert ("hangup", sid) in h.control.actions
