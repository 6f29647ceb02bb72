"""A caller who hangs up during the greeting, before their media stream exists: the daemon learns
it from Twilio and cancels the operator's ringing phone, instead of waiting for a timeout."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import StackFactory, calls_of, daemon_event, wait_report

pytestmark = pytest.mark.e2e


def test_hang_up_during_the_greeting_cancels_the_operator(stack_factory: StackFactory) -> None:
    # A long greeting (the simulator "says" 60 ms per character) and an operator who never answers.
    stack = stack_factory(
        greeting="Thank you for calling. Please hold the line while we find an operator for you.",
        scenario={"default_operator": {"outcome": "no-answer"}},
    )
    stack.place_call(hangup_at_s=1.0)
    ended = daemon_event(stack, "call_ended", timeout_s=30)
    assert ended["reason"] == "caller_hangup"
    assert daemon_event(stack, "operator_dialed")
    report = wait_report(
        stack, "twilio", lambda r: all(c["status"] in ("canceled", "completed") for c in r["calls"])
    )
    [operator_call] = calls_of(report, "operator")
    assert operator_call["status"] == "canceled"  # never rang out its timeout
    assert not report["streams"]  # the caller's stream never started
