"""The fault matrix (issue 12 §5): three calls run, and one is hit by each fault.

One stack for the module (the real daemon between the two simulators, as processes on
loopback). Two background calls are bridged at the start and run through every case; each case
places a third call, hits it with one fault, and checks that

- the hit call ends, or heals, as specified, with its reason;
- the error is logged once, with the call's id and what went wrong;
- the daemon's file descriptors and tasks and the Palabra simulator's live sessions are back to
  what they were before the case;
- the background calls' audio never noticed (``matrix.Case.finish``: gaps and latency).

The faults are aimed at the hit call alone: a Twilio stream fault names its CallSid, a Palabra
fault names its connection (``docs/simulators.md``). The last two cases end the daemon itself:
SIGTERM, then kill -9 and a restart.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from callbridge.calls.supervisor import EXIT_WITHIN_S, SHUTDOWN_END_S
from callbridge.sim.stack import Stack, StackOptions
from tests.e2e.conftest import (
    FAST_PALABRA,
    assert_apology,
    call_of,
    daemon_event,
    daemon_events,
    daemon_events_when,
    healthz,
    rest_updates,
    signature,
    wait_report,
)
from tests.e2e.matrix import (
    OPERATORS,
    TONES,
    Case,
    Matrix,
    bridge,
    place,
    terminal,
    wait_until,
)

pytestmark = pytest.mark.e2e

GRACE_S = 2.0  # the stack's server.shutdown_grace_s
RING_S = 60  # operators.ring_timeout_s: a ringing phone is not freed by the ring timeout
STALL_S = 3.0  # palabra.output_stall_s: two of a party's 1.5 s bursts unanswered
RESTART_FREES_WITHIN_S = 10.0
TO_OPERATOR = "caller_to_operator"  # the direction whose Palabra connection the faults hit


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    workdir: Path = tmp_path_factory.mktemp("fault-matrix")
    print(f"fault matrix stack logs: {workdir}")
    options = StackOptions(
        workdir=workdir,
        palabra_args=FAST_PALABRA,
        twilio_args=["--no-recording", "--detect-tones", TONES],
        operators=OPERATORS,
        daemon_env={
            "CALLBRIDGE_OPERATORS_RING_TIMEOUT_S": str(RING_S),
            "CALLBRIDGE_PALABRA_OUTPUT_STALL_S": str(STALL_S),
        },
    )
    with Stack(options) as stack:
        matrix = Matrix(stack)
        matrix.start_background()
        yield matrix
        for figures in matrix.figures:
            print(f"fault matrix figures: {figures}")


@pytest.fixture
def case(matrix: Matrix, request: pytest.FixtureRequest) -> Iterator[Case]:
    case = Case.begin(matrix, request.node.name)
    try:
        yield case
    finally:
        case.cleanup()


# ---- Palabra --------------------------------------------------------------------------------


def test_palabra_drop_mid_utterance_heals(case: Case) -> None:
    """The hit call's caller->operator connection drops after 3 of a sentence's 6 chunks: the
    sentence is cut there, the link reconnects, the operator hears translations again."""
    stack, hit = case.stack, case.place()
    bridge(stack, hit)
    conn = case.connection(TO_OPERATOR)
    aimed = {"connection": conn, "drop_mid_speech": 1, "drop_mid_speech_chunks": 3}
    stack.sim_post("palabra", "/_sim/faults", aimed)
    direction = TO_OPERATOR
    daemon_event(stack, "palabra_reconnecting", call_id=hit.call_id, direction=direction)
    back = daemon_event(stack, "palabra_ready", call_id=hit.call_id, reconnects=1)
    case.wait_heard(hit.operator_sid, after=_wall(back), count=2)
    case.hang_up(hit.caller_sid)

    ended = case.ended()
    assert ended["reason"] == "caller_hangup"
    assert ended["translator_cut"] == {direction: 1}
    lost = case.logged_once("palabra_reconnecting")
    assert lost["direction"] == direction and lost["attempt"] == 1
    cut = case.logged_once("translation_cut")
    assert cut["direction"] == direction and cut["reason"].startswith("connection lost")
    (dropped,) = [c for c in stack.report("palabra")["connections"] if c["id"] == conn]
    assert dropped["closed_by"] == "dropped"
    case.assert_trouble(palabra_reconnecting=1, translation_cut=1)
    case.finish()


def test_palabra_stalled_output_heals(case: Case) -> None:
    """The hit call's caller->operator connection stops sending anything (socket open, pongs
    answered): after ``palabra.output_stall_s`` of the caller's speech unanswered the daemon
    replaces that connection, and the operator hears translations again. The other direction
    is translated throughout."""
    stack, hit = case.stack, case.place()
    bridge(stack, hit)
    conn = case.connection(TO_OPERATOR)
    stack.sim_post("palabra", "/_sim/faults", {"connection": conn, "stall_output": True})
    stalled_at = time.time()
    case.wait_heard(hit.caller_sid, after=stalled_at + 1.0, count=2)
    stall = daemon_event(stack, "palabra_output_stalled", call_id=hit.call_id)
    assert stall["direction"] == TO_OPERATOR and stall["unanswered_speech_s"] >= STALL_S
    back = daemon_event(stack, "palabra_ready", call_id=hit.call_id, reconnects=1)
    case.wait_heard(hit.operator_sid, after=_wall(back), count=2)
    case.hang_up(hit.caller_sid)

    ended = case.ended()
    assert ended["reason"] == "caller_hangup"
    (stalled,) = [c for c in stack.report("palabra")["connections"] if c["id"] == conn]
    assert stalled["suppressed_messages"] > 0 and stalled["closed_at"] is not None
    again = case.logged_once("palabra_reconnecting")
    assert again["direction"] == TO_OPERATOR and again["attempt"] == 0  # no attempt spent
    case.assert_trouble(("translation_cut",), palabra_output_stalled=1, palabra_reconnecting=1)
    case.finish()


def test_palabra_rejects_the_task_call_ends_with_apology(case: Case) -> None:
    stack = case.stack
    stack.sim_post("palabra", "/_sim/faults", {"reject_task": -1})
    hit = case.place()
    ended = case.ended()
    stack.sim_post("palabra", "/_sim/faults", {"reject_task": 0})
    assert ended["reason"] == "translation_failed"
    report = case.wait_phones_free()
    assert_apology(report, hit.caller_sid)
    for operator_sid in hit.operator_sids(stack):
        assert call_of(report, operator_sid)["end_reason"] in ("rest_canceled", "rest_completed")
    rejected = daemon_events(stack, "palabra_task_rejected", call_id=hit.call_id)
    directions = [r["direction"] for r in rejected]
    assert directions and len(directions) == len(set(directions)), rejected  # once per link
    # The task may fail before the operator's create has answered: that call, learnt after the
    # end, is cancelled as an orphan (warned once).
    case.assert_trouble(("operator_call_orphaned",), palabra_task_rejected=len(directions))
    case.finish()


# ---- Twilio media ---------------------------------------------------------------------------


def test_twilio_socket_dropped_without_stop_ends_the_call_media_lost(case: Case) -> None:
    stack, hit = case.stack, case.place()
    bridge(stack, hit)
    fault = {"kind": "abrupt_close", "call_sid": hit.operator_sid}
    assert stack.sim_post("twilio", "/_sim/faults", {"faults": [fault]})["injected"] == 1

    ended = case.ended()
    assert ended["reason"] == "media_lost"
    report = case.wait_phones_free()
    (stream,) = [s for s in report["streams"] if s["call_sid"] == hit.operator_sid]
    assert stream["end_reason"] == "aborted" and "stop" not in stream["messages_out"]
    assert_apology(report, hit.caller_sid)
    failed = case.logged_once("call_failed")
    assert failed["reason"] == "media_lost" and failed["detail"].startswith("operator: ")
    case.assert_trouble(call_failed=1)
    case.finish()


def test_twilio_binary_and_malformed_frames_heal_an_oversized_one_ends_the_call(
    case: Case,
) -> None:
    stack, hit = case.stack, case.place()
    bridge(stack, hit)
    garbage = [
        {"kind": "binary_frame", "call_sid": hit.caller_sid},
        {"kind": "malformed_json", "call_sid": hit.operator_sid},
    ]
    assert stack.sim_post("twilio", "/_sim/faults", {"faults": garbage})["injected"] == 2
    invalid = daemon_events_when(stack, "media_invalid", 2, call_id=hit.call_id)
    after = time.time()
    print(f"fault matrix: garbage at {after - case.listening.started_at:.2f} s")
    case.wait_heard(hit.caller_sid, after)  # healed: translated both ways after the garbage
    case.wait_heard(hit.operator_sid, after)
    oversized = {"kind": "oversized_frame", "call_sid": hit.caller_sid, "size_bytes": 100_000}
    assert stack.sim_post("twilio", "/_sim/faults", {"faults": [oversized]})["injected"] == 1
    print(f"fault matrix: oversized at {time.time() - case.listening.started_at:.2f} s")

    ended = case.ended()
    assert ended["reason"] == "media_too_large"
    assert ended["media"]["caller"]["invalid"] == {"binary_frame": 1, "too_large": 1}
    assert ended["media"]["operator"]["invalid"] == {"bad_json": 1}
    assert {(r["role"], r["reason"]) for r in invalid} == {
        ("caller", "binary_frame"),
        ("operator", "bad_json"),
    }
    failed = case.logged_once("call_failed")
    assert failed["reason"] == "media_too_large" and "from the caller" in failed["detail"]
    case.assert_trouble(media_invalid=2, call_failed=1)
    case.finish()


# ---- Twilio REST and webhooks ---------------------------------------------------------------


def test_twilio_rest_429_then_500_on_hang_up_is_retried(case: Case) -> None:
    """The operator hangs up; our hang-up of the caller is answered 429 (not processed), then
    500 after it took effect: retried both times, and the retry finds the call ended."""
    stack, hit = case.stack, case.place()
    bridge(stack, hit)
    errors = [
        {"endpoint": "update", "status": 429, "times": 1},
        {"endpoint": "update", "status": 500, "times": 1, "after_acting": True},
    ]
    stack.sim_post("twilio", "/_sim/faults", {"rest_errors": errors})
    case.hang_up(hit.operator_sid)

    ended = case.ended()
    assert ended["reason"] == "operator_hangup"
    report = case.wait_phones_free()
    assert [u["status"] for u in rest_updates(report, hit.caller_sid)] == [429, 500, 404]
    assert call_of(report, hit.caller_sid)["end_reason"] == "rest_completed"
    retries = daemon_events(stack, "twilio_rest_retry")
    assert sorted(r["status"] for r in retries if hit.caller_sid in str(r)) == [429, 500]
    case.assert_trouble()  # retried (info), then "already over" (info): nothing failed
    case.finish()


def test_twilio_callbacks_repeated_reordered_or_unknown_change_nothing(case: Case) -> None:
    stack = case.stack
    shuffled = {"duplicate": True, "reorder": True, "hold_s": 0.5}
    stack.sim_post("twilio", "/_sim/faults", {"callbacks": shuffled})
    hit = case.place()
    bridge(stack, hit)
    stack.sim_post("twilio", "/_sim/faults", {"callbacks": {}})
    # A signed callback about a call the daemon never had.
    unknown = "NoSuchCall" + "x" * 12
    url = f"{stack.app_url}/twilio/status/{unknown}/operator"
    form = {"CallSid": "CA" + "9" * 32, "CallStatus": "completed", "SequenceNumber": "3"}
    answer = stack.http.post(url, data=form, headers={"X-Twilio-Signature": signature(url, form)})
    assert answer.status_code == 404
    logged = daemon_event(stack, "unknown_call", call_id=unknown)
    assert logged["route"].endswith(f"/{unknown}/operator")
    after = time.time()
    case.wait_heard(hit.caller_sid, after)
    case.wait_heard(hit.operator_sid, after)
    case.hang_up(hit.operator_sid)

    assert case.ended()["reason"] == "operator_hangup"
    case.wait_phones_free()
    # initiated, ringing, answered, completed: each delivered twice, pairs swapped.
    seen = daemon_events_when(stack, "status_callback", 8, call_id=hit.call_id)
    statuses = [s["status"] for s in seen]
    assert statuses.count("ringing") == 2 and statuses.count("completed") == 2, statuses
    assert len(daemon_events(stack, "call_ended", call_id=hit.call_id)) == 1
    assert len(daemon_events(stack, "unknown_call", call_id=unknown)) == 1
    case.assert_trouble()
    case.finish()


def test_forged_signatures_are_refused_and_the_call_goes_on(case: Case) -> None:
    """Someone who knows the call's id, but not the auth token, tries to hang up its operator
    leg by a status callback and to take over its caller's media stream."""
    stack, hit = case.stack, case.place()
    bridge(stack, hit)
    rejected_before = healthz(stack)["rejected"].get("bad_signature", 0)
    url = f"{stack.app_url}/twilio/status/{hit.call_id}/operator"
    form = {"CallSid": hit.operator_sid, "CallStatus": "completed", "SequenceNumber": "9"}
    forged = RequestValidator("not-the-auth-token").compute_signature(url, form)
    answer = stack.http.post(url, data=form, headers={"X-Twilio-Signature": forged})
    assert answer.status_code == 403
    assert _forged_upgrade(stack, f"/media/{hit.call_id}/caller") == 403
    logged = daemon_events_when(stack, "signature_rejected", 2)
    assert [r.get("upgrade", False) for r in logged[-2:]] == [False, True]
    assert logged[-2]["route"] == f"/twilio/status/{hit.call_id}/operator"
    assert healthz(stack)["rejected"]["bad_signature"] == rejected_before + 2
    after = time.time()
    case.wait_heard(hit.caller_sid, after)
    case.wait_heard(hit.operator_sid, after)
    assert not daemon_events(stack, "call_ended", call_id=hit.call_id)
    case.hang_up(hit.caller_sid)
    assert case.ended()["reason"] == "caller_hangup"
    case.assert_trouble()  # the forgeries are the server's business, not the call's
    case.finish()


