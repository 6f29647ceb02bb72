"""The shipped systemd units: `systemd-analyze verify` clean, and consistent with the daemon."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callbridge.calls.supervisor import EXIT_WITHIN_S
from callbridge.cli import EXIT_USAGE
from callbridge.config import ServerConfig
from callbridge.lifecycle import EXTEND_BY_S

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"
SHIPPED_EXEC = "/opt/callbridge/.venv/bin/callbridge"


def settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return float(match.group(1))


@pytest.mark.parametrize(("name", "verify_as"), [
    ("callbridge.service", "callbridge.service"),
    ("callbridge@.service", "callbridge@8001.service"),
])  # fmt: skip
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, name: str, verify_as: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package; .ci/run has it)")
    # verify checks that ExecStart exists: point it at this environment's callbridge.
    here = str(Path(sys.executable).parent / "callbridge")
    text = (UNITS / name).read_text(encoding="utf-8")
    assert SHIPPED_EXEC in text
    (tmp_path / name).write_text(text.replace(SHIPPED_EXEC, here), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / verify_as)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 even for an unparsable directive: any line it prints is a finding.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("name", ["callbridge.service", "callbridge@.service"])
def test_unit_matches_what_the_daemon_does(name: str) -> None:
    unit = settings(UNITS / name)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["KillSignal"] == ["SIGTERM"]
    # The drain bound: the daemon's promise (exit within the grace + EXIT_WITHIN_S), a margin.
    stop_s = seconds(unit["TimeoutStopSec"][0])
    assert stop_s >= ServerConfig().shutdown_grace_s + EXIT_WITHIN_S + 5
    assert stop_s > EXTEND_BY_S  # each extension is shorter than the base timeout
    # A configuration that cannot start is not restarted in a loop.
    assert unit["RestartPreventExitStatus"] == [str(EXIT_USAGE)]
    assert seconds(unit["WatchdogSec"][0]) >= 10
    assert unit["CapabilityBoundingSet"] == [""]
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["MemoryDenyWriteExecute"] == ["yes"]
    assert "ExecReload" not in unit


def test_the_old_example_unit_is_gone() -> None:
    assert not (ROOT / "docs" / "callbridge.service").exists()
