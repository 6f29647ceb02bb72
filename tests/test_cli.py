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
    result = run_cli("check-config", "--config", str(ROOT / "config.toml"), "--json", env=SEED_ENV)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["server"]["public_url"] == "https://bridge.example.com"
    assert shown["twilio"]["auth_token"] == "***"
    for name in ("TWILIO_AUTH_TOKEN", "PALABRA_CLIENT_ID", "PALABRA_CLIENT_SECRET"):
        assert SEED_ENV[name] not in result.stdout + result.stderr


class TestCheckConfig:
    def test_summary_is_short_and_names_the_webhook_to_paste_into_twilio(self) -> None:
        """Without --json: a dozen lines, the voice webhook URL first, no secrets."""
        result = run_cli("check-config", "--config", str(ROOT / "config.toml"), env=SEED_ENV)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) < 20
        assert "POST https://bridge.example.com/twiml/client" in lines[1]
        assert "configuration OK" in result.stderr
        for name in ("TWILIO_AUTH_TOKEN", "PALABRA_CLIENT_ID", "PALABRA_CLIENT_SECRET"):
            assert SEED_ENV[name] not in result.stdout + result.stderr

    def test_broken_value_exits_2_naming_the_key_and_prints_no_configuration(
        self, tmp_path: Path
    ) -> None:
        bad = tmp_path / "config.toml"
        bad.write_text("[palabra]\nchunk_ms = 5\n", encoding="utf-8")
        result = run_cli("check-config", "--config", str(bad), "--json", env=SEED_ENV)
        assert result.returncode == 2
        assert "palabra.chunk_ms: must be 20..1000, got 5" in result.stderr
        assert result.stdout == ""

    def test_missing_credentials_exit_2_with_problems_before_anything_else(self) -> None:
        result = run_cli("check-config", "--config", str(ROOT / "config.toml"), env={})
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.splitlines()[1].startswith("  - twilio.")
        assert "twilio.auth_token: required" in result.stderr

    def test_serve_exits_2_for_the_same_problems(self, tmp_path: Path) -> None:
        bad = tmp_path / "config.toml"
        bad.write_text("[palabra]\nchunk_ms = 5\n", encoding="utf-8")
        broken = run_cli("serve", "--config", str(bad), env=SEED_ENV)
        incomplete = run_cli("serve", "--config", str(ROOT / "config.toml"), env={})
        assert (broken.returncode, incomplete.returncode) == (2, 2)
        assert "palabra.chunk_ms: must be 20..1000, got 5" in broken.stderr
        assert "twilio.auth_token: required" in incomplete.stderr

    def test_a_hold_file_serve_cannot_use_fails_check_config_too(self, tmp_path: Path) -> None:
        """check-config reads ``media.hold_audio`` as serve does at start: both exit 2 and name
        the key on stderr (check-config used to say OK, then serve refused to start)."""
        config = tmp_path / "config.toml"
        config.write_text(f'[media]\nhold_audio = "{tmp_path / "missing.wav"}"\n', encoding="utf-8")
        checked = run_cli("check-config", "--config", str(config), env=SEED_ENV)
        served = run_cli("serve", "--config", str(config), env=SEED_ENV)
        assert (checked.returncode, served.returncode) == (2, 2)
        assert checked.stdout == ""
        for result in (checked, served):
            assert "media.hold_audio: cannot use" in result.stderr, result.stderr

    def test_typos_get_a_did_you_mean(self, tmp_path: Path) -> None:
        bad = tmp_path / "config.toml"
        bad.write_text('[server]\npublik_url = "https://x.example"\n', encoding="utf-8")
        env = {**SEED_ENV, "CALLBRIDGE_SERVER_MAX_CALL": "3"}
        result = run_cli("check-config", "--config", str(bad), env=env)
        assert result.returncode == 2
        assert "server.publik_url: unknown key (did you mean 'public_url'?)" in result.stderr
        assert (
            "CALLBRIDGE_SERVER_MAX_CALL: unknown variable (did you mean "
            "'CALLBRIDGE_SERVER_MAX_CALLS'?)" in result.stderr
        )


class TestHelp:
    def test_top_level_help_has_no_markup_and_explains_every_option(self) -> None:
        import argparse

        from callbridge.cli import build_parser

        result = run_cli("--help", env={})
        assert result.returncode == 0
        assert "``" not in result.stdout
        parser = build_parser()
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands = [parser, *subparsers.choices.values()]
        undocumented = [
            f"{command.prog} {action.dest}"
            for command in commands
            for action in command._actions
            if not action.help and not isinstance(action, argparse._SubParsersAction)
        ]
        assert undocumented == []

    def test_demo_help_lists_the_demo_options(self) -> None:
        result = run_cli("demo", "--help", env={})
        assert result.returncode == 0, result.stderr
        for option in ("--keep-running", "--tone", "--script", "--out", "--timeout"):
            assert option in result.stdout

    def test_sim_help_reaches_the_simulator(self) -> None:
        result = run_cli("sim", "twilio", "--help", env={})
        assert result.returncode == 0, result.stderr
        assert "--app-url" in result.stdout


def test_check_config_refuses_a_short_web_token_naming_key_and_minimum() -> None:
    env = {**SEED_ENV, "CALLBRIDGE_WEB_TOKEN": "short-token"}
    result = run_cli("check-config", "--config", str(ROOT / "config.toml"), env=env)
    assert result.returncode == 2  # a configuration problem, as for serve
    assert "server.web_token: must be at least 32 characters (CALLBRIDGE_WEB_TOKEN" in result.stderr
    assert "got 11" in result.stderr and "short-token" not in result.stdout + result.stderr


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
        # The URL to paste into the Twilio console is on the listening line.
        assert records[-1]["twilio_webhook"] == "https://bridge.example.com/twiml/client"
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


def test_make_run_installs_the_package_without_the_dev_extras(tmp_path: Path) -> None:
    """`make run` on a fresh checkout: a runtime install, not pytest/mypy/playwright."""
    result = subprocess.run(
        ["make", "-n", "run", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install --quiet -e ." in result.stdout
    assert "[dev]" not in result.stdout
    assert "callbridge demo" in result.stdout
