"""Admission, draining and the memory of ended calls."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.calls.supervisor import SHUTDOWN_END_S
from callbridge.records import EndReason
from tests.calls.harness import CALLER_SID, harness, make_config


class TestSupervisor:
    async def test_max_calls_refuses_and_other_calls_are_untouched(
        self, autojump_clock: Any
    ) -> None:
        config = make_config(CALLBRIDGE_SERVER_MAX_CALLS="1")
        async with harness(config) as h:
            session, caller, _operator = await h.bridged_call()
            assert await h.supervisor.admit(caller_sid="CA" + "d" * 32, caller_number="+1") is None
            assert (
                await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1") is session
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
            assert await h.supervisor.admit(caller_sid="CA" + "e" * 32, caller_number="+1") is None
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


class TestLastResort:
    """A bug in one call's cleanup or summary is logged and counted at the supervisor; it never
    reaches the calls nursery, so every other call goes on."""

    async def test_a_call_whose_summary_fails_leaves_the_other_calls_alone(
        self, autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with harness() as h:
            broken, broken_caller = await h.caller_call()
            other = await h.supervisor.admit(caller_sid="CA" + "f" * 32, caller_number="+1")
            assert other is not None
            other_caller = await h.caller_on_hold(other)

            def summary_bug(*_: Any) -> None:
                msg = "a bug in the summary"
                raise RuntimeError(msg)

            monkeypatch.setattr(broken, "_log_summary", summary_bug)
            with capture_logs() as logs:
                await broken_caller.stop()
                await h.ended(broken)
                await trio.sleep(5.0)
            [crashed] = [e for e in logs if e["event"] == "call_crashed"]
            assert crashed["call_id"] == broken.record.id and crashed["exc_info"]
            assert h.supervisor.crashed_calls == 1
            # The other call is untouched and the supervisor still takes calls.
            assert h.supervisor.find(other.record.id) is other and not other.ended
            assert len(other_caller.heard) > 200  # still hearing hold audio
            third = await h.supervisor.admit(caller_sid="CA" + "9" * 32, caller_number="+1")
            assert third is not None
            third.cancel(EndReason.SHUTDOWN)
            await other_caller.stop()
            assert await h.ended(other) == "caller_hangup"


class TestShutdownKeepsItsPromise:
    """After the grace, each call hangs up at Twilio alongside its Palabra goodbyes, both bounded
    by ``SHUTDOWN_END_S``: a slow Palabra and a Twilio that never answers cannot stretch it."""

    async def test_a_slow_palabra_and_a_stalled_twilio_end_within_the_bound(
        self, autojump_clock: Any
    ) -> None:
        async with harness(goodbye_s=6.0) as h:
            session, _caller, _operator = await h.bridged_call()
            operator_sid = session.record.operator_sid
            h.control.stalled = True  # hang-ups never get an answer
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(h.supervisor.drain, 1.0)
                await trio.sleep(1.2)
                # The hang-ups went out at the grace's end, while the goodbyes still run.
                assert ("hangup", CALLER_SID) in h.control.actions
                assert ("hangup", operator_sid) in h.control.actions
                assert not any(link.closed for link in h.links.opened.values())
            assert trio.current_time() - start <= 1.0 + SHUTDOWN_END_S + 0.05
            assert session.record.end_reason == "shutdown"
            assert all(link.closed for link in h.links.opened.values())
