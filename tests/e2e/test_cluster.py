"""Three instances behind one number, on Redis and PostgreSQL (issue 14's "done when").

One module-scoped cluster (``Stack`` with ``daemons=3``): Redis and PostgreSQL started by the test
fixtures (``tests/servers.py``), the Twilio and Palabra simulators, and a voice-webhook balancer
at the shared ``server.public_url`` (``callbridge.sim.balancer``). Every instance's
``cluster.instance_url`` is its own address, so both kinds of URL (and of signature) are real.
Every wait is an event with a generous deadline; nothing sleeps for timing.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import psycopg
import pytest
import redis
from twilio.request_validator import RequestValidator

from callbridge.config import PromptsConfig
from callbridge.sim.stack import AUTH_TOKEN, Stack, StackOptions
from tests.e2e.cluster_helpers import (
    EVENT_TIMEOUT_S,
    Leases,
    api,
    call_id_of,
    events,
    feed_messages,
    stored_call,
    wait_until,
)
from tests.e2e.conftest import FAST_PALABRA, call_of, calls_of, rest_updates, webhooks_of
from tests.servers import PgCluster

pytestmark = pytest.mark.e2e

OPERATORS = [f"+155503000{n:02d}" for n in range(1, 13)]
SLOW = OPERATORS[-1]  # rings 50 s before answering; busy elsewhere unless a test wants it
FAST = OPERATORS[:-1]
MAX_CALLS = 10
BUSY = PromptsConfig().busy["en"]
TERMINAL = {"completed", "canceled", "busy", "failed", "no-answer"}
DEAD_INSTANCE_ENDED_WITHIN_S = 15.0


@pytest.fixture(scope="module")
def cluster(
    redis_server: str, pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Leases, str]]:
    database = f"e2e_{secrets.token_hex(4)}"
    pg_cluster.admin(f"CREATE DATABASE {database} OWNER callbridge")
    prefix = f"e2e{secrets.token_hex(3)}"
    workdir = tmp_path_factory.mktemp("cluster")
    print(f"e2e cluster logs: {workdir}")
    (workdir / "scenario.json").write_text(
        json.dumps({"operators": {SLOW: {"answer_delay_s": 50.0}}}), encoding="utf-8"
    )
    options = StackOptions(
        workdir=workdir,
        daemons=3,
        redis_url=redis_server,
        database_url=pg_cluster.url(database),
        cluster_prefix=prefix,
        operators=OPERATORS,
        max_calls=MAX_CALLS,
        ring_timeout_s=60,
        shutdown_grace_s=30.0,
        heartbeat_s=1.0,  # dead after 3 s; slots survive a loaded machine's late beats
        palabra_args=FAST_PALABRA,
        twilio_args=["--scenario", str(workdir / "scenario.json")],
    )
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    leases = Leases(client, prefix)
    leases.hold([SLOW])  # another instance's operator, as far as this cluster knows
    with Stack(options) as stack:
        yield stack, leases, pg_cluster.url(database)
    client.close()
    pg_cluster.admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def owner_of(stack: Stack, caller_sid: str) -> int:
    assert stack.balancer is not None
    routed = [index for sid, index in stack.balancer.routed if sid == caller_sid]
    return routed[0]


def bridged(stack: Stack, call_id: str) -> bool:
    return bool(events(stack, "call_bridged", call_id=call_id))


def stored_end(stack: Stack, index: int, call_id: str) -> str:
    """The call's end reason in the shared store, read through instance ``index``, once the
    owner's writer has committed it (a few ms after the call ended)."""
    wait_until(
        f"{call_id} stored as ended", lambda: stored_call(stack, index, call_id)["end_reason"]
    )
    return str(stored_call(stack, index, call_id)["end_reason"])


def draining(leases: Leases, instance_id: str) -> bool:
    return (leases.instance_info(instance_id) or {}).get("draining") is True


def hang_up(stack: Stack, caller_sid: str) -> None:
    stack.sim_post("twilio", "/_sim/hangup", {"call_sid": caller_sid})


def place_on(stack: Stack, index: int) -> tuple[str, str]:
    """A call the balancer hands to instance ``index``: (caller CallSid, call id)."""
    assert stack.balancer is not None
    stack.balancer.pin(index)
    try:
        sid = stack.place_call()
        call_id, owner = call_id_of(stack, sid)
    finally:
        stack.balancer.pin(None)
    assert owner == index
    return sid, call_id


