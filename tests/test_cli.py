"""The real `callbridge` command: check-config, and serve answering /healthz then stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_config import ROOT, SEED_ENV


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callbridge", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_version() -> None:
    from callbridge import __version__

    result = run_cli("--version", env={})
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_check_config_on_shipped_file_with_seed_env_shows_no_secret() -> None:
    result = run_cli("check-config", "--config", str(ROOT / "config.toml"), env=SEED_ENV)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["server"]["public_url"] == "https://bridge.example.com"
    assert shown["twilio"]["auth_token"] == "***"
    for name in ("TWILIO_AUTH_TOKEN", "PALABRA_CLIENT_ID", "PALABRA_CLIENT_SECRET"):
        assert SEED_ENV[name] not in result.stdout + result.stderr


def test_check_config_with_broken_value_exits_1_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[palabra]\nchunk_ms = 5\n", encoding="utf-8")
    result = run_cli("check-config", "--config", str(bad), env=SEED_ENV)
    assert result.returncode == 1
    assert "palabra.chunk_ms: must be 20..1000, got 5" in result.stderr


def test_check_config_refuses_a_short_web_token_naming_key_and_minimum() -> None:
    env = {**SEED_ENV, "CALLBRIDGE_WEB_TOKEN": "short-token"}
    result = run_cli("check-config", "--config", str(ROOT / "config.toml"), env=env)
    assert result.returncode == 1
    assert "server.web_token: must be at least 32 characters (CALLBRIDGE_WEB_TOKEN" in result.stderr
    assert "got 11" in result.stderr and "short-token" not in result.stdout + result.stderr


def test_check_config_without_credentials_exits_1() -> None:
    result = run_cli("check-config", "--config", str(ROOT / "config.toml"), env={})
    assert result.returncode == 1
    assert "twilio.auth_token: required" in result.stderr


@pytest.mark.e2e
def test_serve_answers_healthz_logs_json_and_stops_within_a_second_of_sigterm(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nport = 0\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    env = {**os.environ, **SEED_ENV, "PALABRA_API_KEY": "api-key-value"}
    env.pop("PORT")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callbridge", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        records = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "daemon exited before listening: " + (
                proc.stderr.read() if proc.stderr else ""
            )
            records.append(json.loads(line))
            if records[-1]["event"] == "listening":
                break
        url = records[-1]["binds"][0]
        health = httpx.get(url + "/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - sent < 1.0
        rest, err = proc.communicate(timeout=5)
        records += [json.loads(line) for line in rest.splitlines() if line.strip()]
        assert records[-1]["event"] == "stopped"
        assert all({"ts", "level", "event", "logger"} <= set(r) for r in records)
        assert "api-key-value" not in rest + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
