"""Restart recovery on one daemon: kill -9 mid-call, start it again; the calls it held are ended at
Twilio within 10 s and marked ``interrupted`` (issue 12 §1). One call is bridged, one still rings
its operator: that phone rings on after the crash (nobody else would stop it) until the restarted
daemon cancels it through REST with the CallSid it stored."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from callbridge.sim.stack import Stack
from tests.e2e.conftest import (
    EVENT_TIMEOUT_S,
    StackFactory,
    call_of,
    daemon_event,
    rest_updates,
    wait_report,
)

FAST, SLOW = "+15550200001", "+15550200002"
pytestmark = pytest.mark.e2e

FREED_WITHIN_S = 10.0
TERMINAL = {"completed", "canceled", "busy", "failed", "no-answer"}


def api_call(stack: Stack, call_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.app_url}/api/calls/{call_id}",
        headers={"Authorization": f"Bearer {stack.options.web_token}"},
        timeout=10,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def stored_operator_sid(stack: Stack, call_id: str) -> str:
    """The operator's CallSid once it is in the store (the API reads after a flush)."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while time.monotonic() < deadline:
        sid = api_call(stack, call_id)["call"].get("operator_sid")
        if sid:
            return str(sid)
        time.sleep(0.1)
    raise TimeoutError(f"call {call_id}: no operator_sid stored")


def test_kill_9_mid_call_then_restart_ends_both_calls_at_twilio(
    stack_factory: StackFactory,
) -> None:
    scenario = {"operators": {SLOW: {"answer_delay_s": 50.0}}}
    stack = stack_factory(scenario=scenario, operators=(FAST, SLOW), ring_timeout_s=60)
    bridged_caller = stack.place_call()
    bridged = daemon_event(stack, "call_bridged")
    ringing_caller = stack.place_call()
    dialed = daemon_event(stack, "operator_dialed", operator=SLOW)
    ringing_id = dialed["call_id"]
    slow_sid = stored_operator_sid(stack, ringing_id)
    fast_sid = stored_operator_sid(stack, bridged["call_id"])
    # The phone rings once the simulator's ring delay has passed after the REST create.
    wait_report(
        stack,
        "twilio",
        lambda r: call_of(r, slow_sid)["status"] == "ringing",
        what="the slow operator's phone ringing",
    )

    stack.kill_daemon(0)
    # Nothing of the daemon runs: the operator's phone rings on.
    assert call_of(stack.report("twilio"), slow_sid)["status"] == "ringing"
    stack.restart_daemon(0)
    restarted = time.monotonic()

    legs = [bridged_caller, fast_sid, ringing_caller, slow_sid]
    report = wait_report(
        stack,
        "twilio",
        lambda r: all(call_of(r, sid)["status"] in TERMINAL for sid in legs),
        timeout_s=FREED_WITHIN_S,
        what="every leg of the crashed daemon's calls over",
    )
    assert time.monotonic() - restarted <= FREED_WITHIN_S
    # The ringing phone was stopped by the restarted daemon, through REST, with the stored SID.
    [cancel] = [u for u in rest_updates(report, slow_sid) if u["form"].get("Status")]
    assert cancel["form"]["Status"] == ["canceled"]
    assert call_of(report, slow_sid)["status"] == "canceled"

    done = daemon_event(stack, "recovery_done")
    assert sorted(done["call_ids"]) == sorted([bridged["call_id"], ringing_id])
    for call_id in (bridged["call_id"], ringing_id):
        call = api_call(stack, call_id)["call"]
        assert (call["status"], call["end_reason"]) == ("ended", "interrupted"), call

    # The daemon takes calls again, and the next one is not mistaken for a leftover.
    stack.place_call()
    daemon_event(stack, "call_bridged")
