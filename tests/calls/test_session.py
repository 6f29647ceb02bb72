"""A whole call in one nursery, on the mock clock: dial-out, bridge, media, and every way it ends."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import numpy as np
import pytest
import trio
import trio.testing

from callbridge.calls.dialer import UNCERTAIN_CREATE_WAIT_S
from callbridge.calls.operators import OperatorPool
from callbridge.calls.session import CLEANUP_TIMEOUT_S, CallDeps, CallSession
from callbridge.calls.supervisor import CallSupervisor
from callbridge.config import Config, load_config
from callbridge.roles import Direction, Role
from callbridge.sim.analysis import tone_power_db
from callbridge.telephony.status import StatusUpdate
from tests.calls.fakes import FakeControl, FakeLinks, FakePhone, FakeSink, role_freq

OPERATORS = ["+15550000001", "+15550000002", "+15550000003"]
CALLER_SID = "CA" + "c" * 32


def make_config(**env: str) -> Config:
    base = {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_NUMBER": "+15559990000",
        "PALABRA_API_KEY": "key",
        "CALLBRIDGE_OPERATORS_NUMBERS": ",".join(OPERATORS),
        "CALLBRIDGE_SERVER_PUBLIC_URL": "https://bridge.example.com",
        "CALLBRIDGE_MEDIA_LEG_IDLE_TIMEOUT_S": "3",
    }
    return load_config(None, {**base, **env})


@attrs.define
class Harness:
    config: Config
    control: FakeControl
    links: FakeLinks
    sink: FakeSink
    supervisor: CallSupervisor
    nursery: trio.Nursery
    pool: OperatorPool

    def status(self, session: CallSession, sid: str, status: str, seq: int = 0) -> None:
        session.on_status(Role.OPERATOR, StatusUpdate(sid, status, seq, None, None, None))

    async def dialed(self, count: int = 1) -> str:
        """Wait until ``count`` operator calls were created; the last one's sid."""
        while sum(1 for a in self.control.actions if a[0] == "create") < count:
            await trio.sleep(0.01)
        return [a for a in self.control.actions if a[0] == "create"][-1][2]

    async def caller_on_hold(self, session: CallSession) -> FakePhone:
        await trio.testing.wait_all_tasks_blocked()
        leg = session.attach_leg(Role.CALLER)
        assert leg is not None
        phone = FakePhone(leg, CALLER_SID, role_freq(Role.CALLER))
        self.nursery.start_soon(phone.listen)
        await phone.start()
        self.nursery.start_soon(phone.stream)
        return phone

    async def caller_call(self) -> tuple[CallSession, FakePhone]:
        """A call admitted and its caller's stream on hold."""
        session = self.supervisor.admit(caller_sid=CALLER_SID, caller_number="+15551112222")
        assert session is not None
        return session, await self.caller_on_hold(session)

    async def bridged_call(
        self, operator_phase_s: float = 0.0
    ) -> tuple[CallSession, FakePhone, FakePhone]:
        session, caller = await self.caller_call()
        sid = await self.dialed()
        self.status(session, sid, "ringing", 1)
        assert session.operator_answered(sid)
        await trio.testing.wait_all_tasks_blocked()
        leg = session.attach_leg(Role.OPERATOR)
        assert leg is not None
        operator = FakePhone(leg, sid, role_freq(Role.OPERATOR))
        operator.phase_s = operator_phase_s
        self.nursery.start_soon(operator.listen)
        self.nursery.start_soon(operator.echo_marks)
        await operator.start()
        self.nursery.start_soon(operator.stream)
        while session.record.status != "connected":
            await trio.sleep(0.01)
        return session, caller, operator

    async def ended(self, session: CallSession) -> str:
        with trio.fail_after(60):
            while self.supervisor.find(session.record.id) is not None:
                await trio.sleep(0.01)
        assert session.record.end_reason is not None
        return session.record.end_reason

    def assert_nothing_left(self, *phones: FakePhone) -> None:
        assert self.supervisor.active_count == 0
        assert sorted(self.pool.idle) == sorted(self.config.operators.numbers), (
            "operator number leaked"
        )
        assert all(link.closed for link in self.links.opened.values())
        for phone in phones:
            assert phone.received_closed.is_set(), "media socket left open"
        assert self.sink.records[-1]["status"] == "ended"


