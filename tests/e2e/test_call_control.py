"""Call control over Twilio, end to end: the real ``callbridge serve`` between the Twilio and
Palabra simulators (separate processes, loopback, real time).

Each test drives one scenario and asserts on three independent witnesses: the daemon's own log
(``call_ended`` reason and counters), the Twilio simulator's report (what the carrier saw: call
statuses, REST requests, webhooks and their answers, what each phone heard) and, where it
matters, the daemon's ``/healthz``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio
from trio_websocket import ConnectionRejected, wrap_client_stream

from callbridge.config import PromptsConfig
from callbridge.sim.stack import ACCOUNT_SID, OPERATORS
from tests.e2e.conftest import (
    APOLOGY,
    StackFactory,
    assert_apology,
    assert_hung_up_by_daemon,
    call_of,
    calls_of,
    daemon_event,
    daemon_events,
    daemon_events_when,
    healthz,
    heard_translation_both_ways,
    rest_updates,
    rms_dbfs,
    signature,
    wait_report,
    wav_pcm,
    webhooks_of,
)

pytestmark = pytest.mark.e2e

FIRST, SECOND = OPERATORS
BUSY = PromptsConfig().busy["en"]
SIG = "X-Twilio-Signature"


def test_happy_path_caller_hangs_up(stack_factory: StackFactory, tmp_path: Path) -> None:
    stack = stack_factory()
    caller_sid = stack.place_call()
    bridged = daemon_event(stack, "call_bridged")
    wait_report(stack, "twilio", heard_translation_both_ways, what="translation heard both ways")
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup"
    assert ended["caller_sid"] == caller_sid and ended["call_id"] == bridged["call_id"]
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    caller = call_of(report, caller_sid)
    (operator,) = calls_of(report, "operator")
    assert ended["operator_sid"] == operator["sid"] and operator["to"] == FIRST
    assert caller["end_reason"] == "caller_hangup" and caller["status"] == "completed"
    # The daemon ended the operator's leg itself, through REST.
    assert operator["status"] == "completed" and operator["end_reason"] == "rest_completed"
    (hangup,) = rest_updates(report, operator["sid"])
    assert hangup["form"]["Status"] == ["completed"] and hangup["status"] == 200
    assert not rest_updates(report, caller_sid)  # the caller was gone: nothing to hang up
    # Both phones heard sound, and the daemon counted media both ways.
    files = stack.sim_post("twilio", "/_sim/write-wavs", {"dir": str(tmp_path / "wavs")})["files"]
    assert {Path(f).name for f in files} >= {"caller-heard.wav", "operator-heard.wav"}
    for party in ("caller", "operator"):
        assert rms_dbfs(wav_pcm(tmp_path / "wavs" / f"{party}-heard.wav")) > -40, party
        assert report["parties"][party]["loud_ms"] > 1000, party
        assert ended["media"][party]["frames_in"] > 50 and ended["media"][party]["frames_out"] > 50
    assert healthz(stack)["active_calls"] == 0


def test_no_answer_then_second_operator(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        scenario={"operators": {FIRST: {"outcome": "no-answer"}}},
        daemon_env={"CALLBRIDGE_OPERATORS_RING_TIMEOUT_S": "5"},
    )
    caller_sid = stack.place_call()
    first = daemon_event(stack, "operator_dialed", attempt=1)
    assert first["operator"] == FIRST
    missed = daemon_event(stack, "operator_not_reached", operator_sid=first["operator_sid"])
    assert missed["status"] == "no-answer"
    second = daemon_event(stack, "operator_dialed", attempt=2)
    assert second["operator"] == SECOND
    daemon_event(stack, "operator_answered", operator_sid=second["operator_sid"])
    bridged = daemon_event(stack, "call_bridged")
    assert bridged["operator"] == SECOND and bridged["operator_sid"] == second["operator_sid"]
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["operator"] == SECOND
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    missed_call = call_of(report, first["operator_sid"])
    assert missed_call["to"] == FIRST and missed_call["status"] == "no-answer"
    assert missed_call["answered_at"] is None
    assert call_of(report, second["operator_sid"])["answered_at"] is not None
    assert_hung_up_by_daemon(report, second["operator_sid"])
    # The ring timeout went to Twilio, and the no-answer was reported to (and taken by) the daemon.
    creates = [r for r in report["rest"] if r["endpoint"] == "create"]
    assert [c["form"]["To"] for c in creates] == [[FIRST], [SECOND]]
    assert all(c["form"]["Timeout"] == ["5"] for c in creates)
    no_answer = [
        w for w in report["webhooks"]
        if w["call_sid"] == first["operator_sid"] and w["params"].get("CallStatus") == "no-answer"
    ]  # fmt: skip
    assert no_answer and all(w["status"] == 204 for w in no_answer)
    assert caller_sid == ended["caller_sid"]


def test_all_operators_busy_caller_hears_apology(stack_factory: StackFactory) -> None:
    stack = stack_factory(scenario={"default_operator": {"outcome": "busy"}})
    caller_sid = stack.place_call()
    ended = stack.call_ended()
    assert ended["reason"] == "no_operator"
    assert [e["status"] for e in daemon_events(stack, "operator_not_reached")] == [
        "busy",
        "busy",
    ]
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    assert sorted(c["to"] for c in calls_of(report, "operator")) == sorted(OPERATORS)
    assert all(c["status"] == "busy" for c in calls_of(report, "operator"))
    assert_apology(report, caller_sid, APOLOGY)
    assert healthz(stack)["active_calls"] == 0


def test_caller_hangs_up_while_operator_rings(stack_factory: StackFactory) -> None:
    # The operator would ring until Twilio's timeout: only the daemon's cancel ends it early.
    stack = stack_factory(scenario={"default_operator": {"answer_delay_s": 60}})
    caller_sid = stack.place_call()
    dialed = daemon_event(stack, "operator_dialed")
    daemon_event(stack, "media_started", role="caller")  # the caller is on hold, listening
    wait_report(
        stack,
        "twilio",
        lambda r: call_of(r, dialed["operator_sid"])["status"] == "ringing",
        what="operator ringing",
    )
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup"
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    assert call_of(report, caller_sid)["end_reason"] == "caller_hangup"
    assert_hung_up_by_daemon(report, dialed["operator_sid"], status="canceled")
    assert call_of(report, dialed["operator_sid"])["answered_at"] is None
    assert not daemon_events(stack, "call_bridged")


def test_operator_hangs_up_mid_call(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    caller_sid = stack.place_call()
    bridged = daemon_event(stack, "call_bridged")
    stack.sim_post("twilio", "/_sim/hangup", {"party": "operator"})

    ended = stack.call_ended()
    assert ended["reason"] == "operator_hangup"
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    operator = call_of(report, bridged["operator_sid"])
    assert operator["end_reason"] == "operator_hangup"
    assert not rest_updates(report, operator["sid"])  # already gone: no REST for it
    assert_hung_up_by_daemon(report, caller_sid)
    assert healthz(stack)["active_calls"] == 0


def test_max_calls_refuses_second_caller(stack_factory: StackFactory) -> None:
    stack = stack_factory(daemon_env={"CALLBRIDGE_SERVER_MAX_CALLS": "1"})
    first_sid = stack.place_call()
    daemon_event(stack, "call_bridged")
    second_sid = stack.place_call(**{"from": "+15550100002"})
    refused = daemon_event(stack, "call_refused")
    assert refused["caller_sid"] == second_sid and refused["reason"] == "max_calls"
    report = wait_report(
        stack,
        "twilio",
        lambda r: call_of(r, second_sid)["status"] == "completed",
        what="second caller done",
    )
    second = call_of(report, second_sid)
    assert [v["verb"] for v in second["verbs"]] == ["Say", "Hangup"]
    assert second["end_reason"] == "twiml_end" and not second["streams"]
    (webhook,) = [w for w in report["webhooks"] if w["call_sid"] == second_sid]
    assert webhook["status"] == 200 and BUSY in webhook["response_body"]
    # The first call did not notice: still up, then ends the ordinary way.
    assert call_of(report, first_sid)["status"] == "in-progress"
    assert healthz(stack)["active_calls"] == 1
    stack.sim_post("twilio", "/_sim/hangup", {"call_sid": first_sid})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["caller_sid"] == first_sid
    assert stack.wait_idle(30)
    assert len(daemon_events(stack, "call_started")) == 1
    assert len(daemon_events(stack, "call_ended")) == 1
    assert len(calls_of(stack.report("twilio"), "operator")) == 1


def test_bad_and_missing_signatures_are_refused(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        scenario={
            "faults": [
                {"kind": "bad_signature", "target": "webhooks", "times": 1},
                {"kind": "missing_signature", "target": "webhooks", "times": 1},
            ],
            "default_operator": {"answer_delay_s": 5},  # refused callers find it still ringing
        },
        config_toml="[media]\nlegs_connect_timeout_s = 4\n",
    )
    # HTTP: two incoming calls, one signed with the wrong token, one not signed at all.
    forged = [stack.place_call(), stack.place_call()]
    report = wait_report(
        stack,
        "twilio",
        lambda r: all(call_of(r, sid)["status"] == "completed" for sid in forged),
        what="refused callers done",
    )
    hooks = [w for sid in forged for w in webhooks_of(report, sid, "incoming_call")]
    assert sorted(w["signed"] for w in hooks) == [False, True]
    assert all(w["status"] == 403 for w in hooks)
    rejected = daemon_events_when(stack, "signature_rejected", 2, route="/twiml/client")
    assert sorted(r["present"] for r in rejected) == [False, True]
    assert not daemon_events(stack, "call_started")

    # WebSocket: good webhooks, then one caller's upgrade signed wrong and the next one's unsigned.
    stack.sim_post(
        "twilio",
        "/_sim/faults",
        {
            "faults": [
                {"kind": "bad_signature", "target": "websocket", "times": 1},
                {"kind": "missing_signature", "target": "websocket", "times": 1},
            ]
        },
    )
    for signed in (True, False):
        caller_sid = stack.place_call()
        # Twilio goes on to the <Connect action> (we answer <Hangup/>): the call ends at once,
        # long before any media timeout, and the operator still ringing is cancelled.
        ended = daemon_event(stack, "call_ended", caller_sid=caller_sid)
        assert ended["reason"] == "caller_hangup"
        assert stack.wait_idle(30)
        report = stack.report("twilio")
        (hook,) = webhooks_of(report, caller_sid, "incoming_call")
        assert hook["status"] == 200 and hook["signed"]
        (caller_stream,) = [s for s in report["streams"] if s["call_sid"] == caller_sid]
        assert caller_stream["signed"] is signed and caller_stream["error"] == 31920, caller_stream
        assert caller_stream["started_at"] is None
        (action,) = webhooks_of(report, caller_sid, "connect_action")
        assert action["status"] == 200 and "<Hangup" in action["response_body"]
        assert_hung_up_by_daemon(report, ended["operator_sid"], status="canceled")
        route = urlsplit(caller_stream["url"]).path
        refusal = daemon_event(stack, "signature_rejected", route=route)
        assert refusal["present"] is signed and refusal["upgrade"]
        # Nothing leaked: the daemon holds no call and every leg at the carrier has ended.
        assert healthz(stack)["active_calls"] == 0
        assert all(c["status"] not in ("ringing", "in-progress") for c in report["calls"])
    assert not daemon_events(stack, "call_bridged")


async def _upgrade(port: int, resource: str, sig: str) -> int:
    """Attempt a WebSocket upgrade as Twilio would; the HTTP status (101 when accepted)."""
    status = 101
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    headers = [(SIG.encode(), sig.encode())]
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, tcp, f"127.0.0.1:{port}", resource, extra_headers=headers
            )
            await ws.aclose()
    except* ConnectionRejected as group:
        rejected = group.exceptions[0]
        assert isinstance(rejected, ConnectionRejected)
        status = int(rejected.status_code)
    finally:
        await trio.aclose_forcefully(tcp)  # trio-websocket leaves it open after a rejection
    return status


async def test_unknown_call_ids_are_refused(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    unknown = "no-such-call"
    form = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "0" * 32, "CallStatus": "completed"}
    for path in (f"/twiml/operator/{unknown}", f"/twilio/status/{unknown}/operator"):
        url = stack.app_url + path
        response = stack.http.post(url, data=form, headers={SIG: signature(url, form)})
        if path.startswith("/twiml/"):  # Twilio runs it as TwiML: never a JSON 404
            assert response.status_code == 200, path
            assert "<Hangup />" in response.text
        else:
            assert response.status_code == 404, path
        daemon_event(stack, "unknown_call", route=path)

    resource = f"/media/{unknown}/caller"
    ws_url = stack.app_url.replace("http://", "ws://") + resource
    with trio.fail_after(10):
        assert await _upgrade(stack.app_port, resource, signature(ws_url)) == 404
        assert await _upgrade(stack.app_port, resource, "forged") == 403
    daemon_event(stack, "unknown_call", route=f"/media/{unknown}/caller")
    # The log is read as the daemon writes it: wait for the forged upgrade's line.
    forged = daemon_event(stack, "signature_rejected")
    assert forged["upgrade"] and forged["present"]
    assert healthz(stack)["active_calls"] == 0
    # Our own signatures were good: only the forged upgrade was a signature failure.
    assert len(daemon_events(stack, "signature_rejected")) == 1


def test_duplicated_reordered_callbacks_and_rest_retries(stack_factory: StackFactory) -> None:
    stack = stack_factory(
        scenario={
            "callbacks": {"duplicate": True, "reorder": True, "hold_s": 0.5},
            # 503 on create was refused before any work: safe to retry. The 500 that follows
            # comes after the call was placed: dialling again would ring the operator twice,
            # the call's status callback shows it exists. 500 on a hang-up (an update of one
            # call) is idempotent: safe to retry.
            "rest_errors": [
                {"endpoint": "create", "status": 503, "times": 1},
                {"endpoint": "create", "status": 500, "times": 1, "after_acting": True},
                {"endpoint": "update", "status": 500, "times": 1},
            ],
        }
    )
    caller_sid = stack.place_call()
    bridged = daemon_event(stack, "call_bridged")
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})

    ended = stack.call_ended()
    assert ended["reason"] == "caller_hangup" and ended["caller_sid"] == caller_sid
    assert stack.wait_idle(30)
    report = stack.report("twilio")
    operator_sid = bridged["operator_sid"]
    # One ring despite the failed creates; the hang-up went through on its second attempt.
    assert [c["sid"] for c in calls_of(report, "operator")] == [operator_sid]
    creates = [r for r in report["rest"] if r["endpoint"] == "create"]
    assert [(c["status"], c.get("after_acting", False)) for c in creates] == [
        (503, False),
        (500, True),
    ]
    daemon_event(stack, "operator_call_found", operator_sid=operator_sid)
    updates = rest_updates(report, operator_sid)
    assert [(u["status"], u.get("injected", False)) for u in updates] == [(500, True), (200, False)]
    assert all(u["form"]["Status"] == ["completed"] for u in updates)
    assert call_of(report, operator_sid)["end_reason"] == "rest_completed"
    retries = daemon_events(stack, "twilio_rest_retry")
    assert sorted(r["status"] for r in retries) == [500, 503]
    # Every status callback came twice and at least one pair came out of order.
    callbacks = webhooks_of(report, operator_sid, "status_callback")
    sequence = [int(c["params"]["SequenceNumber"]) for c in callbacks]
    assert sequence[::2] == sequence[1::2], sequence
    assert sequence != sorted(sequence), sequence
    assert {c["params"]["CallStatus"] for c in callbacks} >= {"in-progress", "completed"}
    assert all(c["status"] == 204 for c in callbacks)
    logged = daemon_events_when(stack, "status_callback", len(callbacks), call_sid=operator_sid)
    assert len(daemon_events(stack, "status_callback", call_sid=operator_sid)) == len(logged)
    assert len(daemon_events(stack, "call_ended")) == 1
