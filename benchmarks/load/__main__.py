"""Load sweep of the real daemon: ``python -m benchmarks.load`` (``make bench-load``).

Starts the Palabra and Twilio simulators and ``callbridge serve`` (``--daemons N``) as separate
processes on loopback, with the daemons pinned to their own cores and the simulators (and this
process) to the last one, so the simulators' CPU is not the daemon's. Each step places N fresh
calls in tone mode; both parties speak 1.5 s every 6 s, translated both ways. Steps run until one
fails (outbound lateness p99 >= 20 ms, a late or missing frame caused by the daemon, a dropped
frame, or the daemon's core saturated), then it writes ``benchmarks/results/load-LABEL.json``,
``.md`` and ``.png``. See docs/performance.md for the method and how to read the figures.

Several instances: ``--daemons N`` runs N daemons, calls spread round-robin over them; add
``--redis-url`` and ``--database-url`` (servers you started) to run them as one cluster
(docs/cluster.md), the calls spread by a voice-webhook balancer at the shared public URL and
``server.max_calls`` counted across the cluster. Every step then reports calls and CPU per
instance (``per_instance``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchmarks.load import output, procs
from benchmarks.load.profile import WindowProfile
from benchmarks.load.sweep import Criteria, StepRunner

from callbridge.sim.palabra.tones import tone_for
from callbridge.sim.stack import Stack, StackOptions
from callbridge.sim.twilio.sim import TONE_HZ

DEFAULT_STEPS = (1, 10, 20, 30, 40, 50, 60)
LANGUAGES = {"caller": "en", "operator": "es"}
SPEECH = {"on_s": 1.5, "off_s": 4.5, "start_delay_s": 0.5}  # 1.5 s every 6 s
RESULTS = Path(__file__).resolve().parents[1] / "results"
# The simulators answer control calls between frames; on a machine shared with other busy
# processes that can take a while, and a slow answer is not a failed step.
CONTROL_TIMEOUT_S = 120.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    p.add_argument("--steps", type=int, nargs="+", help="calls per step (default: 1 10 20 ... "
                   "60, then +10 while the criteria hold, up to --max-calls)")  # fmt: skip
    p.add_argument("--max-calls", type=int, default=120)
    p.add_argument("--window-s", type=float, default=30.0, help="measurement window per step")
    p.add_argument("--settle-s", type=float, default=4.0, help="after the last call bridged")
    p.add_argument("--daemons", type=int, default=1, help="daemon processes; calls round-robin")
    p.add_argument("--redis-url", default="", help="run the daemons as a cluster on this Redis")
    p.add_argument("--database-url", default="", help="the cluster's PostgreSQL (with --redis-url)")
    p.add_argument("--label", default="latest", help="names the outputs: load-LABEL.*")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--no-pin", action="store_true", help="leave CPU placement to the kernel")
    p.add_argument("--no-stop", action="store_true", help="run every step even after a failure")
    p.add_argument("--profile-at", type=int, help="py-spy the first daemon at this many calls")
    p.add_argument("--late-frames", type=int, default=0, help="late frames a step may have")
    p.add_argument("--saturation", type=float, default=0.95, help="daemon core share that fails")
    return p.parse_args()


def step_plan(args: argparse.Namespace) -> list[int]:
    if args.steps:
        return list(args.steps)
    extra = range(DEFAULT_STEPS[-1] + 10, args.max_calls + 1, 10)
    return [*DEFAULT_STEPS, *extra]


def placement(stack: Stack, pin: bool) -> str:
    """Daemons on the first cores, simulators and this process on the last one. (Niceness
    would not protect them from other busy processes: with the kernel's autogroup scheduling,
    every terminal session gets an equal share whatever its processes' niceness; the runqueue
    wait recorded per step says how much the neighbours took.)"""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return "not pinned"
    sims, daemon_cpus = {cpus[-1]}, cpus[:-1]
    for index, daemon in enumerate(stack.daemons):
        procs.pin(daemon.popen.pid, {daemon_cpus[index % len(daemon_cpus)]})
    for proc in (stack.twilio, stack.palabra):
        if proc is not None:
            procs.pin(proc.popen.pid, sims)
    procs.pin(os.getpid(), sims)
    return f"daemons on cpu {','.join(map(str, daemon_cpus))}, simulators on cpu {cpus[-1]}"


def stack_options(workdir: Path, args: argparse.Namespace, max_calls: int) -> StackOptions:
    scenario = workdir / "scenario.json"
    scenario.write_text(json.dumps({"tone": SPEECH}), encoding="utf-8")
    tones = sorted({*TONE_HZ.values(), *(tone_for(lang) for lang in LANGUAGES.values())})
    return StackOptions(
        workdir=workdir,
        palabra_args=["--ready-delay-s", "0.3", "--log-level", "warning"],
        twilio_args=[
            "--scenario",
            str(scenario),
            "--no-recording",
            "--log-level",
            "warning",
            "--detect-tones",
            ",".join(f"{t:g}" for t in tones),
        ],
        operators=[f"+1555030{n:04d}" for n in range(max_calls)],
        daemon_env={"CALLBRIDGE_SERVER_MAX_CALLS": str(max_calls + 5)},
        caller_language=LANGUAGES["caller"],
        operator_language=LANGUAGES["operator"],
        daemons=args.daemons,
        redis_url=args.redis_url,
        database_url=args.database_url,
        cluster_prefix=f"bench{os.getpid()}",
    )


def idle_cpu_pct(stack: Stack, seconds: float = 3.0) -> float:
    pid = stack.daemons[0].popen.pid
    before, start = procs.cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return round(100 * (procs.cpu_seconds(pid) - before) / (time.monotonic() - start), 2)


def pin_with_simulators(pid: int) -> None:
    """Helpers (py-spy) share the simulators' core, not the daemon's."""
    procs.pin(pid, {sorted(os.sched_getaffinity(0))[-1]})


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the Stack stops the daemons and simulators it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args()
    if bool(args.redis_url) != bool(args.database_url):
        sys.exit("--redis-url and --database-url go together (a cluster needs both)")
    plan = step_plan(args)
    meta: dict[str, Any] = {
        "label": args.label,
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.platform()}",
        "daemons": args.daemons,
        "cluster": bool(args.redis_url),
        "window_s": args.window_s,
        "settle_s": args.settle_s,
        "speech": SPEECH,
        "languages": LANGUAGES,
        "load_average_at_start": procs.load_average(),
    }
    run: dict[str, Any] = {"meta": meta, "steps": [], "profile": None}
    criteria = Criteria(late_frames=args.late_frames, saturation=args.saturation)
    with (
        tempfile.TemporaryDirectory(prefix="callbridge-load-") as tmp,
        Stack(stack_options(Path(tmp), args, max(plan))) as stack,
    ):
        stack.http.close()
        # A fresh connection per control call: a request on a connection kept alive through a
        # long window was once left unanswered by the simulator's hypercorn (not root-caused).
        stack.http = httpx.Client(
            timeout=CONTROL_TIMEOUT_S, limits=httpx.Limits(max_keepalive_connections=0)
        )
        meta["pinning"] = placement(stack, not args.no_pin)
        runner = StepRunner(
            stack, args.window_s, args.settle_s, criteria, LANGUAGES, stack.options.web_token
        )
        runner.idle_cpu_pct = meta["idle_cpu_pct"] = idle_cpu_pct(stack)
        print(f"{meta['machine']}; {meta['pinning']}; idle daemon "
              f"{runner.idle_cpu_pct} % CPU; load {meta['load_average_at_start']}", flush=True)  # fmt: skip
        for calls in plan:
            profile = None
            if calls == args.profile_at:
                raw = args.out_dir / f"profile-{args.label}-{calls}calls.txt"
                profile = WindowProfile(stack.daemons[0].popen.pid, raw, pin_with_simulators)
            step = runner.run(calls, profile)
            if profile is not None:
                run["profile"] = profile.finish(calls, args.window_s + 30)
            run["steps"].append(step)
            print(output.progress_line(step), flush=True)
            if step["failed"] and not args.no_stop:
                break
    for path in output.write_outputs(run, args.out_dir, args.label):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
