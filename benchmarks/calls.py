"""CPU per call-second of the real daemon, with N concurrent tone-mode calls on the simulators.

Run from the repo root: ``python -m benchmarks.calls --calls 1 4 8 --seconds 20``. For each N it
starts both simulators and ``callbridge serve`` as processes (``callbridge.sim.stack``), places N
calls, waits until all are bridged, then reads the daemon's CPU time (``/proc/PID/stat``) over a
steady window. It prints CPU milliseconds per call-second, the implied calls per core, and the
daemon's idle cost measured the same way before any call, as the baseline. The simulators share
the machine (their CPU is printed too), so figures on a 2-core box are upper bounds. Bounded in
time; loopback only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from callbridge.sim.stack import Process, Stack, StackOptions

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(proc: Process | None) -> float:
    """User + system CPU of a child process so far."""
    assert proc is not None
    fields = Path(f"/proc/{proc.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def measure(stack: Stack, seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(getattr(stack, name)) for name in ("daemon", "twilio", "palabra")}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {name: (cpu_seconds(getattr(stack, name)) - before[name]) / elapsed for name in before}


def run(calls: int, seconds: float, workdir: Path) -> None:
    operators = [f"+1555030{n:04d}" for n in range(calls)]
    options = StackOptions(
        workdir=workdir,
        palabra_args=["--ready-delay-s", "0.3", "--log-level", "warning"],
        twilio_args=["--log-level", "warning"],
        operators=operators,
        daemon_env={"CALLBRIDGE_SERVER_MAX_CALLS": str(calls)},
    )
    with Stack(options) as stack:
        idle = measure(stack, min(seconds, 5.0))
        for n in range(calls):
            stack.place_call(**{"from": f"+1555040{n:04d}", "hangup_at_s": seconds + 30})
        assert stack.daemon is not None
        deadline = time.monotonic() + 60
        while len(stack.daemon.events("call_bridged")) < calls and time.monotonic() < deadline:
            time.sleep(0.2)
        bridged = len(stack.daemon.events("call_bridged"))
        busy = measure(stack, seconds)
    per_call_ms = (busy["daemon"] - idle["daemon"]) * 1000 / max(bridged, 1)
    print(
        f"{calls:>5} {bridged:>8} {busy['daemon'] * 100:>9.1f} {idle['daemon'] * 100:>8.2f} "
        f"{per_call_ms:>10.1f} {1000 / per_call_ms if per_call_ms > 0 else float('inf'):>10.1f} "
        f"{busy['twilio'] * 100:>9.1f} {busy['palabra'] * 100:>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per run")
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()}  window={args.seconds:.0f} s  (CPU % of one core)")
    print("calls  bridged  daemon%   idle%  ms/call-s  calls/core  twilio%  palabra%")
    for calls in args.calls:
        with tempfile.TemporaryDirectory(prefix="callbridge-bench-") as tmp:
            run(calls, args.seconds, Path(tmp))


if __name__ == "__main__":
    main()
