"""``callbridge sim palabra`` as a process: one sim_ready line on stdout, clean exit on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import orjson
import trio

from callbridge.sim.palabra.cli import build_parser, options_from_args


def test_flags_map_to_options() -> None:
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--script",
            "--ready-delay-s",
            "0.5",
            "--legacy-readiness",
            "--double-encode",
            "--idle-timeout-s",
            "3",
            "--drop-after-s",
            "2",
            "--session-5xx",
            "2",
            "--reject-task",
            "-1",
            "--stall-output",
        ]
    )
    options = options_from_args(args)
    assert options.api_keys == ("a", "b")
    assert options.script_path is not None and options.script_path.name == "script.json"
    assert (options.ready_delay_s, options.idle_timeout_s) == (0.5, 3.0)
    assert options.legacy_readiness and options.double_encode
    assert options.faults.drop_after_s == 2.0
    assert options.faults.drop_count == 1
    assert (options.faults.session_5xx, options.faults.reject_task) == (2, -1)
    assert options.faults.stall_output is True


async def test_cli_prints_sim_ready_and_serves() -> None:
    command = [
        sys.executable,
        "-m",
        "callbridge",
        "sim",
        "palabra",
        "--port",
        "0",
        "--log-format",
        "json",
    ]
    with trio.fail_after(15):
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert process.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                data = await process.stdout.receive_some(4096)
                assert data, "process exited before sim_ready"
                line += data
            ready = orjson.loads(line)
            assert ready["event"] == "sim_ready"
            assert ready["url"].startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(base_url=ready["url"]) as http:
                report = (await http.get("/_sim/report")).json()
            assert report["mode"] == "tone"
            assert report["connections"] == []
        finally:
            process.send_signal(signal.SIGTERM)
            code = await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()
    assert code == 0
