"""``CallSession.stream_ended``: Twilio requested a ``<Connect action>`` (we answer ``<Hangup/>``).

A stream whose WebSocket upgrade was refused never attaches a leg, so there is no ``stop`` and no
socket close to end the call: the action is the only word that the party is gone.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from callbridge.roles import Role
from tests.calls.harness import CALLER_SID, harness


async def test_caller_stream_refused_ends_call_and_cancels_ringing_operator(
    autojump_clock: Any,
) -> None:
    async with harness() as h:
        session = await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1555")
        assert session is not None
        sid = await h.dialed()
        h.status(session, sid, "ringing", 1)
        start = trio.current_time()
        session.stream_ended(Role.CALLER)
        assert await h.ended(session) == "caller_hangup"
        assert trio.current_time() - start < 1.0  # not the media timeout
        assert ("cancel", sid) in h.control.actions
        assert not [a for a in h.control.actions if a[1:2] == (CALLER_SID,)]  # already gone
        h.assert_nothing_left()


async def test_operator_stream_refused_after_answer_hangs_up_caller(
    autojump_clock: Any,
) -> None:
    async with harness() as h:
        session = await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1555")
        assert session is not None
        caller = await h.caller_on_hold(session)
        sid = await h.dialed()
        assert session.operator_answered(sid)
        await trio.testing.wait_all_tasks_blocked()
        session.stream_ended(Role.OPERATOR)
        assert await h.ended(session) == "operator_hangup"
        assert ("hangup", CALLER_SID) in h.control.actions
        assert not [a for a in h.control.actions if a[0] != "create" and a[1:2] == (sid,)]
        h.assert_nothing_left(caller)


async def test_action_after_the_call_ended_changes_nothing(autojump_clock: Any) -> None:
    async with harness() as h:
        session, caller, _operator = await h.bridged_call()
        await caller.stop()
        assert await h.ended(session) == "caller_hangup"
        actions = list(h.control.actions)
        session.stream_ended(Role.CALLER)
        session.stream_ended(Role.OPERATOR)
        await trio.testing.wait_all_tasks_blocked()
        assert h.control.actions == actions
        assert session.record.end_reason == "caller_hangup"
