"""The official palabra-ai SDK (a client nobody here wrote) completes a session against the sim."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import API_KEY

pytest.importorskip("palabra_ai", reason="pip install palabra-ai (dev extra)")


async def test_official_sdk_translates_a_stream(start_sim: StartSim) -> None:
    """set_task acknowledged, transcripts and audio received, end_of_stream, clean close."""
    sim = await start_sim()
    script = Path(__file__).with_name("sdk_client.py")
    with trio.fail_after(20):
        done = await trio.run_process(
            [sys.executable, str(script), sim.state.ws_base, API_KEY],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    kinds = [t[0] for t in summary["transcripts"]]
    assert "partial_transcription" in kinds
    assert "validated_transcription" in kinds
    assert ["translated_transcription", "es", "[sim en->es #1] translation of 1.0s"] in summary[
        "transcripts"
    ]
    assert summary["audio_bytes"] >= 9600 * 4
    assert summary["last_chunk"] is True
    assert summary["stream_end"] is True
    (connection,) = sim.state.connections
    assert connection.end_task_at is not None
    assert connection.eos_sent_at is not None
    assert connection.close_code == 1000
    assert connection.closed_by == "server"
    assert connection.warnings == []  # the SDK paces in real time
