"""Fault switches: abrupt drops, stalled output, and the runtime control endpoint."""

from __future__ import annotations

import contextlib

import httpx
import trio
from trio_websocket import ConnectionClosed

from callbridge.sim.palabra.faults import FaultPlan, Faults
from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import open_client, silence, task, tone


class TestFaults:
    def test_counters_fire_n_times_or_always(self) -> None:
        faults = Faults.from_plan(FaultPlan(reject_task=2, wrong_token=-1))
        assert [faults.take_reject_task() for _ in range(3)] == [True, True, False]
        assert all(faults.take_wrong_token() for _ in range(5))
        assert faults.take_session_5xx() is False

    def test_drop_defaults_to_one_connection(self) -> None:
        faults = Faults.from_plan(FaultPlan(drop_after_s=1.5))
        assert [faults.take_drop() for _ in range(2)] == [1.5, None]
        runtime = Faults()
        assert runtime.update({"drop_after_s": 0.5}) == []
        assert runtime.take_drop() == 0.5

    def test_bad_updates_change_nothing(self) -> None:
        faults = Faults()
        problems = faults.update(
            {"reject_task": "x", "stall_output": 1, "nope": True, "drop_mid_speech_chunks": 0}
        )
        assert len(problems) == 4
        assert faults.as_json() == Faults().as_json()

    def test_drop_mid_speech_fires_at_its_chunk(self) -> None:
        faults = Faults.from_plan(FaultPlan(drop_mid_speech=1, drop_mid_speech_chunks=2))
        assert [faults.take_drop_mid_speech(n) for n in (1, 2, 2)] == [False, True, False]
        runtime = Faults()
        assert runtime.update({"drop_mid_speech": -1, "drop_mid_speech_chunks": 1}) == []
        assert all(runtime.take_drop_mid_speech(1) for _ in range(3))


async def test_drop_closes_the_socket_without_a_close_frame(start_sim: StartSim) -> None:
    sim = await start_sim(faults=FaultPlan(drop_after_s=0.2))
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            ready_at = trio.current_time()
            closed = await client.read_until_closed()
            elapsed = trio.current_time() - ready_at
        async with open_client(sim) as second:  # drop_count defaults to 1
            await second.ready(task())
    assert closed.reason is not None
    assert closed.reason.code == 1006  # abnormal: no close frame
    assert 0.15 <= elapsed < 1.0
    first_report = sim.state.connections[0]
    assert first_report.closed_by == "dropped"
    assert first_report.close_code is None


async def test_stalled_output_sends_nothing_until_cleared(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        with trio.fail_after(5):
            async with open_client(sim) as client:
                await client.ready(task())
                armed = await http.post("/_sim/faults", json={"stall_output": True})
                assert armed.json()["faults"]["stall_output"] is True
                with trio.move_on_after(0.1):  # frames sent before the switch may be in flight
                    while True:
                        await client.receive()
                seen = len(client.seen)
                await client.stream(tone(500, 0.3) + silence(0.4))
                with trio.move_on_after(0.3) as quiet:
                    await client.receive()
                assert quiet.cancelled_caught
                assert len(client.seen) == seen
                await http.post("/_sim/faults", json={"stall_output": False})
                await client.stream(silence(0.3))
                await client.receive()  # talking again (queue status at least)
        bad = await http.post("/_sim/faults", json={"stall_output": "yes"})
    assert bad.status_code == 400
    assert bad.json()["ok"] is False
    report = sim.state.connections[0]
    assert report.suppressed_messages > 0
    assert report.utterances[0].validated_at is not None  # it kept working, silently


async def test_drop_mid_speech_leaves_a_sentence_without_its_last_chunk(
    start_sim: StartSim,
) -> None:
    """Dropped right after the 2nd chunk of an utterance's speech: the client got exactly two
    chunks, neither marked last, then an abnormal close; the next connection is untouched."""
    sim = await start_sim(faults=FaultPlan(drop_mid_speech=1, drop_mid_speech_chunks=2))
    with trio.fail_after(10):
        async with open_client(sim) as client:
            await client.ready(task())
            with contextlib.suppress(ConnectionClosed):  # dropped while we still stream
                await client.stream(tone(500, 1.2) + silence(0.5))
            closed = await client.read_until_closed()
        async with open_client(sim) as second:
            await second.ready(task())
            await second.stream(tone(500, 1.2) + silence(0.5))
            while not (await second.until("output_audio_data"))["data"]["last_chunk"]:
                pass
    chunks = client.of_type("output_audio_data")
    assert [c["data"]["last_chunk"] for c in chunks] == [False, False]
    assert closed.reason is not None and closed.reason.code == 1006
    assert sim.state.connections[0].closed_by == "dropped"
    assert sim.state.faults.drop_mid_speech == 0


async def test_faults_aimed_at_one_connection_leave_the_others_alone(start_sim: StartSim) -> None:
    """``{"connection": id, ...}``: that live connection stalls on its own; another connection
    keeps talking and the simulator-wide faults stay off. An id that is not a live connection
    is refused."""
    sim = await start_sim()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        with trio.fail_after(10):
            async with open_client(sim) as stalled, open_client(sim) as other:
                await stalled.ready(task())
                await other.ready(task())
                stalled_id = sim.state.connections[0].id
                aimed = {"connection": stalled_id, "stall_output": True}
                armed = await http.post("/_sim/faults", json=aimed)
                with trio.move_on_after(0.1):  # frames sent before the switch may be in flight
                    while True:
                        await stalled.receive()
                seen = len(stalled.seen)
                await stalled.stream(tone(500, 0.3) + silence(0.4))
                await other.stream(tone(500, 0.3) + silence(0.4))
                await other.until("validated_transcription")
                assert len(stalled.seen) == seen
            unknown = await http.post("/_sim/faults", json={"connection": "c99", "reject_task": 1})
        report = (await http.get("/_sim/report")).json()
    assert armed.status_code == 200 and armed.json()["faults"]["stall_output"] is True
    assert unknown.status_code == 400 and "c99" in unknown.json()["problems"][0]
    assert report["faults"]["stall_output"] is False
    assert report["connection_faults"][stalled_id]["stall_output"] is True
    by_id = {c["id"]: c for c in report["connections"]}
    assert by_id[stalled_id]["suppressed_messages"] > 0
    assert all(c["suppressed_messages"] == 0 for i, c in by_id.items() if i != stalled_id)
