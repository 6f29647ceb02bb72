"""Twilio holds the truth about the operator's call: a REST create cannot be undone.

Whatever happens to the call meanwhile, a create's outcome is settled: a CallSid learnt late (the
create's answer, a status callback, the answer webhook) for a call that ended is cancelled or hung
up, and the operator's number stays held until that leg is really over. Webhooks about the
operator leg are matched by the call id in their URL, so an answer that comes before the create's
HTTP answer (or instead of it) connects the operator.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from callbridge.errors import TwilioError
from callbridge.roles import Role
from callbridge.telephony.status import StatusUpdate
from tests.calls.harness import OPERATORS, Harness, harness

FIRST = OPERATORS[0]


def late_status(h: Harness, call_id: str, sid: str, status: str) -> None:
    """A status callback for ``call_id`` as the webhook delivers it (live or ended call)."""
    handle = h.supervisor.find_any(call_id)
    assert handle is not None
    handle.on_status(Role.OPERATOR, StatusUpdate(sid, status, None, None, None, None))


def late_answer(h: Harness, call_id: str, sid: str) -> bool:
    handle = h.supervisor.find_any(call_id)
    assert handle is not None
    return handle.operator_answered(sid)


class TestACreateCannotBeUndone:
    """The issue's example: the caller is on hold, the create takes 2 s to answer, the caller
    hangs up 0.5 s in."""

    async def test_a_create_answered_after_the_call_ended_is_cancelled_and_holds_its_number(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_delay_s = 2.0
            session, caller = await h.caller_call()
            sid = await h.dialed()
            await trio.sleep(0.5)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            assert h.control.create_answers == 0  # the create is still on its way
            assert FIRST not in h.pool.idle  # the operator's phone may be ringing
            await trio.sleep(2.0)
            assert ("cancel", sid) in h.control.actions
            await trio.testing.wait_all_tasks_blocked()  # the release runs in the background
            assert FIRST in h.pool.idle
            assert session.operator_legs.settled.is_set()
            h.assert_nothing_left(caller)

    async def test_a_ringing_callback_after_the_call_ended_cancels_at_once(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_delay_s = 5.0
            session, caller = await h.caller_call()
            sid = await h.dialed()
            await trio.sleep(0.5)
            await caller.stop()
            await h.ended(session)
            late_status(h, session.record.id, sid, "ringing")
            await trio.testing.wait_all_tasks_blocked()
            assert h.control.actions.count(("cancel", sid)) == 1  # not waiting for the create
            await trio.sleep(5.0)  # the create answers: already cancelled, not twice
            assert h.control.actions.count(("cancel", sid)) == 1
            await trio.testing.wait_all_tasks_blocked()  # the release runs in the background
            assert FIRST in h.pool.idle
            h.assert_nothing_left(caller)

    async def test_an_operator_who_picks_up_after_the_call_ended_is_hung_up_and_holds_the_number(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_delay_s = 2.0
            h.control.cancel_error = TwilioError("Twilio cancel failed: 503", status=503)
            session, caller = await h.caller_call()
            sid = await h.dialed()
            await trio.sleep(0.5)
            await caller.stop()
            await h.ended(session)
            await trio.sleep(3.0)  # the create answered; Twilio refused the cancel
            assert ("cancel", sid) in h.control.actions
            assert not late_answer(h, session.record.id, sid)  # <Hangup/> for the operator
            assert FIRST not in h.pool.idle  # not over until Twilio says so
            late_status(h, session.record.id, sid, "completed")
            await trio.testing.wait_all_tasks_blocked()  # the release runs in the background
            assert FIRST in h.pool.idle
            assert session.operator_legs.settled.is_set()

    async def test_a_leg_twilio_never_reports_over_frees_its_number_after_the_hold_limit(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_delay_s = 2.0
            h.control.cancel_error = TwilioError("Twilio cancel failed: 503", status=503)
            session, caller = await h.caller_call()
            await h.dialed()
            await trio.sleep(0.5)
            await caller.stop()
            await h.ended(session)
            await trio.sleep(10.0)
            assert FIRST not in h.pool.idle
            limit = h.config.operators.ring_timeout_s + 15.0
            await trio.sleep(limit)
            await trio.testing.wait_all_tasks_blocked()  # the release runs in the background
            assert FIRST in h.pool.idle
            assert session.operator_legs.settled.is_set()


class TestWebhooksBeforeTheCreatesAnswer:
    async def test_an_answer_before_the_creates_answer_connects_the_operator(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_delay_s = 5.0
            session, caller = await h.caller_call()
            sid = await h.dialed()  # placed at once; its HTTP answer takes 5 s
            await trio.sleep(0.5)
            h.status(session, sid, "initiated", 0)
            h.status(session, sid, "ringing", 1)
            await trio.sleep(0.5)
            operator = await h.operator_joins(session, sid)
            assert trio.current_time() < 5.0 and h.control.create_answers == 0
            assert session.record.operator_sid == sid
            await trio.sleep(5.0)  # the create answers with the same call: nothing changes
            assert session.record.status == "connected"
            assert ("cancel", sid) not in h.control.actions
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"
            assert ("hangup", sid) in h.control.actions
            h.assert_nothing_left(caller, operator)

    async def test_an_answer_when_the_creates_answer_never_comes_connects_the_operator(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            h.control.create_errors = [(None, True)]  # placed, but the request times out...
            h.control.create_delay_s = 30.0  # ...after 30 s
            session, caller = await h.caller_call()
            sid = await h.dialed()
            await trio.sleep(1.0)
            operator = await h.operator_joins(session, sid)  # the answer webhook alone
            await trio.sleep(40.0)
            assert session.record.status == "connected" and not session.ended
            assert h.control.kinds().count("create") == 1  # not dialled twice
            assert ("cancel", sid) not in h.control.actions
            await operator.stop()
            assert await h.ended(session) == "operator_hangup"
            h.assert_nothing_left(caller, operator)

    async def test_an_answer_for_a_call_this_call_never_placed_is_hung_up(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            stranger = "CA" + "7" * 32
            assert not session.operator_answered(stranger)
            await trio.testing.wait_all_tasks_blocked()
            assert ("hangup", stranger) in h.control.actions  # it was answered: hung up
            assert session.record.status == "connected"
            await caller.stop()
            await h.ended(session)
            h.assert_nothing_left(caller, operator)
