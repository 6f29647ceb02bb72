"""Restart recovery: calls no process runs any more are ended at Twilio, then marked interrupted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio
from structlog.testing import capture_logs

from callbridge.calls.ending import CLEANUP_TIMEOUT_S
from callbridge.calls.recovery import end_orphaned_calls
from callbridge.errors import TwilioError
from tests.calls.fakes import FakeControl
from tests.calls.harness import make_config

CALLER, OPERATOR = "CA" + "1" * 32, "CA" + "2" * 32


@attrs.define
class FakeHub:
    closed: list[tuple[str, str]] = attrs.Factory(list)

    def close_calls(self, calls: Sequence[Mapping[str, Any]], reason: str) -> None:
        self.closed += [(str(call["id"]), reason) for call in calls]


@attrs.define
class NotInProgress(FakeControl):
    """Twilio refusing to redirect a call that is not in progress (error 21220)."""

    async def update_twiml(self, sid: str, twiml: str) -> None:
        raise TwilioError("Call is not in-progress", status=400, code=21220)


def row(call_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": call_id, "caller_language": "en", "status": "connected", **fields}


async def test_both_legs_are_ended_at_twilio_then_the_call_is_interrupted(
    autojump_clock: Any,
) -> None:
    control, hub = FakeControl(), FakeHub()
    calls = [row("bridged", caller_sid=CALLER, operator_sid=OPERATOR)]
    await end_orphaned_calls(make_config(), control, hub, calls, owner="node-2")
    cancel, apology = sorted(control.actions)
    assert apology[:2] == ("twiml", CALLER) and "<Say" in apology[2] and "<Hangup" in apology[2]
    assert cancel == ("cancel", OPERATOR)  # cancel hangs up an answered call too
    assert hub.closed == [("bridged", "interrupted")]


async def test_the_apology_is_in_the_callers_language(autojump_clock: Any) -> None:
    control, hub = FakeControl(), FakeHub()
    calls = [row("es", caller_sid=CALLER, caller_language="es")]
    config = make_config()
    await end_orphaned_calls(config, control, hub, calls, owner="node-2")
    [(_, _, twiml)] = control.actions
    assert config.prompts.apology["es"] in twiml and 'language="es-' in twiml


async def test_a_caller_who_cannot_hear_the_apology_is_hung_up(autojump_clock: Any) -> None:
    control, hub = NotInProgress(), FakeHub()
    with capture_logs() as logs:
        await end_orphaned_calls(
            make_config(), control, hub, [row("c", caller_sid=CALLER)], owner="x"
        )
    assert control.actions == [("hangup", CALLER)]
    [failed] = [e for e in logs if e["event"] == "recovery_step_failed"]
    assert failed["code"] == 21220 and failed["call_id"] == "c"
    assert hub.closed == [("c", "interrupted")]


async def test_a_call_still_ringing_without_a_known_operator_leg(autojump_clock: Any) -> None:
    control, hub = FakeControl(), FakeHub()
    await end_orphaned_calls(make_config(), control, hub, [row("r", caller_sid=CALLER)], owner="x")
    assert [a[:2] for a in control.actions] == [("twiml", CALLER)]
    assert hub.closed == [("r", "interrupted")]


async def test_a_twilio_that_never_answers_costs_at_most_the_cleanup_timeout(
    autojump_clock: Any,
) -> None:
    control, hub = FakeControl(stalled=True), FakeHub()
    calls = [row(f"c{n}", caller_sid=CALLER, operator_sid=OPERATOR) for n in range(20)]
    started = trio.current_time()
    with capture_logs() as logs:
        await end_orphaned_calls(make_config(), control, hub, calls, owner="node-2")
    assert trio.current_time() - started <= CLEANUP_TIMEOUT_S + 0.01
    assert len(hub.closed) == 20
    [done] = [e for e in logs if e["event"] == "recovery_done"]
    assert done["timed_out"] and done["owner"] == "node-2"


async def test_nothing_to_recover_does_nothing(autojump_clock: Any) -> None:
    control, hub = FakeControl(), FakeHub()
    await end_orphaned_calls(make_config(), control, hub, [], owner="x")
    assert control.actions == [] and hub.closed == []
