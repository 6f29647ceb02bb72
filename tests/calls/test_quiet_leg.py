"""A quiet leg is not a hung-up leg: before ending a call for ``leg_timeout`` the call asks Twilio
for that leg's status (``GET Calls/{sid}``, https://www.twilio.com/docs/voice/api/call-resource#
fetch-a-call-resource). In progress: the call goes on, the quiet is counted and logged and the
idle timeout widened. Finished: the call ends with that party's hang-up."""

from __future__ import annotations

from typing import Any

import trio
from structlog.testing import capture_logs

from callbridge.errors import TwilioError
from tests.calls.harness import CALLER_SID, harness

IDLE_S = 3.0  # the harness' media.leg_idle_timeout_s


class TestQuietLeg:
    async def test_a_quiet_leg_twilio_reports_in_progress_keeps_the_call(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            caller.muted = True  # Twilio sends nothing (a leg that skips silence)
            with capture_logs() as logs:
                await trio.sleep(IDLE_S * 4)
            assert not session.ended and session.record.status == "connected"
            assert ("fetch", CALLER_SID) in h.control.actions
            kept = [e for e in logs if e["event"] == "leg_quiet"]
            assert (
                kept and kept[0]["role"] == "caller" and kept[0]["twilio_status"] == "in-progress"
            )
            # Widened: 3 s, then 6 s, so two checks in 12 s, not four.
            assert h.control.actions.count(("fetch", CALLER_SID)) == 2
            caller.muted = False
            await trio.sleep(1.0)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            h.assert_nothing_left(caller, operator)

    async def test_the_quiet_is_counted_in_the_summary(self, autojump_clock: Any) -> None:
        async with harness() as h:
            session, caller, _operator = await h.bridged_call()
            caller.muted = True
            await trio.sleep(IDLE_S + 1)
            caller.muted = False
            with capture_logs() as logs:
                await caller.stop()
                await h.ended(session)
            [ended] = [e for e in logs if e["event"] == "call_ended"]
            assert ended["quiet_legs_kept"] == {"caller": 1}

    async def test_a_quiet_leg_twilio_reports_finished_is_that_partys_hangup(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator_sid = session.record.operator_sid
            assert operator_sid is not None
            h.control.statuses[operator_sid] = "completed"
            operator.muted = True
            start = trio.current_time()
            assert await h.ended(session) == "operator_hangup"
            assert trio.current_time() - start < IDLE_S + 1
            assert ("fetch", operator_sid) in h.control.actions
            assert ("hangup", operator_sid) not in h.control.actions  # Twilio says it is over
            assert ("hangup", CALLER_SID) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_when_twilio_cannot_say_the_quiet_leg_times_out(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            h.control.fetch_error = TwilioError("Twilio fetch failed: 503", status=503)
            caller.muted = True
            assert await h.ended(session) == "leg_timeout"
            h.assert_nothing_left(caller, operator)