def heard_busy(report: dict[str, Any], caller_sid: str) -> bool:
    answers = webhooks_of(report, caller_sid, "incoming_call")
    return bool(answers) and BUSY in (answers[-1].get("response_body") or "")


def end_all(stack: Stack, caller_sids: list[str]) -> None:
    for sid in caller_sids:
        hang_up(stack, sid)
    wait_until(
        "every call over at Twilio",
        lambda: all(call_of(stack.report("twilio"), s)["status"] in TERMINAL for s in caller_sids),
    )
    stack.wait_idle(EVENT_TIMEOUT_S)


def assert_no_operator_rang_twice(report: dict[str, Any]) -> None:
    """Each operator number's calls never overlap: no instance dialled a busy operator."""
    by_number: dict[str, list[dict[str, Any]]] = {}
    for call in calls_of(report, "operator"):
        by_number.setdefault(call["to"], []).append(call)
    for number, calls in by_number.items():
        calls.sort(key=lambda c: c["created_at"])
        for before, after in itertools.pairwise(calls):
            assert before["ended_at"] is not None and before["ended_at"] <= after["created_at"], (
                number,
                before["sid"],
                after["sid"],
            )


def assert_everything_reached_the_owner(
    stack: Stack, report: dict[str, Any], call_id: str, owner: int
) -> None:
    base = stack.app_urls[owner]
    hooks = [
        w["url"]
        for w in report["webhooks"]
        if f"/{call_id}/" in w["url"] or w["url"].endswith(f"/{call_id}")
    ]
    assert hooks and all(url.startswith(base + "/") for url in hooks), hooks
    streams = [s["url"] for s in report["streams"] if f"/media/{call_id}/" in s["url"]]
    ws_base = base.replace("http://", "ws://")
    assert len(streams) == 2 and all(url.startswith(ws_base + "/") for url in streams), streams


def test_twelve_calls_ten_bridged_busy_for_the_rest_each_served_by_its_owner(
    cluster: tuple[Stack, Leases, str],
) -> None:
    stack, _leases, _ = cluster
    callers = [stack.place_call() for _ in range(12)]
    wait_until(
        "ten calls bridged and two busy",
        lambda: (
            sum(heard_busy(stack.report("twilio"), s) for s in callers) == 2
            and len(events(stack, "call_bridged")) >= MAX_CALLS
        ),
    )
    report = stack.report("twilio")
    busy = [s for s in callers if heard_busy(report, s)]
    admitted = [s for s in callers if s not in busy]
    assert len(admitted) == MAX_CALLS and len(events(stack, "call_bridged")) == MAX_CALLS
    owners = {s: owner_of(stack, s) for s in callers}
    assert set(owners.values()) == {0, 1, 2}  # spread over the instances, busy ones included
    for sid in busy:  # refused by whichever instance took it: the cluster was full
        refused = events(stack, "call_refused", caller_sid=sid)
        assert [r["reason"] for r in refused] == ["max_calls"]
    assert_no_operator_rang_twice(report)
    live_operators = [c["to"] for c in calls_of(report, "operator") if c["status"] == "in-progress"]
    assert len(live_operators) == len(set(live_operators)) == MAX_CALLS

    ids = {sid: call_id_of(stack, sid) for sid in admitted}
    for sid, (call_id, owner) in ids.items():
        assert owner == owners[sid]
        assert_everything_reached_the_owner(stack, report, call_id, owner)

    # Signatures on both kinds of URL: all of the simulator's traffic passed, forgeries did not.
    assert events(stack, "signature_rejected") == []
    form = {"CallSid": "CA" + "f" * 32, "From": "+15550100009", "To": "+15550100000"}
    for_instance = RequestValidator(AUTH_TOKEN).compute_signature(
        stack.app_urls[0] + "/twiml/client", form
    )
    forged = stack.http.post(
        stack.public_url + "/twiml/client", data=form, headers={"X-Twilio-Signature": for_instance}
    )
    assert forged.status_code == 403
    some_id, owner = next(iter(ids.values()))
    path = f"/twilio/status/{some_id}/operator"
    callback = {"CallSid": "CA" + "e" * 32, "CallStatus": "ringing"}
    for_public = RequestValidator(AUTH_TOKEN).compute_signature(stack.public_url + path, callback)
    misrouted = stack.http.post(
        stack.app_urls[owner] + path, data=callback, headers={"X-Twilio-Signature": for_public}
    )
    assert misrouted.status_code == 403
    assert len(events(stack, "signature_rejected")) == 2

    end_all(stack, admitted)
    report = stack.report("twilio")
    assert_no_operator_rang_twice(report)
    for call_id, owner in ids.values():
        assert_everything_reached_the_owner(stack, report, call_id, owner)
        assert stored_end(stack, (owner + 1) % 3, call_id) == "caller_hangup"


