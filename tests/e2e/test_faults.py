"""Faults end to end: Palabra dropping or refusing, and a Twilio side that misbehaves on the
media socket. The real daemon runs between the simulators (processes, loopback, real time);
each test asserts both that the fault really happened (simulator reports) and what the daemon
made of it (its log and the carrier's view of the call).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import (
    FAST_PALABRA,
    StackFactory,
    assert_apology,
    assert_hung_up_by_daemon,
    calls_of,
    daemon_event,
    daemon_events,
    healthz,
    marks_heard,
    rest_updates,
    wait_report,
)

pytestmark = pytest.mark.e2e

LISTENER = {"caller_to_operator": "operator", "operator_to_caller": "caller"}


def _wall(record: dict[str, Any]) -> float:
    """A daemon log record's time as ``time.time()`` seconds (its ``ts`` is ISO 8601 UTC)."""
    return datetime.fromisoformat(record["ts"]).timestamp()


def _stream(report: dict[str, Any], party: str) -> dict[str, Any]:
    (stream,) = [s for s in report["streams"] if s["party"] == party]
    return dict(stream)


def _faults_fired(report: dict[str, Any], expected: dict[str, set[str]]) -> bool:
    return all(
        {f["kind"] for s in report["streams"] if s["party"] == party for f in s["faults"]} >= kinds
        for party, kinds in expected.items()
    )


def test_palabra_drop_mid_call_reconnects_and_call_goes_on(stack_factory: StackFactory) -> None:
    # The first translator connection to become ready is dropped (TCP closed, no close frame)
    # 3 s later: mid-call, after the bridge.
    stack = stack_factory(palabra_args=(*FAST_PALABRA, "--drop-after-s", "3"))
    caller_sid = stack.place_call()
    daemon_event(stack, "call_bridged")
    lost = daemon_event(stack, "palabra_reconnecting")
    direction = lost["direction"]
    back = daemon_event(stack, "palabra_ready", direction=direction, reconnects=1)
    # Translation in the dropped direction is heard again after the reconnect.
    listener = LISTENER[direction]
    wait_report(
        stack,
        "twilio",
        lambda r: marks_heard(r, listener, after=_wall(back)) >= 1,
        what=f"{listener} hears translation after the reconnect",
    )
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["caller_sid"] == caller_sid
    palabra = stack.report("palabra")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for conn in palabra["connections"]:
        by_source.setdefault(conn["source_language"], []).append(conn)
    dropped_source = "en" if direction == "caller_to_operator" else "es"
    kept_source = "es" if dropped_source == "en" else "en"
    first, second = sorted(by_source[dropped_source], key=lambda c: c["connected_at"])
    assert first["closed_by"] == "dropped" and second["ready_at"] is not None
    assert second["audio_s"] > 1.0  # the new connection carried the call on
    assert len(by_source[kept_source]) == 1  # the other direction never noticed
    assert len(daemon_events(stack, "palabra_reconnecting")) == 1
    assert not daemon_events(stack, "palabra_link_failed")


def test_palabra_drop_mid_utterance_never_blocks_the_listener(
    stack_factory: StackFactory,
) -> None:
    """The first Palabra connection to speak is dropped after 3 of a sentence's 6 chunks (a
    1.2 s tone burst): that sentence ends with what arrived, the listener hears translations
    again after the reconnect, and the call goes on."""
    stack = stack_factory(
        palabra_args=(*FAST_PALABRA, "--drop-mid-speech", "1", "--drop-mid-speech-chunks", "3")
    )
    caller_sid = stack.place_call()
    daemon_event(stack, "call_bridged")
    direction = daemon_event(stack, "palabra_reconnecting")["direction"]
    back = daemon_event(stack, "palabra_ready", direction=direction, reconnects=1)
    listener = LISTENER[direction]
    wait_report(
        stack,
        "twilio",
        lambda r: marks_heard(r, listener, after=_wall(back)) >= 2,
        what=f"{listener} hears translations after the cut sentence",
    )
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})
    (cut,) = daemon_events(stack, "translation_cut")
    assert cut["direction"] == direction and cut["reason"].startswith("connection lost")

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["caller_sid"] == caller_sid
    assert ended["translator_cut"] == {direction: 1}
    # Ended at once, not by the mixer's stall limit (zero counters are left out of the line).
    assert "stalled_utterances" not in ended["media"][listener].get("mixer", {})
    dropped = [c for c in stack.report("palabra")["connections"] if c["closed_by"] == "dropped"]
    assert len(dropped) == 1
    assert len(daemon_events(stack, "palabra_reconnecting")) == 1


