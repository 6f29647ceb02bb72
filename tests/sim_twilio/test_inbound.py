"""Inbound call end to end: signed webhook, signed upgrade, start fields, media cadence, stop."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import attrs
import numpy as np
import trio

from callbridge.sim.twilio import Scenario
from callbridge.sim.twilio.audio import read_wav_8k
from callbridge.sim.twilio.scenario import CallerSpec, Timing
from tests.sim_twilio.harness import SID, FakeApp, WsConn, running


async def test_inbound_call_signed_stream_start_cadence_stop_and_callback(tmp_path: Path) -> None:
    caller = CallerSpec(hangup_at_s=1.2)
    scenario = Scenario(caller=caller)
    with trio.fail_after(10):
        async with running(scenario) as (sim, app):
            caller = attrs.evolve(caller, status_callback=app.url + "/twilio/status/c1/caller")
            call = sim.start_inbound_call(caller)
            assert await sim.wait_idle(8)
            files = sim.write_wavs(tmp_path)

    incoming = app.of_kind("/twiml/client")[0]
    assert incoming["valid"], "webhook signature must verify with RequestValidator"
    p = incoming["params"]
    assert p["CallSid"] == call.sid and p["AccountSid"] == SID
    assert p["CallStatus"] == "ringing" and p["Direction"] == "inbound"
    assert p["ApiVersion"] == "2010-04-01" and p["Caller"] == p["From"] and p["Called"] == p["To"]
    assert p["FromCity"] == ""  # empty params are sent and signed

    (conn,) = app.sockets
    assert conn.signature_valid, "upgrade signed over the ws:// URL with no params"
    first, start = conn.received[0][1], conn.received[1][1]
    assert first == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    s = start["start"]
    assert re.fullmatch(r"MZ[0-9a-f]{32}", s["streamSid"]) and start["streamSid"] == s["streamSid"]
    assert s["accountSid"] == SID and s["callSid"] == call.sid and s["tracks"] == ["inbound"]
    assert s["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert s["customParameters"] == {"call_id": "c1", "role": "caller"}

    media = conn.events("media")
    assert len(media) >= 40
    for i, (_, m) in enumerate(media):
        assert m["media"]["chunk"] == str(i + 1) and m["media"]["timestamp"] == str(i * 20)
        assert m["sequenceNumber"] == str(i + 2) and m["media"]["track"] == "inbound"
        assert len(base64.b64decode(m["media"]["payload"])) == 160
    span = media[-1][0] - media[0][0]
    assert abs(span - (len(media) - 1) * 0.02) < 0.1, "real-time 20 ms cadence"

    stop = conn.events("stop")
    assert len(stop) == 1 and stop[0][1]["stop"] == {"accountSid": SID, "callSid": call.sid}
    assert int(stop[0][1]["sequenceNumber"]) == int(media[-1][1]["sequenceNumber"]) + 1

    done = app.of_kind("/twilio/status/c1/caller")
    assert [r["params"]["CallStatus"] for r in done] == ["completed"] and done[0]["valid"]
    assert done[0]["params"]["CallbackSource"] == "call-progress-events"
    assert not app.of_kind("/twiml/stream-ended"), "no <Connect action> after a hang-up"
    assert call.status == "completed"
    assert [h["status"] for h in call.history] == ["ringing", "in-progress", "completed"]

    # The app echoed the caller's voice, so the caller heard 500 Hz bursts.
    heard = read_wav_8k(tmp_path / "caller-heard.wav")
    assert any(f.endswith("caller-heard.wav") for f in files)
    assert 0.8 * 8000 < len(heard) < 1.6 * 8000
    spectrum = np.abs(np.fft.rfft(heard.astype(float)))
    assert abs(np.argmax(spectrum) * 8000 / len(heard) - 500) < 15
    report = sim.report()
    (stream,) = report["streams"]
    assert stream["messages_in"]["media"] >= 40 and stream["end_reason"] == "stopped"


async def test_say_then_hangup_records_heard_text() -> None:
    app = FakeApp(
        client_twiml=lambda a: (
            '<Response><Say language="es-ES">Hola</Say><Hangup/><Say>never</Say></Response>'
        )
    )
    scenario = Scenario(timing=Timing(say_ms_per_char=50))
    with trio.fail_after(5):
        async with running(scenario, app) as (sim, _):
            call = sim.start_inbound_call()
            assert await sim.wait_idle(4)
    said = [e for e in sim.parties["caller"].events if e["kind"] == "say"]
    assert [(e["text"], e["language"], e["duration_s"]) for e in said] == [("Hola", "es-ES", 0.2)]
    assert call.status == "completed" and call.end_reason == "twiml_end"


async def test_app_close_runs_connect_action_and_refused_upgrade_goes_on() -> None:
    async def close_after_start(conn: WsConn) -> None:
        await conn.recv_until("start")

    app = FakeApp(ws_handler=close_after_start, action_twiml="<Response><Say>bye</Say></Response>")
    with trio.fail_after(6):
        async with running(Scenario(timing=Timing(say_ms_per_char=10)), app) as (sim, _):
            call = sim.start_inbound_call()
            assert await sim.wait_idle(5)
    (action,) = app.of_kind("/twiml/stream-ended/c1/caller")
    assert action["valid"] and action["params"]["CallStatus"] == "in-progress"
    assert not app.sockets[0].events("stop"), "no stop after the app closed the socket"
    assert sim.report()["streams"][0]["end_reason"] == "app_closed"
    assert [e["text"] for e in sim.parties["caller"].events] == ["bye"]
    assert call.status == "completed"

    refused = FakeApp(
        reject_ws=True,
        client_twiml=lambda a: _no_action(a) + "",
    )
    with trio.fail_after(6):
        async with running(Scenario(timing=Timing(say_ms_per_char=10)), refused) as (sim, _):
            call = sim.start_inbound_call()
            assert await sim.wait_idle(5)
    assert [e["code"] for e in call.errors] == [31920]
    assert [e["text"] for e in sim.parties["caller"].events] == ["next verb"]


def _no_action(app: FakeApp) -> str:
    from tests.sim_twilio.harness import stream_twiml

    return stream_twiml(app.ws_url, action=False, after="<Say>next verb</Say>")
