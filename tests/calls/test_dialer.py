"""Ringing operators through Twilio REST: attempts, timeouts and creates that may have worked."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from callbridge.calls.dialer import UNCERTAIN_CREATE_WAIT_S
from tests.calls.harness import CALLER_SID, OPERATORS, harness, make_config


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
            session = await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1555")
            assert session is not None
            await h.caller_on_hold(session)
            sid = await h.dialed(1)
            assert await h.ended(session) == "no_operator"
            assert ("cancel", sid) in h.control.actions