def test_instance_1_shows_a_call_of_instance_3_live_and_resumes(
    cluster: tuple[Stack, Leases, str],
) -> None:
    stack, _leases, _ = cluster
    caller, call_id = place_on(stack, 2)
    wait_until("bridged on instance 3", lambda: bridged(stack, call_id))
    feed = feed_messages(stack, 0, call_id)
    _, snapshot = next(feed)
    assert snapshot["type"] == "snapshot" and snapshot["call"]["id"] == call_id
    # Live: what instance 3 publishes reaches instance 1's page (an utterance as they talk).
    last_id, live = next(feed)
    assert live["type"] == "event" and live["call_id"] == call_id
    feed.close()  # the page drops
    hang_up(stack, caller)
    wait_until("the call ended", lambda: stored_call(stack, 1, call_id)["status"] == "ended")
    # The page comes back, to another instance, from where it was: a replay, not a snapshot.
    resumed = feed_messages(stack, 1, call_id, last_event_id=last_id)
    seen: list[dict[str, Any]] = []
    for _, message in resumed:
        assert message["type"] == "event", message
        seen.append(message)
        if message["kind"] == "call" and message["data"]["status"] == "ended":
            break
    resumed.close()
    assert seen[-1]["data"]["end_reason"] == "caller_hangup"
    stack.wait_idle(EVENT_TIMEOUT_S)


def test_a_killed_instance_calls_are_ended_by_a_survivor_and_the_rest_untouched(
    cluster: tuple[Stack, Leases, str],
) -> None:
    stack, leases, _ = cluster
    calls = {index: [place_on(stack, index) for _ in range(2)] for index in (0, 1, 2)}
    for placed in calls.values():
        for _, call_id in placed:
            wait_until(f"{call_id} bridged", partial(bridged, stack, call_id))
    # One more call on instance 2, whose operator still rings when it dies: every other idle
    # operator is busy elsewhere, so the cluster dials the slow one.
    leases.free([SLOW])
    leases.hold(FAST)
    ringing_caller, ringing_id = place_on(stack, 1)
    wait_until(
        "the slow operator dialled",
        lambda: bool(events(stack, "operator_dialed", call_id=ringing_id)),
    )
    leases.free()
    wait_until(
        "its CallSid stored", lambda: bool(stored_call(stack, 0, ringing_id).get("operator_sid"))
    )
    slow_sid = stored_call(stack, 0, ringing_id)["operator_sid"]

    stack.kill_daemon(1)
    dead = [*calls[1], (ringing_caller, ringing_id)]
    dead_ids = [call_id for _, call_id in dead]
    report = stack.report("twilio")
    assert call_of(report, slow_sid)["status"] == "ringing"
    dead_legs = [sid for sid, _ in dead] + [
        stored_call(stack, 0, c)["operator_sid"] for c in dead_ids
    ]
    wait_until(
        "the dead instance's calls ended at Twilio",
        lambda: all(call_of(stack.report("twilio"), s)["status"] in TERMINAL for s in dead_legs),
        timeout_s=DEAD_INSTANCE_ENDED_WITHIN_S,
    )
    report = stack.report("twilio")
    [cancel] = [u for u in rest_updates(report, slow_sid) if u["form"].get("Status")]
    assert cancel["form"]["Status"] == ["canceled"]
    [takeover] = events(stack, "recovery_done", owner="node-2")
    assert sorted(takeover["call_ids"]) == sorted(dead_ids)
    for call_id in dead_ids:
        assert stored_end(stack, 2, call_id) == "interrupted"
    survivors = [c for index in (0, 2) for c in calls[index]]
    for sid, call_id in survivors:  # untouched: still live at Twilio and in their instance
        assert call_of(report, sid)["status"] == "in-progress"
        assert not events(stack, "call_ended", call_id=call_id)

    stack.restart_daemon(1)  # back under its own id: nothing of it left to recover
    stack.daemons[1].wait_for(lambda r: r.get("event") == "store_open", EVENT_TIMEOUT_S)
    assert not [e for e in stack.daemons[1].events("recovery_done")]
    end_all(stack, [sid for sid, _ in survivors])
    for _, call_id in survivors:
        assert stored_end(stack, 1, call_id) == "caller_hangup"


