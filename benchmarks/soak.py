"""Does the daemon's memory stay flat during long calls? RSS and file descriptors over a soak.

Run from the repo root: ``python -m benchmarks.soak --calls 20 --minutes 60`` (``make soak``;
``make soak SOAK_CALLS=10 SOAK_MINUTES=10`` for a shorter one). It starts both simulators and
``callbridge serve`` as processes (``callbridge.sim.stack``), places N calls in tone mode where
both parties talk every ``--talk-every-s`` seconds (a ``--talk-s`` burst each), waits until all
are bridged, then samples the daemon's own process (``/proc/PID/status`` VmRSS, ``/proc/PID/fd``)
every ``--sample-s`` seconds. It prints one line per sample and, at the end, the RSS growth from
the first minute's sample to the last (the first minute holds the one-off costs: first calls,
allocator arenas); the target is under 5 %. It also prints the slope over the second half, per
call and per inbound media frame: a leak grows in a straight line, while bounded buffers filling
up and the allocator's high-water mark (the first two or three minutes) level off. Calls that
end before the soak does are reported with their reasons. Only the daemon's process is
measured; the simulated phones keep no audio (scenario ``record_audio: false``), so the
simulators stay small too.

``--tracemalloc FRAMES`` starts the daemon with ``CALLBRIDGE_TRACEMALLOC`` (see
``callbridge.service.memtrace``), asks for a dump after the first minute and at the end, and
prints the second dump: the allocation sites that grew in between, biggest first. Tracing slows
the daemon about 2x; use it with fewer calls.

``--daemon-env NAME=VALUE`` (repeatable) adds to the daemon's environment, for experiments
(``MALLOC_ARENA_MAX=2``, a ``CALLBRIDGE_*`` setting).

Bounded: calls hang up on their own two minutes after the soak, and the stack is torn down on
exit (SIGTERM, then SIGKILL). Loopback only. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from callbridge.sim.stack import Process, Stack, StackOptions

_TICKS = os.sysconf("SC_CLK_TCK")
_BRIDGE_TIMEOUT_S = 120.0
_TARGET = 0.05  # RSS growth after the first minute


def rss_kib(proc: Process) -> int:
    """Resident set size of the process, KiB (``VmRSS``)."""
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    msg = f"no VmRSS for pid {proc.popen.pid}"
    raise RuntimeError(msg)


def anon_kib(proc: Process) -> int:
    """Anonymous resident memory of the process, KiB (``RssAnon``): the heap and the allocators'
    arenas, without the file-backed pages (shared libraries, code) that RSS also counts and that
    grow once as code paths are first run."""
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    msg = f"no RssAnon for pid {proc.popen.pid}"
    raise RuntimeError(msg)


def open_fds(proc: Process) -> int:
    return len(os.listdir(f"/proc/{proc.popen.pid}/fd"))


def cpu_s(proc: Process) -> float:
    fields = Path(f"/proc/{proc.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _scenario(workdir: Path, talk_s: float, every_s: float) -> Path:
    path = workdir / "soak-scenario.json"
    tone = {"on_s": talk_s, "off_s": max(every_s - talk_s, 0.1)}
    # The simulated phones would otherwise keep every frame they hear and say (60 kB/s a call).
    path.write_text(json.dumps({"tone": tone, "record_audio": False}), encoding="utf-8")
    return path


def _wait_bridged(stack: Stack, calls: int) -> int:
    assert stack.daemon is not None
    deadline = time.monotonic() + _BRIDGE_TIMEOUT_S
    while len(stack.daemon.events("call_bridged")) < calls and time.monotonic() < deadline:
        time.sleep(0.5)
    return len(stack.daemon.events("call_bridged"))


def _dump(daemon: Process, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Ask the daemon for a tracemalloc dump; return its ``memory_top`` records."""
    dumps, tops = len(daemon.events("memory_traced")), len(daemon.events("memory_top"))
    daemon.popen.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while len(daemon.events("memory_traced")) == dumps and time.monotonic() < deadline:
        time.sleep(0.2)
    return daemon.events("memory_top")[tops:]


def soak(args: argparse.Namespace, workdir: Path) -> None:
    calls = args.calls
    env = {"CALLBRIDGE_SERVER_MAX_CALLS": str(calls)}
    env.update(dict(item.split("=", 1) for item in args.daemon_env))
    if args.tracemalloc:
        env["CALLBRIDGE_TRACEMALLOC"] = str(args.tracemalloc)
        # A dump stalls the event loop for seconds: longer than a leg may stay silent.
        env["CALLBRIDGE_MEDIA_LEG_IDLE_TIMEOUT_S"] = "300"
    scenario = _scenario(workdir, args.talk_s, args.talk_every_s)
    options = StackOptions(
        workdir=workdir,
        palabra_args=["--ready-delay-s", "0.3", "--log-level", "warning"],
        twilio_args=["--log-level", "warning", "--scenario", str(scenario)],
        operators=[f"+1555030{n:04d}" for n in range(calls)],
        daemon_env=env,
    )
    duration_s = args.minutes * 60
    with Stack(options) as stack:
        daemon = stack.daemon
        assert daemon is not None
        idle_rss = rss_kib(daemon)
        for n in range(calls):
            stack.place_call(**{"from": f"+1555040{n:04d}", "hangup_at_s": duration_s + 120})
        bridged = _wait_bridged(stack, calls)
        print(f"daemon pid {daemon.popen.pid}: idle RSS {idle_rss / 1024:.1f} MiB; "
              f"{bridged}/{calls} calls bridged")  # fmt: skip
        print(" minute   RSS MiB  growth%  anon MiB   fds  daemon CPU%  calls ended  sims' RSS MiB")
        samples = _sample(stack, daemon, duration_s, args)
        ended = daemon.events("call_ended")
    _report(samples, ended, calls)