def test_palabra_rejects_task_call_ends_with_apology(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        palabra_args=(*FAST_PALABRA, "--reject-task", "-1"),
        scenario={"default_operator": {"answer_delay_s": 5}},  # still ringing when it fails
    )
    caller_sid = stack.place_call()
    ended = stack.call_ended()
    assert ended["reason"] == "translation_failed" and ended["caller_sid"] == caller_sid
    assert daemon_events(stack, "palabra_task_rejected")
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    assert_apology(report, caller_sid)
    # The operator dialled meanwhile (if any) was cancelled, not left ringing.
    for operator in calls_of(report, "operator"):
        assert operator["answered_at"] is None
        assert_hung_up_by_daemon(report, operator["sid"], status="canceled")
    assert all(c["task_rejected"] >= 1 for c in stack.report("palabra")["connections"])
    assert healthz(stack)["active_calls"] == 0


def test_twilio_media_garbage_and_slow_reader_call_survives(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        scenario={
            "faults": [
                {"kind": "binary_frame", "party": "caller", "at_s": 0.5},
                {"kind": "malformed_json", "party": "operator", "at_s": 0.5},
                # The operator's Twilio stops reading our audio for 2 s, mid-call.
                {"kind": "slow_reader", "party": "operator", "at_s": 1.0, "duration_s": 2.0},
            ]
        }
    )
    caller_sid = stack.place_call()
    daemon_event(stack, "call_bridged")
    fired = wait_report(
        stack,
        "twilio",
        lambda r: _faults_fired(
            r, {"caller": {"binary_frame"}, "operator": {"malformed_json", "slow_reader"}}
        ),
        what="every media fault fired",
    )
    after = max(f["at"] for s in fired["streams"] for f in s["faults"]) + 2.0
    # The call goes on: both sides hear translated speech that finished after the faults.
    wait_report(
        stack,
        "twilio",
        lambda r: marks_heard(r, "caller", after) >= 1 and marks_heard(r, "operator", after) >= 1,
        what="translation heard both ways after the faults",
    )
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["caller_sid"] == caller_sid
    media = ended["media"]
    assert media["caller"]["invalid"] == {"binary_frame": 1}
    assert media["operator"]["invalid"] == {"bad_json": 1}
    warned = {(w["role"], w["reason"]) for w in daemon_events(stack, "media_invalid")}
    assert warned == {("caller", "binary_frame"), ("operator", "bad_json")}
    # The stall showed: our sends were dropped, or that phone's playback ran dry meanwhile.
    report = stack.report("twilio")
    operator_stream = _stream(report, "operator")
    assert (
        media["operator"].get("send_dropped", 0) > 0
        or operator_stream["longest_underrun_ms"] >= 1000
    ), (media["operator"], operator_stream["longest_underrun_ms"])
    assert stack.daemon is not None and stack.daemon.popen.poll() is None
    health = healthz(stack)
    assert health["status"] == "ok" and health["active_calls"] == 0


def test_operator_socket_dropped_without_stop(stack_factory: StackFactory) -> None:
    """Twilio says ``stop`` before it closes a stream: a socket that just goes away broke, and the
    call at Twilio may still be live, so the daemon ends it (``media_lost``): the operator is hung
    up by REST and the caller, still on the line, hears the apology."""
    stack = stack_factory(
        scenario={"faults": [{"kind": "abrupt_close", "party": "operator", "at_s": 2.0}]}
    )
    caller_sid = stack.place_call()
    bridged = daemon_event(stack, "call_bridged")

    ended = stack.call_ended()
    assert ended["reason"] == "media_lost" and ended["caller_sid"] == caller_sid
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    operator_stream = _stream(report, "operator")
    assert operator_stream["end_reason"] == "aborted"
    assert "stop" not in operator_stream["messages_out"]  # no goodbye: the TCP just went away
    assert [f["kind"] for f in operator_stream["faults"]] == ["abrupt_close"]
    # The daemon asked Twilio to end the operator's call (the simulator had ended it with the
    # socket, and says so: 404), and the caller, still on the line, heard the apology.
    tried = rest_updates(report, bridged["operator_sid"])
    assert [u["form"].get("Status") for u in tried] == [["completed"]], tried
    assert_apology(report, caller_sid)
    assert healthz(stack)["active_calls"] == 0
