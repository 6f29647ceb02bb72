"""Playback buffer semantics over a real socket: marks after playback, clear, redirects, warnings."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import trio

from callbridge.sim.twilio import Scenario
from callbridge.sim.twilio.scenario import (
    CallerSpec,
    Fault,
    ScenarioError,
    Timing,
    scenario_from_dict,
)
from tests.sim_twilio.harness import FakeApp, WsConn, running


async def test_marks_echo_after_playback_immediately_when_empty_and_on_clear() -> None:
    async def handler(conn: WsConn) -> None:
        await conn.recv_until("start")
        await conn.send_mark("empty")  # nothing buffered: echoed at once
        await conn.send_media(b"\x00" * 3200)  # 400 ms
        await conn.send_mark("played")
        await conn.recv_until("mark")
        await conn.recv_until("mark")
        await conn.send_media(b"\x00" * 16000)  # 2 s
        await conn.send_mark("cleared")
        await conn.send({"event": "clear", "streamSid": conn.stream_sid})
        await conn.recv_until("mark")
        await conn.recv_until("stop")

    app = FakeApp(ws_handler=handler)
    with trio.fail_after(6):
        async with running(Scenario(caller=CallerSpec(hangup_at_s=1.2)), app) as (sim, _):
            sim.start_inbound_call()
            assert await sim.wait_idle(5)
    (conn,) = app.sockets
    marks = [(t, m["mark"]["name"]) for t, m in conn.events("mark")]
    assert [name for _, name in marks] == ["empty", "played", "cleared"]
    start_t = conn.events("start")[0][0]
    assert marks[0][0] - start_t < 0.1
    assert 0.36 < marks[1][0] - start_t < 0.6, "echoed once 400 ms had played"
    assert marks[2][0] - marks[1][0] < 0.15, "clear echoes pending marks right away"
    stream = sim.report()["streams"][0]
    assert [m["cleared"] for m in stream["marks"]] == [False, False, True]
    assert stream["clears"][0]["marks"] == ["cleared"] and stream["clears"][0]["cleared_ms"] > 1800
    assert stream["underrun_events"] >= 1 and stream["longest_underrun_ms"] >= 20


async def test_ticks_the_simulator_itself_was_late_for_do_not_count_as_underruns() -> None:
    async def handler(conn: WsConn) -> None:
        await conn.recv_until("start")
        await conn.send_media(b"\x00" * 800)  # 100 ms, then nothing: on-time underruns
        await trio.sleep(0.3)
        time.sleep(0.12)  # the fault injected: the whole loop, simulator included, stalls
        await conn.recv_until("stop")

    app = FakeApp(ws_handler=handler)
    with trio.fail_after(6):
        async with running(Scenario(caller=CallerSpec(hangup_at_s=0.8)), app) as (sim, _):
            sim.start_inbound_call()
            assert await sim.wait_idle(5)
    stream = sim.report()["streams"][0]
    assert stream["late_ticks"] >= 4
    assert stream["underrun_frames_while_late"] >= 4  # the stall's catch-up ticks, set apart
    assert len(stream["underrun_runs"]) >= 2  # the run before the stall ended at the stall
    assert stream["underrun_frames"] >= 5  # on-time empty ticks still count
    # Each empty tick is counted once, in one place: at most one per 20 ms after the 100 ms.
    assert stream["underrun_frames"] + stream["underrun_frames_while_late"] <= (0.8 - 0.1) / 0.02


async def test_play_loops_until_redirected_by_rest() -> None:
    app = FakeApp(
        client_twiml=lambda a: '<Response><Play loop="0">https://x/hold.wav</Play></Response>'
    )
    with trio.fail_after(6):
        async with running(Scenario(timing=Timing(say_ms_per_char=10)), app) as (sim, _):
            call = sim.start_inbound_call()
            await trio.sleep(0.3)
            assert call.status == "in-progress"
            await call.redirect(twiml="<Response><Say>now</Say><Hangup/></Response>", url=None)
            assert await sim.wait_idle(4)
    kinds = [(e["kind"], e.get("url") or e.get("text")) for e in sim.parties["caller"].events]
    assert kinds == [("play", "https://x/hold.wav"), ("say", "now")]
    assert call.status == "completed"


async def test_protocol_errors_become_warnings_and_stream_goes_on() -> None:
    async def handler(conn: WsConn) -> None:
        await conn.recv_until("start")
        from quart import websocket

        await websocket.send(b"\x01\x02")
        await websocket.send("not json")
        await conn.send({"event": "mark", "streamSid": conn.stream_sid})  # no mark object
        await conn.send({"event": "media", "streamSid": "MZwrong", "media": {"payload": ""}})
        await conn.send_mark("still-works")
        await conn.recv_until("mark")
        await conn.recv_until("stop")

    app = FakeApp(ws_handler=handler)
    with trio.fail_after(6):
        async with running(Scenario(caller=CallerSpec(hangup_at_s=0.6)), app) as (sim, _):
            sim.start_inbound_call()
            assert await sim.wait_idle(5)
    stream = sim.report()["streams"][0]
    assert [w["code"] for w in stream["warnings"]] == [31950, 31951, 31951, 31951]
    assert [w["first"] for w in stream["warnings"]] == [True, True, False, False]
    assert app.sockets[0].events("mark")[0][1]["mark"]["name"] == "still-works"


async def test_caller_hangs_up_while_operator_rings() -> None:
    def twiml(app: FakeApp) -> str:
        return "<Response><Pause length='5'/></Response>"

    app = FakeApp(client_twiml=twiml)
    scenario = Scenario(
        caller=CallerSpec(hangup_while_operator_rings=True), timing=Timing(ring_delay_s=0.05)
    )
    with trio.fail_after(6):
        async with running(scenario, app) as (sim, _):
            caller = sim.start_inbound_call()
            await trio.sleep(0.2)
            op = sim.create_outbound_call(
                {"To": "+1", "From": "+2", "Twiml": "<Response/>", "Timeout": "5"}
            )
            await caller.ended.wait()
            assert op.status == "ringing"
            await sim.hangup(party="operator")
            assert await sim.wait_idle(4)
    assert (
        caller.end_reason == "caller_hangup_while_operator_rings" and caller.status == "completed"
    )
    assert op.status == "canceled"


async def test_fault_switches_signatures_binary_malformed_abrupt() -> None:
    faults = (
        Fault("bad_signature", target="webhooks", times=1),
        Fault("missing_signature", target="websocket"),
        Fault("binary_frame", party="caller", at_s=0.1),
        Fault("malformed_json", party="caller", at_s=0.15),
        Fault("abrupt_close", party="caller", at_s=0.4),
    )

    async def handler(conn: WsConn) -> None:
        await conn.recv_until("start")
        while True:
            await conn.recv()

    app = FakeApp(ws_handler=handler)
    with trio.fail_after(6):
        async with running(Scenario(faults=faults), app) as (sim, _):
            call = sim.start_inbound_call()
            assert await sim.wait_idle(5)
    incoming = app.of_kind("/twiml/client")[0]
    assert incoming["signature"] and not incoming["valid"], "signed with a wrong token"
    conn = app.sockets[0]
    assert conn.signature is None
    assert any(m == b"\x00\x01binary" for _, m in conn.received)
    assert not conn.events("stop"), "abrupt close sends no stop"
    stream = sim.report()["streams"][0]
    assert [f["kind"] for f in stream["faults"]] == [
        "binary_frame",
        "malformed_json",
        "abrupt_close",
    ]
    assert stream["end_reason"] == "aborted" and call.status == "completed"


async def test_slow_reader_delays_mark_echo() -> None:
    async def handler(conn: WsConn) -> None:
        await conn.recv_until("start")
        await trio.sleep(0.15)
        await conn.send_mark("late")
        await conn.recv_until("mark")
        await conn.recv_until("stop")

    app = FakeApp(ws_handler=handler)
    scenario = Scenario(
        caller=CallerSpec(hangup_at_s=1.2),
        faults=(Fault("slow_reader", party="caller", at_s=0.05, duration_s=0.6),),
    )
    with trio.fail_after(6):
        async with running(scenario, app) as (sim, _):
            sim.start_inbound_call()
            assert await sim.wait_idle(5)
    (mark,) = sim.report()["streams"][0]["marks"]
    conn = app.sockets[0]
    echo_t = conn.events("mark")[0][0]
    assert echo_t - conn.events("start")[0][0] > 0.55, "the sim did not read while paused"
    assert mark["echoed_at"] is not None


async def test_faults_aimed_at_a_live_call_fire_on_its_stream_only() -> None:
    """``POST /_sim/faults`` with ``call_sid``: a live stream of that call gets the fault
    ``at_s`` after it was added; a fault aimed at another call is kept for that call's
    streams and fires nowhere else. ``oversized_frame`` sends one JSON text message of exactly
    ``size_bytes`` characters."""

    async def handler(conn: WsConn) -> None:
        await conn.recv_until("start")
        while True:
            await conn.recv()

    app = FakeApp(ws_handler=handler)
    with trio.fail_after(6):
        async with running(Scenario(), app) as (sim, _), httpx.AsyncClient() as http:
            call = sim.start_inbound_call()
            while call.stream is None or call.stream.started_at is None:
                await trio.sleep(0.01)
            aimed = [
                {"kind": "binary_frame", "call_sid": call.sid},
                {"kind": "oversized_frame", "call_sid": call.sid, "size_bytes": 70000},
                {"kind": "malformed_json", "call_sid": "CA" + "0" * 32},
            ]
            armed = await http.post(sim.url + "/_sim/faults", json={"faults": aimed})
            while len(call.stream.fault_log) < 2:
                await trio.sleep(0.01)
            await sim.hangup(call_sid=call.sid)
            assert await sim.wait_idle(5)
    assert armed.json()["injected"] == 2
    assert [f.call_sid for f in sim.faults] == ["CA" + "0" * 32]  # kept for its own call
    (conn,) = app.sockets
    assert any(m == b"\x00\x01binary" for _, m in conn.received)
    (big,) = [m for _, m in conn.received if isinstance(m, dict) and "pad" in m]
    assert big["event"] == "media" and big["streamSid"] == conn.stream_sid
    (raw,) = [m for _, m in conn.events("media") if "pad" in m]
    assert len(json.dumps(raw, separators=(", ", ": "))) == 70000
    stream = sim.report()["streams"][0]
    assert sorted(f["kind"] for f in stream["faults"]) == ["binary_frame", "oversized_frame"]
    assert stream["end_reason"] == "stopped"


async def test_fault_size_must_be_a_positive_integer() -> None:
    with pytest.raises(ScenarioError, match="size_bytes"):
        scenario_from_dict({"faults": [{"kind": "oversized_frame", "size_bytes": 0}]})