def _sample(
    stack: Stack, daemon: Process, duration_s: float, args: argparse.Namespace
) -> list[tuple[float, int, int, int]]:
    start = time.monotonic()
    samples: list[tuple[float, int, int, int]] = []
    last_cpu, last_t = cpu_s(daemon), start
    dumps = 0
    while True:
        elapsed = time.monotonic() - start
        rss, fds, anon = rss_kib(daemon), open_fds(daemon), anon_kib(daemon)
        samples.append((elapsed, rss, fds, anon))
        now, cpu = time.monotonic(), cpu_s(daemon)
        usage = (cpu - last_cpu) / max(now - last_t, 1e-9) * 100
        last_cpu, last_t = cpu, now
        base = next((s[1] for s in samples if s[0] >= 60.0), None)
        growth = f"{(rss - base) / base * 100:8.2f}" if base else "       -"
        sims = sum(rss_kib(p) for p in (stack.twilio, stack.palabra) if p is not None)
        print(f"{elapsed / 60:7.1f} {rss / 1024:9.1f} {growth} {anon / 1024:9.1f} {fds:5d} {usage:12.1f} "
              f"{len(daemon.events('call_ended')):12d} {sims / 1024:14.1f}", flush=True)  # fmt: skip
        if args.tracemalloc and base is not None and dumps == 0:
            _dump(daemon)
            dumps = 1
        if elapsed >= duration_s or daemon.popen.poll() is not None:
            break
        time.sleep(min(args.sample_s, max(duration_s - elapsed, 0.0)))
    if args.tracemalloc and dumps:
        _print_growth(_dump(daemon))
    return samples


def _print_growth(top: list[dict[str, Any]]) -> None:
    print("\ntop allocation sites by growth since the first-minute dump (KiB, blocks):")
    for record in top:
        where = record.get("where") or ["?"]
        print(f"{record['growth_kib']:+10.1f} {record['count_growth']:+8d}  {where[0]}")
        for line in where[1:6]:
            print(f"{'':21}{line}")


def _report(
    samples: list[tuple[float, int, int, int]], ended: list[dict[str, Any]], calls: int
) -> None:
    after_first = [s for s in samples if s[0] >= 60.0]
    if len(after_first) < 2:
        print("too short to measure growth after the first minute")
        return
    (t0, rss0, fd0, anon0), (t1, rss1, fd1, anon1) = after_first[0], after_first[-1]
    growth = (rss1 - rss0) / rss0
    per_s = (rss1 - rss0) * 1024 / max(t1 - t0, 1e-9)
    verdict = "within" if growth < _TARGET else "OVER"
    print(
        f"\nRSS after the first minute: {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB "
        f"({growth * 100:+.2f} %, {per_s / 1024:+.2f} KiB/s over {(t1 - t0) / 60:.1f} min; "
        f"{verdict} the {_TARGET * 100:.0f} % target); fds {fd0} -> {fd1}"
    )
    print(
        f"anonymous memory (RssAnon) after the first minute: {anon0 / 1024:.1f} -> "
        f"{anon1 / 1024:.1f} MiB ({(anon1 - anon0) / anon0 * 100:+.2f} %)"
    )
    # A leak grows in a straight line; filling bounded buffers and the allocator's high-water
    # mark do not. The slope over the second half tells them apart.
    half = [s for s in after_first if s[0] >= (t0 + t1) / 2]
    if len(half) >= 2 and calls:
        (h0, hr0, _, _), (h1, hr1, _, _) = half[0], half[-1]
        slope = (hr1 - hr0) * 1024 / max(h1 - h0, 1e-9)
        print(f"second half: {slope / 1024:+.2f} KiB/s ({slope / calls:+.0f} B/s per call, "
              f"{slope / calls / 100:+.2f} B per media frame)")  # fmt: skip
    if ended:
        reasons: dict[str, int] = {}
        for record in ended:
            reason = str(record.get("reason"))
            reasons[reason] = reasons.get(reason, 0) + 1
        print(f"calls that ended during the soak: {reasons}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=60.0, help="soak length after bridging")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--talk-every-s", type=float, default=6.0, help="each party speaks every")
    parser.add_argument("--talk-s", type=float, default=1.5, help="length of each burst of speech")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace allocations in the daemon and print what grew")  # fmt: skip
    parser.add_argument("--daemon-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the daemon (e.g. MALLOC_ARENA_MAX=2)")  # fmt: skip
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()}  calls={args.calls}  minutes={args.minutes:g}  "
          f"talk {args.talk_s:g} s every {args.talk_every_s:g} s")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="callbridge-soak-") as tmp:
        soak(args, Path(tmp))


if __name__ == "__main__":
    main()
