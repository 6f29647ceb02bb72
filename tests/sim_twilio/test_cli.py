"""The process: sim_ready line, control endpoints, WAVs at shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.sim_twilio.harness import SID, TOKEN, FakeApp, running


async def test_cli_ready_line_control_endpoints_and_out_dir(tmp_path: Path) -> None:
    app = FakeApp(client_twiml=lambda a: "<Response><Pause length='10'/></Response>")
    async with running(None, app) as _:
        cmd = [
            sys.executable, "-m", "callbridge", "sim", "twilio", "--port", "0",
            "--app-url", app.url, "--account-sid", SID, "--auth-token", TOKEN,
            "--out-dir", str(tmp_path), "--from", "+15557654321",
        ]  # fmt: skip
        with trio.fail_after(15):
            proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
            async with proc.stdout:  # type: ignore[union-attr]
                assert proc.stdout is not None
                line = b""
                while not line.endswith(b"\n"):
                    line += await proc.stdout.receive_some(1)
                ready = json.loads(line)
                assert ready["event"] == "sim_ready" and ready["url"].startswith(
                    "http://127.0.0.1:"
                )
                base = ready["url"]
                async with httpx.AsyncClient(base_url=base) as http:
                    call = (await http.post("/_sim/call", json={"to": "+15550000000"})).json()
                    await trio.sleep(0.3)
                    hung = (await http.post("/_sim/hangup", json={"party": "caller"})).json()
                    assert hung == {"hung_up": [call["call_sid"]]}
                    assert (await http.post("/_sim/wait-idle", json={"timeout_s": 5})).json()[
                        "idle"
                    ]
                    report = (await http.get("/_sim/report")).json()
                    await http.post("/_sim/shutdown")
                assert await proc.wait() == 0
    (c,) = report["calls"]
    assert c["from"] == "+15557654321" and c["to"] == "+15550000000" and c["status"] == "completed"
    assert (
        report["webhooks"][0]["status"] == 200 and report["webhooks"][0]["kind"] == "incoming_call"
    )
    assert (tmp_path / "caller-heard.wav").exists()


async def test_a_post_whose_body_the_handler_ignores_leaves_the_connection_usable() -> None:
    """``POST /_sim/stats`` has no use for a body; a client that sends one (``{}``) and reuses
    its keep-alive connection used to wait forever for the next answer about one time in seven
    (an unread body stalled the connection). 100 such pairs, each answered within 2 s."""
    cmd = [
        sys.executable, "-m", "callbridge", "sim", "twilio", "--port", "0",
        "--app-url", "http://127.0.0.1:9", "--account-sid", SID, "--auth-token", TOKEN,
    ]  # fmt: skip
    with trio.fail_after(60):
        proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                line += await proc.stdout.receive_some(1)
            base = json.loads(line)["url"]
            async with httpx.AsyncClient(base_url=base, timeout=2) as http:
                for _ in range(100):
                    assert (await http.post("/_sim/stats", json={})).status_code == 200
                    assert (await http.get("/_sim/report")).status_code == 200
        finally:
            proc.terminate()
            await proc.wait()
            await proc.stdout.aclose()  # type: ignore[union-attr]
