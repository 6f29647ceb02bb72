"""What the fake Twilio offers load tests: /_sim/stats windows, tone onsets, lean recording,
and calls spread over several apps."""

from __future__ import annotations

import base64

import httpx
import trio

from callbridge.sim.twilio import Scenario
from callbridge.sim.twilio.scenario import CallerSpec, ToneSpec
from tests.sim_twilio.harness import FakeApp, WsConn, running

TONES = ToneSpec(on_s=0.2, off_s=0.3, start_delay_s=0.1)


async def late_echo(conn: WsConn) -> None:
    """Echo each frame back, except that frame 30 is held back 70 ms (then sent with 31)."""
    await conn.recv_until("start")
    held: list[bytes] = []
    count = 0
    while True:
        msg = await conn.recv()
        if msg.get("event") != "media":
            if msg.get("event") == "stop":
                return
            continue
        count += 1
        payload = base64.b64decode(msg["media"]["payload"])
        if count == 30:
            held.append(payload)
            continue
        if held:
            await trio.sleep(0.05)  # 70 ms after frame 30 was due: three ticks find it dry
            await conn.send_media(held.pop())
        await conn.send_media(payload)


async def test_stats_window_reports_lateness_gaps_and_tone_onsets_then_starts_anew() -> None:
    app = FakeApp(ws_handler=late_echo)
    scenario = Scenario(caller=CallerSpec(hangup_at_s=2.0), tone=TONES)
    with trio.fail_after(10):
        async with running(scenario, app, detect_tones=(500.0, 800.0)) as (sim, _):
            sim.start_inbound_call()
            while not sim.streams or sim.streams[0].started_at is None:
                await trio.sleep(0.01)
            await trio.sleep(1.0)  # bursts said at 0.1 s and 0.6 s (more on a busy machine)
            async with httpx.AsyncClient() as client:
                first = (await client.post(f"{sim.url}/_sim/stats")).json()
            second = sim.window_stats()
            assert await sim.wait_idle(5)
            last = sim.window_stats()
    (stream,) = first["streams"]
    assert stream["live"] and stream["party"] == "caller" and stream["url"].endswith("/caller")
    assert 0 <= stream["phase_ms"] < 20
    # The echo plays the caller's own bursts back (0.1 s, 0.6 s, ...): each is heard, the first
    # a tick or two after it was said (frame 30, which starts the second, is held back).
    said, heard = stream["said_onsets"], stream["heard_onsets"]["500"]
    assert len(said) >= 2 and len(said) - 1 <= len(heard) <= len(said)  # the last: maybe not yet
    assert 0 < heard[0] - said[0] < 0.1 and stream["heard_onsets"]["800"] == []
    # Frame 30 came after ticks had found the buffer dry: a late message, and those gaps.
    assert first["lateness"]["over_20ms"] >= 1 and first["lateness"]["max_ms"] >= 40
    assert stream["underrun_frames"] >= 2 and first["jitter"]["max_ms"] >= 40
    assert first["lateness"]["messages"] >= 40  # about 50 in the second
    # A new window: nothing counted twice.
    (again,) = second["streams"]
    assert not set(again["said_onsets"]) & set(said)
    assert again["underrun_frames"] < stream["underrun_frames"]
    assert second["lateness"]["messages"] < first["lateness"]["messages"]
    # After the hang-up the stream reports once more (not live), then never again.
    assert [s["live"] for s in last["streams"]] == [False]
    assert sim.window_stats()["streams"] == []


async def test_without_recording_no_frames_are_kept() -> None:
    with trio.fail_after(10):
        async with running(Scenario(caller=CallerSpec(hangup_at_s=0.6)), recording=False) as (
            sim,
            _,
        ):
            sim.start_inbound_call()
            assert await sim.wait_idle(5)
    party = sim.parties["caller"]
    assert party.heard == [] and party.said == []
    assert sim.report()["streams"][0]["messages_out"]["media"] >= 20  # the stream still ran


async def test_a_caller_may_dial_another_app_than_the_simulators() -> None:
    app = FakeApp()
    with trio.fail_after(10):
        async with running(Scenario(), app) as (sim, _):
            other = CallerSpec(app_url=app.url + "/second-daemon")
            sim.start_inbound_call(other)
            await app.got_request.wait()
            await sim.hangup(party="caller")
            assert await sim.wait_idle(5)
    assert app.requests[0]["path"] == "/second-daemon/twiml/client"