# ---- the daemon itself ----------------------------------------------------------------------


def test_sigterm_ends_all_three_calls_and_exits_within_the_grace(matrix: Matrix) -> None:
    stack = matrix.stack
    assert stack.daemon is not None and matrix.background_alive()
    hit = place(stack)
    bridge(stack, hit)
    calls = [*matrix.background, hit]
    start = time.monotonic()
    stack.daemon.popen.send_signal(signal.SIGTERM)
    draining = daemon_event(stack, "shutting_down")
    assert draining["active_calls"] == 3
    ended = [daemon_event(stack, "call_ended", call_id=c.call_id) for c in calls]
    ended_after = time.monotonic() - start
    code = stack.daemon.popen.wait(timeout=30)
    exited_after = time.monotonic() - start
    print(f"fault matrix SIGTERM: call_ended {ended_after:.2f} s, exit {exited_after:.2f} s")
    assert code == 0
    assert [e["reason"] for e in ended] == ["shutdown"] * 3
    assert ended_after <= GRACE_S + SHUTDOWN_END_S + 1.0
    assert exited_after <= GRACE_S + EXIT_WITHIN_S
    assert len(daemon_events(stack, "shutting_down")) == 1
    sids = [s for c in calls for s in (c.caller_sid, c.operator_sid)]
    report = wait_report(stack, "twilio", lambda r: terminal(r, sids), what="every phone free")
    for sid in sids:
        assert call_of(report, sid)["end_reason"] == "rest_completed", call_of(report, sid)
    wait_report(stack, "palabra", _no_live_session, what="every Palabra session closed")


