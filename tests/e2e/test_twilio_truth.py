"""Twilio holds the truth about calls, end to end: the real ``callbridge serve`` between the Twilio
and Palabra simulators (separate processes, loopback, real time).

- A REST create cannot be undone: the caller hangs up while the operator's create is still on
  its way (Twilio placed the call, its HTTP answer is slow); the operator's phone is cancelled,
  not left ringing for an operator who would pick up to ``<Hangup/>``.
- SIGTERM keeps its promise: with Palabra's goodbye and Twilio's REST both slow, the daemon exits
  within ``server.shutdown_grace_s`` + 5 s, and a SIGHUP during the drain changes nothing.
"""

from __future__ import annotations

import signal
import time

import pytest

from callbridge.calls.supervisor import EXIT_WITHIN_S, SHUTDOWN_END_S
from tests.e2e.conftest import (
    StackFactory,
    call_of,
    calls_of,
    daemon_event,
    heard_translation_both_ways,
    rest_updates,
    wait_report,
    webhooks_of,
)

pytestmark = pytest.mark.e2e

GRACE_S = 3.0


def test_a_create_that_answers_after_the_caller_hung_up_is_cancelled(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(
        scenario={
            # Twilio places the operator's call at once; the create's 201 comes 4 s later.
            "rest_delays": [{"endpoint": "create", "delay_s": 4.0}],
            # The caller, on hold, hangs up 1.5 s after the operator's phone started ringing.
            "caller": {"hangup_while_operator_rings": True, "hangup_ring_delay_s": 1.5},
            "default_operator": {"answer_delay_s": 6.0},
        }
    )
    caller_sid = stack.place_call()
    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["caller_sid"] == caller_sid
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    (operator,) = calls_of(report, "operator")
    # The phone stopped ringing because the daemon cancelled it, long before anyone answered.
    assert operator["status"] == "canceled" and operator["end_reason"] == "rest_canceled", operator
    assert operator["answered_at"] is None
    (cancel,) = rest_updates(report, operator["sid"])
    assert cancel["form"]["Status"] == ["canceled"] and cancel["status"] == 200
    assert not webhooks_of(report, operator["sid"], "outbound_url")  # nobody picked up
    assert call_of(report, caller_sid)["end_reason"] == "caller_hangup_while_operator_rings"
    assert daemon_event(stack, "operator_leg_ended", operator_sid=operator["sid"])


def test_sigterm_exits_within_the_grace_plus_five_seconds_when_palabra_and_twilio_are_slow(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(daemon_env={"CALLBRIDGE_SERVER_SHUTDOWN_GRACE_S": str(GRACE_S)})
    assert stack.daemon is not None
    stack.place_call()
    daemon_event(stack, "call_bridged")
    wait_report(stack, "twilio", heard_translation_both_ways, what="translation heard both ways")
    # Palabra stops answering (no end_of_stream, no close); every REST update answers 15 s late.
    stack.sim_post("palabra", "/_sim/faults", {"stall_output": True})
    slow = {"endpoint": "update", "delay_s": 15.0, "times": 10}
    stack.sim_post("twilio", "/_sim/faults", {"rest_delays": [slow]})

    start = time.monotonic()
    stack.daemon.popen.send_signal(signal.SIGTERM)
    daemon_event(stack, "shutting_down")
    stack.daemon.popen.send_signal(signal.SIGHUP)  # during the drain: ignored, not fatal
    ended = stack.call_ended()
    ended_after = time.monotonic() - start
    code = stack.daemon.popen.wait(timeout=30)
    exited_after = time.monotonic() - start

    print(f"SIGTERM -> call_ended {ended_after:.2f} s, -> exit {exited_after:.2f} s")
    assert code == 0
    assert ended["reason"] == "shutdown"
    assert daemon_event(stack, "signal_ignored", signal="SIGHUP")
    assert ended_after <= GRACE_S + SHUTDOWN_END_S + 1.0, ended_after
    assert exited_after <= GRACE_S + EXIT_WITHIN_S, exited_after
    # Both legs were hung up at Twilio (the answers were late, the hang-ups were not).
    report = stack.report("twilio")
    for party in ("caller", "operator"):
        (call,) = calls_of(report, party)
        assert call["end_reason"] == "rest_completed", call