@asynccontextmanager
async def harness(config: Config | None = None, **links: Any) -> AsyncIterator[Harness]:
    config = config or make_config()
    control, fake_links, sink = FakeControl(), FakeLinks(**links), FakeSink()
    pool = OperatorPool(config.operators.numbers)
    deps = CallDeps(config, control, fake_links, sink, pool)
    supervisor = CallSupervisor(deps)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        yield Harness(config, control, fake_links, sink, supervisor, nursery, pool)
        nursery.cancel_scope.cancel()


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


class TestPlayout:
    async def test_at_the_bridge_hold_audio_is_cleared_and_the_first_frame_waits_for_the_speaker(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            await caller.talk(0.5)
            # The caller heard hold audio, then one clear, then the call's audio.
            first_clear = caller.received.index("clear")
            assert "media" in caller.received[:first_clear]
            assert caller.received.count("clear") == 1
            assert "media" in caller.received[first_clear + 1 :]
            assert "clear" not in operator.received  # joined at the bridge: nothing to clear
            # The first frame after the clear waited for the speaker instead of going out as
            # silence just before their first frame (which would stand in Twilio's buffer).
            for listener in Role:
                assert session.media.outputs[listener].mixer.original_underrun_ms == 0
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_a_standing_frame_is_never_trimmed_out_of_translated_speech(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator.echo_delay_s = 0.015
            await caller.talk(3.0)  # the floor
            operator.echo_delay_s = 0.045  # a frame creeps in and must go...
            start = len(operator.heard)
            h.links.opened[Direction.CALLER_TO_OPERATOR].speak("long", 1300, 4.0, "es")
            await caller.talk(5.0)  # ...while the caller talks over a long translation
            assert session.media.outputs[Role.OPERATOR].probe.trimmed >= 1
            frames = operator.heard[start:]
            times = operator.heard_at[start:]
            translated = [
                i for i, pcm in enumerate(frames) if tone_power_db(pcm.astype(float), 1300) > -40
            ]
            playing = (times[translated[0]], times[translated[-1]])
            assert len(translated) >= 4.0 / 0.02 - 1
            # Frames go out with the caller's, every 20 ms: a trim shows as a 40 ms step.
            trims = [b for a, b in itertools.pairwise(times) if b - a > 0.03]
            assert trims  # the standing frame went...
            assert not [t for t in trims if playing[0] <= t <= playing[1]]  # ...after the speech
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_at_the_bridge_the_other_sides_first_frame_goes_out_as_it_arrives(
        self, autojump_clock: Any
    ) -> None:
        """The caller's output was between two hold frames when the call was bridged; it must
        not wait for its next hold slot to send the operator's first frame (sent late, it would
        be followed too soon by the next, and stand in Twilio's buffer)."""
        # Hold frames go out on 20 ms slots from 0; the translators are ready (so the call is
        # bridged) at 0.503, and the operator's frame at 0.507 comes before the 0.520 slot.
        async with harness(ready_delay=0.503) as h:
            session, caller, operator = await h.bridged_call(operator_phase_s=0.007)
            await trio.sleep(0.1)
            first = caller.received[: caller.received.index("clear")].count("media")
            since_operator = caller.heard_at[first] - operator.streaming_since
            frames = since_operator / 0.02
            assert abs(frames - round(frames)) < 0.01  # at one of the operator's frame times
            # ...and the first of them after the bridge, not one a frame later.
            assert caller.heard_at[first] == pytest.approx(0.507, abs=0.001)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_the_original_never_waits_on_our_side_after_the_speaker_stalled(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            await trio.sleep(0.5)
            # The caller's leg stalls for 300 ms and then delivers those frames at once: the
            # frames their slots went out without are late, and must not queue up on our side.
            caller.held_until = trio.current_time() + 0.3
            await trio.sleep(1.0)
            await caller.talk(0.5)
            loud = [i for i, pcm in enumerate(operator.heard) if np.abs(pcm).max() > 1000]
            assert loud
            assert operator.heard_at[loud[0]] - caller.spoke_at[0] < 0.001
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_a_backlog_in_twilios_buffer_is_cleared_and_cut_translations_not_marked_played(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator.echo_delay_s = 0.015
            await caller.talk(3.0)  # probes establish the floor
            operator.backlog_s = 1.5  # the operator's Twilio buffer now holds 1.5 s
            await caller.talk(1.5)
            # Ends playing into the backlog; the clear comes before Twilio would have played it.
            h.links.opened[Direction.CALLER_TO_OPERATOR].speak("late", 1300, 0.4, "es")
            await caller.talk(3.0)
            assert operator.clears == 1
            await caller.talk(3.0)
            assert operator.clears == 1  # once the backlog is gone, nothing more to clear
            assert "u:late" in operator.marks
            played = [e.utterance_id for e in h.sink.events if e.kind == "played"]
            assert "late" not in played  # its end was thrown away by the clear, never heard
            await caller.stop()
            ended = await h.ended(session)
            assert ended == "caller_hangup"


class TestGreeting:
    async def test_caller_hanging_up_during_the_greeting_is_noticed_and_the_operator_cancelled(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session = h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1555")
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


class TestUncertainCreate:
    """A create that failed in a way that may have placed the call anyway (500/502/504, no reply)
    is not simply repeated: the call's status callback says whether it exists."""

    async def test_a_call_placed_despite_a_500_is_found_by_its_callback_not_dialled_twice(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_errors = [(500, True)]
            session, caller = await h.caller_call()
            sid = await h.dialed()
            h.status(session, sid, "initiated", 0)  # Twilio announces the call it did place
            h.status(session, sid, "ringing", 1)
            await trio.sleep(UNCERTAIN_CREATE_WAIT_S * 2)
            assert h.control.kinds().count("create") == 1
            assert session.operator_answered(sid)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            assert ("hangup", sid) in h.control.actions
            h.assert_nothing_left(caller)

    async def test_without_a_callback_the_same_operator_is_dialled_again(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_errors = [(None, False)]  # the request got no answer
            session, caller = await h.caller_call()
            start = trio.current_time()
            sid = await h.dialed()
            assert trio.current_time() - start >= UNCERTAIN_CREATE_WAIT_S
            assert h.control.actions[0] == ("create_refused", OPERATORS[0])
            assert [a[1] for a in h.control.actions if a[0] == "create"] == [OPERATORS[0]]
            assert session.operator_answered(sid)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            h.assert_nothing_left(caller)

    async def test_a_call_found_only_after_dialling_again_is_cancelled(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_errors = [(502, True)]
            session, caller = await h.caller_call()
            first = await h.dialed()
            second = await h.dialed(2)  # no callback in time: dialled again
            h.status(session, first, "ringing", 1)  # the first one's callback, late
            await trio.testing.wait_all_tasks_blocked()
            assert ("cancel", first) in h.control.actions
            assert session.operator_answered(second)
            assert not session.operator_answered(first)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            h.assert_nothing_left(caller)

    async def test_a_refused_create_moves_on_to_the_next_operator_at_once(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_errors = [(400, False)]  # e.g. 21215: number not allowed
            session, caller = await h.caller_call()
            start = trio.current_time()
            sid = await h.dialed()
            assert trio.current_time() - start < 1.0
            assert [a[1] for a in h.control.actions if a[0].startswith("create")] == OPERATORS[:2]
            assert session.operator_answered(sid)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            h.assert_nothing_left(caller)


class TestDialing:
    async def test_no_answer_then_second_operator(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller = await h.caller_call()
            first = await h.dialed(1)
            h.status(session, first, "ringing", 1)
            h.status(session, first, "no-answer", 2)
            h.status(session, first, "no-answer", 2)  # duplicated callback
            second = await h.dialed(2)
            assert second != first
            creates = [a for a in h.control.actions if a[0] == "create"]
            assert creates[0][1] != creates[1][1]  # another operator's number
            h.status(session, first, "ringing", 1)  # late, out of order: ignored
            assert session.operator_answered(second)
            assert not session.operator_answered(first)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            h.assert_nothing_left(caller)

    async def test_all_operators_busy_means_apology(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller = await h.caller_call()
            for attempt in range(1, 4):
                sid = await h.dialed(attempt)
                h.status(session, sid, "busy", 1)
            assert await h.ended(session) == "no_operator"
            apology = [a for a in h.control.actions if a[0] == "twiml"]
            assert apology
            assert apology[0][1] == CALLER_SID
            assert "<Say" in apology[0][2]
            h.assert_nothing_left(caller)

    async def test_ring_timeout_without_any_callback_cancels_and_moves_on(
        self, autojump_clock: Any
    ) -> None:
        config = make_config(
            CALLBRIDGE_OPERATORS_MAX_ATTEMPTS="1", CALLBRIDGE_OPERATORS_RING_TIMEOUT_S="10"
        )
        async with harness(config) as h:
            session = h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1555")
            assert session is not None
            await h.caller_on_hold(session)
            sid = await h.dialed(1)
            assert await h.ended(session) == "no_operator"
            assert ("cancel", sid) in h.control.actions


class TestFailures:
    async def test_translator_failure_mid_call_ends_call_cleanly(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            h.links.opened[Direction.OPERATOR_TO_CALLER].failure.set()
            assert await h.ended(session) == "translation_failed"
            assert any(a[0] == "twiml" and a[1] == CALLER_SID for a in h.control.actions)
            assert ("hangup", session.record.operator_sid) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_translator_that_cannot_open_ends_call(self, autojump_clock: Any) -> None:
        async with harness(fail_open=True) as h:
            session, caller = await h.caller_call()
            assert await h.ended(session) == "translation_failed"
            h.assert_nothing_left(caller)

    async def test_operator_socket_closing_without_stop_is_a_hangup(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator.leg.socket_in.close()
            assert await h.ended(session) == "operator_hangup"
            assert ("hangup", CALLER_SID) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_leg_sending_nothing_valid_times_out(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
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


class TestSupervisor:
    async def test_max_calls_refuses_and_other_calls_are_untouched(
        self, autojump_clock: Any
    ) -> None:
        config = make_config(CALLBRIDGE_SERVER_MAX_CALLS="1")
        async with harness(config) as h:
            session, caller, _operator = await h.bridged_call()
            assert h.supervisor.admit(caller_sid="CA" + "d" * 32, caller_number="+1") is None
            assert (
                h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1") is session
            )  # retried webhook
            assert session.record.status == "connected"
            await caller.stop()
            await h.ended(session)

    async def test_drain_ends_calls_with_reason_shutdown(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            await h.supervisor.drain(1.0)
            assert session.record.end_reason == "shutdown"
            await trio.testing.wait_all_tasks_blocked()
            assert h.supervisor.admit(caller_sid="CA" + "e" * 32, caller_number="+1") is None
            h.assert_nothing_left(caller, operator)

    async def test_an_ended_call_leaves_only_a_record_for_late_webhooks(
        self, autojump_clock: Any
    ) -> None:
        from callbridge.calls.supervisor import EndedCall

        async with harness() as h:
            session, caller, _operator = await h.bridged_call()
            await caller.stop()
            await h.ended(session)
            late = h.supervisor.find_any(session.record.id)
            assert isinstance(late, EndedCall)  # the session and its media state are released
            assert late.record.end_reason == "caller_hangup"
            assert not late.operator_answered(session.record.operator_sid or "")
            assert h.supervisor.find(session.record.id) is None

    def test_operator_pool_round_robins_idle_numbers(self) -> None:
        pool = OperatorPool(["a", "b", "c"])
        first = pool.acquire(set())
        second = pool.acquire(set())
        assert {first, second} <= {"a", "b", "c"}
        assert first != second
        assert pool.acquire({"a", "b", "c"}) is None
        pool.release("a")
        assert pool.idle.count("a") == 1


class TestHoldAudio:
    def test_bad_hold_file_is_a_config_error_at_start(self, tmp_path: Any) -> None:
        from callbridge.audio import load_hold_audio
        from callbridge.errors import ConfigError

        bad = tmp_path / "hold.wav"
        bad.write_bytes(b"not a wav")
        with pytest.raises(ConfigError, match=r"media\.hold_audio"):
            load_hold_audio(str(bad))
        with pytest.raises(ConfigError, match=r"media\.hold_audio"):
            load_hold_audio(str(tmp_path / "missing.wav"))
        assert len(load_hold_audio("")) > 8000
