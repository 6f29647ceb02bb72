"""The seed's Palabra auth mode (client id + secret, REST session storage) end to end, and a
translator that goes quiet: against the real daemon and both simulators."""

from __future__ import annotations

import pytest

from callbridge.sim.stack import Stack
from tests.e2e.conftest import StackFactory, daemon_event, wait_report

pytestmark = pytest.mark.e2e

LEGACY_ENV = {
    "PALABRA_API_KEY": "",  # no API key: the client id/secret pair decides the mode
    "PALABRA_CLIENT_ID": "sim-client-id",
    "PALABRA_CLIENT_SECRET": "sim-client-secret",
}


def run_call(stack: Stack, seconds: float) -> dict[str, object]:
    stack.place_call(hangup_at_s=seconds)
    return stack.call_ended(timeout_s=seconds + 60)


def test_legacy_sessions_survive_a_5xx_and_are_always_deleted(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        daemon_env=LEGACY_ENV, palabra_args=["--ready-delay-s", "0.3", "--session-5xx", "1"]
    )
    ended = run_call(stack, seconds=9)
    assert ended["reason"] == "caller_hangup"
    report = wait_report(stack, "palabra", lambda r: len(r["sessions"]["deleted"]) >= 2)
    connections = report["connections"]
    assert {c["auth_mode"] for c in connections} == {"session"}
    assert len(connections) == 2  # one link per direction
    assert all(c["utterances"] for c in connections)  # both directions were translated
    sessions = report["sessions"]
    assert len(sessions["created"]) == 2
    assert sorted(sessions["deleted"]) == sorted(s["id"] for s in sessions["created"])
    assert sessions["leaked"] == []
    assert daemon_event(stack, "call_ended")["reason"] == "caller_hangup"


def test_legacy_sessions_are_deleted_when_the_task_is_rejected(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        daemon_env=LEGACY_ENV, palabra_args=["--ready-delay-s", "0.3", "--reject-task", "-1"]
    )
    ended = run_call(stack, seconds=20)
    assert ended["reason"] == "translation_failed"
    report = wait_report(
        stack, "palabra", lambda r: bool(r["sessions"]["created"]) and not r["sessions"]["leaked"]
    )
    assert report["sessions"]["leaked"] == []


def test_a_translator_that_stalls_mid_call_leaves_the_call_running(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    stack.place_call(hangup_at_s=12)
    daemon_event(stack, "call_bridged")
    stack.sim_post("palabra", "/_sim/faults", {"stall_output": True})
    ended = stack.call_ended(timeout_s=60)
    # Originals still flow both ways; the call ends by the caller, not by a failure.
    assert ended["reason"] == "caller_hangup"
    media = ended["media"]
    assert media["operator"]["frames_out"] > 200
    assert media["caller"]["frames_out"] > 200
    # ...while the translators really were silent: the simulator swallowed their output.
    report = stack.report("palabra")
    assert all(c["suppressed_messages"] > 0 for c in report["connections"])