def test_a_rolling_restart_loses_no_call(cluster: tuple[Stack, Leases, str]) -> None:
    """SIGTERM one instance at a time: it says it is draining, takes no new call (behind a plain
    round-robin proxy it hands each one back with ``<Redirect>``, and another instance bridges
    it), its own calls go on until their callers hang up, it exits cleanly and starts again.
    Every call ends ``caller_hangup``: none cut by the restart, none refused."""
    stack, leases, _ = cluster
    assert stack.balancer is not None
    stack.balancer.check_ready = False  # nginx without health checks: plain round-robin
    placed: dict[str, tuple[str, int]] = {}  # caller CallSid -> (call id, owner)
    live: set[str] = set()
    for index in (0, 1, 2):
        sid, call_id = place_on(stack, index)
        placed[sid] = (call_id, index)
        live.add(sid)
        wait_until("bridged before the drain", partial(bridged, stack, call_id))
        stopping = threading.Thread(target=stack.stop_daemon, args=(index,))
        stopping.start()
        wait_until("the heartbeat says draining", partial(draining, leases, f"node-{index + 1}"))
        # Calls arriving during the drain go to the other instances and are bridged: through a
        # plain round-robin proxy, the one routed to the draining instance is handed back.
        for _ in range(3):
            caller = stack.place_call()
            call_id, owner = call_id_of(stack, caller)
            assert owner != index
            placed[caller] = (call_id, owner)
            live.add(caller)
            wait_until("bridged elsewhere", partial(bridged, stack, call_id))
        # The draining instance's calls finish: their callers hang up, and it exits.
        for sid in [s for s in live if placed[s][1] == index]:
            hang_up(stack, sid)
            live.discard(sid)
        stopping.join(timeout=EVENT_TIMEOUT_S)
        assert stack.daemons[index].popen.returncode == 0
        stack.restart_daemon(index)
    stack.balancer.check_ready = True
    report = stack.report("twilio")
    assert not any(heard_busy(report, sid) for sid in placed)
    handed = {r["caller_sid"] for r in events(stack, "call_handed_off")}
    assert handed and handed <= set(placed)  # draining instances handed calls back
    end_all(stack, sorted(live))
    for sid, (call_id, _) in placed.items():
        wait_until("call_ended logged", partial(events, stack, "call_ended", call_id=call_id))
        ended = events(stack, "call_ended", call_id=call_id)
        assert [e["reason"] for e in ended] == ["caller_hangup"], (sid, ended)


def test_every_transcript_is_in_postgresql_and_exportable_from_any_instance(
    cluster: tuple[Stack, Leases, str],
) -> None:
    stack, _leases, database_url = cluster
    started = {r["call_id"] for r in events(stack, "call_started")}
    if not started:  # run on its own: one call of its own
        caller, call_id = place_on(stack, 0)
        wait_until("bridged", lambda: bridged(stack, call_id))
        end_all(stack, [caller])
        started = {call_id}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, status, end_reason, owner FROM calls").fetchall()
        spoken = conn.execute("SELECT DISTINCT call_id FROM utterances").fetchall()
    stored = {row[0]: row for row in rows}
    assert started <= set(stored)
    assert all(row[1] == "ended" and row[2] for row in rows), rows
    assert {row[3] for row in rows} <= {"node-1", "node-2", "node-3"}
    with_speech = {row[0] for row in spoken}
    assert with_speech, "no utterance reached PostgreSQL"
    for call_id in sorted(with_speech)[:5]:
        exports = [api(stack, index, f"/api/calls/{call_id}/transcript.txt") for index in range(3)]
        assert all(e.status_code == 200 for e in exports)
        assert exports[0].text == exports[1].text == exports[2].text and exports[0].text.strip()
