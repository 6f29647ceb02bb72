"""What the load benchmark reads about processes from Linux's /proc: CPU time, RSS, the machine's
load, the other busy processes, the time a process waited for a CPU, and CPU pinning.

All of it is documented in proc(5) (https://man7.org/linux/man-pages/man5/proc.5.html):
``/proc/PID/stat`` fields 14-15 (utime, stime, in clock ticks), ``/proc/PID/status`` ``VmRSS``
(kB), ``/proc/PID/schedstat`` (https://docs.kernel.org/scheduler/sched-stats.html) and
``/proc/loadavg``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

__all__ = [
    "CpuSnapshot",
    "busy_others",
    "cpu_seconds",
    "load_average",
    "pin",
    "rss_mb",
    "runqueue_wait_s",
]

_TICKS = os.sysconf("SC_CLK_TCK")
BUSY_SHARE = 0.10  # a process using a tenth of a core or more counts as busy


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


@attrs.frozen
class CpuSnapshot:
    """CPU seconds of every process on the machine at one moment, to compare with a later one."""

    at: float  # time.monotonic()
    cpu: dict[int, float]
    names: dict[int, str]

    @classmethod
    def take(cls, at: float) -> CpuSnapshot:
        cpu, names = {}, {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                pid = int(entry.name)
                cpu[pid] = cpu_seconds(pid)
                names[pid] = _command(pid)
        return cls(at, cpu, names)


def busy_others(
    before: CpuSnapshot, after: CpuSnapshot, ours: Iterable[int]
) -> list[dict[str, object]]:
    """Processes other than ``ours`` (and this one) that used at least ``BUSY_SHARE`` of a core
    between the two snapshots: what else competed for the machine during a measurement."""
    skip = {*ours, os.getpid()}
    elapsed = max(after.at - before.at, 1e-6)
    busy = []
    for pid, cpu in after.cpu.items():
        share = (cpu - before.cpu.get(pid, cpu)) / elapsed
        if pid not in skip and share >= BUSY_SHARE:
            busy.append({"pid": pid, "cpu_pct": round(share * 100, 1), "command": after.names[pid]})
    return sorted(busy, key=lambda p: -float(str(p["cpu_pct"])))


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:80] or f"[{pid}]"


def pin(pid: int, cpus: set[int]) -> bool:
    """Restrict ``pid`` to ``cpus`` (sched_setaffinity(2)); False where that is not possible."""
    try:
        os.sched_setaffinity(pid, cpus)
    except (OSError, AttributeError):
        return False
    return True


def runqueue_wait_s(pid: int) -> float:
    """Seconds ``pid`` has spent runnable but waiting for a CPU (``/proc/PID/schedstat``, second
    field, ns): on a shared machine, how much the neighbours took from it."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0