def test_kill_9_then_restart_ends_the_calls_it_left(matrix: Matrix) -> None:
    """The daemon is killed with three calls live: two bridged, one whose operator's phone is
    ringing. Restarted, it ends at Twilio every call its store still holds live and marks them
    ``interrupted``: both phones of every call are free within 10 s."""
    stack = matrix.stack
    assert stack.daemon is not None
    stack.daemon.stop()  # SIGTERM'd by the case before; stopped here when run alone
    stack.restart_daemon(0)
    calls = [place(stack), place(stack)]
    for hit in calls:
        bridge(stack, hit)
    stack.sim_post("twilio", "/_sim/faults", {"default_operator": {"answer_delay_s": RING_S}})
    ringing = place(stack)
    calls.append(ringing)
    dialed = daemon_event(stack, "operator_dialed", call_id=ringing.call_id)
    wait_report(
        stack,
        "twilio",
        lambda r: call_of(r, dialed["operator_sid"])["status"] == "ringing",
        what="the third call's operator ringing",
    )
    stack.sim_post("twilio", "/_sim/faults", {"default_operator": {}})
    sids = [s for c in calls for s in (c.caller_sid, *c.operator_sids(stack))]
    stack.kill_daemon(0)
    assert stack.daemons[0].popen.returncode == -signal.SIGKILL
    stack.restart_daemon(0)
    restarted = time.monotonic()
    report = wait_report(
        stack,
        "twilio",
        lambda r: terminal(r, sids),
        timeout_s=RESTART_FREES_WITHIN_S,
        what="every phone free after the restart",
    )
    print(f"fault matrix restart: phones free {time.monotonic() - restarted:.2f} s after")
    assert call_of(report, dialed["operator_sid"])["end_reason"] == "rest_canceled"
    # The store is updated once Twilio has answered every end (after the phones are free).
    done = daemon_event(stack, "recovery_done")
    assert sorted(done["call_ids"]) == sorted(hit.call_id for hit in calls)
    headers = {"Authorization": f"Bearer {stack.options.web_token}"}

    def stored(call_id: str) -> tuple[str, str | None]:
        call = stack.http.get(f"{stack.app_url}/api/calls/{call_id}", headers=headers).json()
        return call["call"]["status"], call["call"]["end_reason"]

    for hit in calls:  # the store's writer commits in the background: allow it a moment
        wait_until(
            lambda: stored(hit.call_id) == ("ended", "interrupted"),  # noqa: B023
            f"call {hit.call_id} stored as ended, interrupted",
        )
    wait_report(stack, "palabra", _no_live_session, what="every Palabra session closed")
    assert healthz(stack)["active_calls"] == 0


# ---- helpers ----------------------------------------------------------------------------------


def _wall(record: dict[str, object]) -> float:
    """A daemon log record's time as ``time.time()`` seconds (its ``ts`` is ISO 8601 UTC)."""
    return datetime.fromisoformat(str(record["ts"])).timestamp()


def _no_live_session(report: dict[str, object]) -> bool:
    connections = report["connections"]
    assert isinstance(connections, list)
    return all(c["closed_at"] is not None for c in connections)


def _forged_upgrade(stack: Stack, path: str) -> int:
    """A WebSocket upgrade of ``path`` signed with the wrong token; returns the HTTP status."""
    url = stack.app_url.replace("http", "ws", 1) + path
    forged = RequestValidator("not-the-auth-token").compute_signature(url, {})
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.app_port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"X-Twilio-Signature: {forged}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.app_port), timeout=10) as sock:
        sock.sendall(head.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])
