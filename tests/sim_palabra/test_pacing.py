"""Input pacing warnings and the idle timeout."""

from __future__ import annotations

import pytest
import trio

from callbridge.sim.palabra.pacing import STALLED, TOO_FAST, TOO_SLOW, AudioTimeline, PacingMonitor
from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import open_client, silence, task


class TestPacingMonitor:
    def test_real_time_client_with_first_chunk_immediate_is_fine(self) -> None:
        monitor = PacingMonitor()
        codes = [monitor.on_chunk(i * 0.32 + 0.03 * (i % 2), 0.32) for i in range(50)]
        assert codes == [None] * 50

    def test_a_burst_is_too_fast_once_per_repeat_interval(self) -> None:
        monitor = PacingMonitor()
        codes = [monitor.on_chunk(0.0, 0.1) for _ in range(20)]
        assert codes.count(TOO_FAST) == 1
        assert codes.index(TOO_FAST) == 4  # lead 0.5 s > 0.4 s
        assert monitor.on_chunk(0.5, 0.1) is None  # still ahead, but warned < 1 s ago
        assert monitor.on_chunk(1.0, 0.1) == TOO_FAST  # still 1.2 s ahead, a second later

    def test_lagging_client_is_too_slow(self) -> None:
        monitor = PacingMonitor()
        codes = [monitor.on_chunk(i * 0.15, 0.1) for i in range(40)]  # 2/3 real time
        assert TOO_SLOW in codes
        assert TOO_FAST not in codes

    def test_a_gap_stalls_once_and_restarts_the_baseline(self) -> None:
        monitor = PacingMonitor()
        assert monitor.on_chunk(0.0, 0.1) is None
        assert monitor.check_stall(0.9) is None
        assert monitor.check_stall(1.2) == STALLED
        assert monitor.check_stall(1.5) is None  # once per gap
        assert monitor.on_chunk(5.0, 0.1) is None  # not "too slow" after the gap
        assert monitor.on_chunk(5.1, 0.1) is None


def test_timeline_maps_audio_time_to_wall_time() -> None:
    timeline = AudioTimeline()
    timeline.add(0.1, 1000.1)
    timeline.add(0.2, 1000.25)
    assert timeline.wall_at(0.05) == pytest.approx(1000.05)
    assert timeline.wall_at(0.15) == pytest.approx(1000.20)


async def test_streaming_too_fast_gets_a_warning(start_sim: StartSim) -> None:
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            audio = silence(0.1)
            for _ in range(10):  # one second of audio at once
                await client.send_audio(audio)
            warning = await client.until("warning")
    assert warning["data"]["code"] == "AUDIO_STREAM_TOO_FAST"
    assert set(warning["data"]) == {"code", "message"}
    assert [w.code for w in sim.state.connections[0].warnings] == ["AUDIO_STREAM_TOO_FAST"]


async def test_real_time_streaming_gets_no_warning(start_sim: StartSim) -> None:
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            await client.stream(silence(1.0), chunk_s=0.1)
    report = sim.state.connections[0]
    assert report.warnings == []
    assert report.audio_s == pytest.approx(1.0)
    assert report.audio_chunks == 10


async def test_idle_stream_times_out_with_1008(start_sim: StartSim) -> None:
    """Counted from readiness: no audio for idle_timeout_s -> SERVICE_TIMEOUT, then close 1008."""
    sim = await start_sim(idle_timeout_s=0.6, stall_after_s=0.3)
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            started = trio.current_time()
            await client.send_audio(silence(0.1))
            closed = await client.read_until_closed()
            elapsed = trio.current_time() - started
    assert closed.reason is not None
    assert closed.reason.code == 1008
    (error,) = client.of_type("error")
    assert error["data"]["code"] == "SERVICE_TIMEOUT"
    assert error["data"]["desc"] == (
        "No input audio received for 0.6s. Use the pause_task command for intentional pauses."
    )
    assert 0.55 <= elapsed < 1.5
    assert [w["data"]["code"] for w in client.of_type("warning")] == ["AUDIO_STREAM_STALLED"]
    report = sim.state.connections[0]
    assert (report.close_code, report.closed_by) == (1008, "server")
    assert [e.code for e in report.errors] == ["SERVICE_TIMEOUT"]


async def test_paused_stream_does_not_time_out(start_sim: StartSim) -> None:
    sim = await start_sim(idle_timeout_s=0.3)
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            await client.send("pause_task", {})
            await client.until("task_status")
            await trio.sleep(0.6)
            await client.send("get_task", {})
            current = await client.until("current_task")
    assert current["data"]["task_status"] == "paused"
    assert client.of_type("error") == []
