"""One step of the load sweep: N fresh calls, a measurement window, the figures, the verdict.

Each step starts from an idle daemon (the previous step's calls hung up), places N calls spread
round-robin over the daemons at random moments (so every stream has its own 20 ms phase; in
cluster mode the voice-webhook balancer spreads them, as nginx would),
waits until all are bridged and settled, then measures for ``window_s`` seconds:

* daemon CPU (``/proc``) per call-second, and whether its core is saturated;
* daemon RSS growth per call over the idle daemon before the step;
* outbound lateness, jitter, late/missing frames and the simulator's own late ticks, from the
  Twilio simulator's ``/_sim/stats`` window (``callbridge.sim.twilio.meters``);
* added latency on the original and translated paths (``latency.py``);
* event-loop lag p99 from ``/metrics`` when the daemon exports it (``metrics.py``);
* the machine's load average, the other processes busy meanwhile, and how long the daemon
  waited for a CPU while runnable (``/proc/PID/schedstat``): on a shared machine a daemon that
  waits has late frames that are the neighbours' doing, not its own.

Then it hangs the calls up and adds the frames each call dropped (its ``call_ended`` line).
With several daemons every step also reports, per instance, the calls it carried and its CPU
(``per_instance``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx
from benchmarks.load import latency, metrics, procs

from callbridge.sim.stack import Stack

__all__ = ["Criteria", "StepRunner", "per_instance"]

BRIDGE_TIMEOUT_S = 90.0
END_TIMEOUT_S = 60.0


@attrs.frozen
class Criteria:
    """When a step fails (the sweep stops after it)."""

    lateness_p99_ms: float = 20.0
    late_frames: int = 0  # more than this many late/missing frames caused by the daemon
    dropped_frames: int = 0
    saturation: float = 0.95  # daemon CPU share of one core

    def failures(self, step: Mapping[str, Any]) -> list[str]:
        failed = []
        p99 = step["lateness"]["p99_ms"]
        if p99 is not None and p99 >= self.lateness_p99_ms:
            failed.append(f"lateness p99 >= {self.lateness_p99_ms:g} ms")
        if step["late_frames"] > self.late_frames:
            failed.append("late frames")
        if step["dropped_frames"] > self.dropped_frames:
            failed.append("dropped frames")
        if step["daemon_cpu_pct"] >= self.saturation * 100:
            failed.append("core saturated")
        if step["bridged"] < step["calls"]:
            failed.append("calls not bridged")
        return failed


@attrs.define
class StepRunner:
    stack: Stack
    window_s: float
    settle_s: float
    criteria: Criteria
    languages: Mapping[str, str]
    web_token: str
    idle_cpu_pct: float = 0.0
    http: httpx.Client = attrs.Factory(
        lambda: httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
    )
    _placed: int = 0  # calls placed so far, for unique caller numbers

    @property
    def daemon_pids(self) -> list[int]:
        return [d.popen.pid for d in self.stack.daemons]

    @property
    def sim_pids(self) -> dict[str, int]:
        assert self.stack.twilio is not None and self.stack.palabra is not None
        return {"twilio": self.stack.twilio.popen.pid, "palabra": self.stack.palabra.popen.pid}

    def run(self, calls: int, on_window: Any = None) -> dict[str, Any]:
        """Run one step; ``on_window(seconds)`` (e.g. a profiler) is called as the window opens
        and must return within the window."""
        rss_idle = [procs.rss_mb(pid) for pid in self.daemon_pids]
        ended_before = [len(d.events("call_ended")) for d in self.stack.daemons]
        per_daemon = self._place(calls)
        time.sleep(self.settle_s)
        window = self._measure(on_window)
        self.stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})
        summaries = self._call_summaries(ended_before, calls)
        self.stack.wait_idle(END_TIMEOUT_S)
        palabra = self.stack.report("palabra")
        self.stack.sim_post("palabra", "/_sim/reset")
        step = self._figures(calls, sum(per_daemon), rss_idle, window, summaries, palabra)
        step["per_instance"] = per_instance(per_daemon, window["daemon_cpu"])
        return step

    def _place(self, calls: int) -> list[int]:
        """Place ``calls`` calls; the calls each daemon bridged, once all are (or time is up)."""
        before = [len(d.events("call_bridged")) for d in self.stack.daemons]
        urls = self.stack.app_urls
        for index in range(calls):
            self._placed += 1
            caller = {"from": f"+1555{self._placed:07d}"}
            if self.stack.balancer is None:  # a cluster's balancer picks the instance itself
                caller["app_url"] = urls[index % len(urls)]
            self.stack.sim_post("twilio", "/_sim/call", caller)
            time.sleep(random.uniform(0.02, 0.12))  # every stream gets its own phase
        deadline = time.monotonic() + BRIDGE_TIMEOUT_S
        while True:
            bridged = [
                len(d.events("call_bridged")) - n
                for d, n in zip(self.stack.daemons, before, strict=True)
            ]
            if sum(bridged) >= calls or time.monotonic() > deadline:
                return bridged
            time.sleep(0.2)

    def _measure(self, on_window: Any) -> dict[str, Any]:
        pids = [*self.daemon_pids, *self.sim_pids.values()]
        self.stack.sim_post("twilio", "/_sim/stats")  # opens the window
        lag_before = [
            metrics.lag_buckets(u, self.http, self.web_token) for u in self.stack.app_urls
        ]
        start = time.monotonic()
        wall_start = time.time()
        snap_before = procs.CpuSnapshot.take(start)
        waited_before = [procs.runqueue_wait_s(pid) for pid in self.daemon_pids]
        if on_window is not None:
            on_window(self.window_s)
        time.sleep(max(0.0, self.window_s - (time.monotonic() - start)))
        snap_after = procs.CpuSnapshot.take(time.monotonic())
        waited = [
            procs.runqueue_wait_s(p) - w
            for p, w in zip(self.daemon_pids, waited_before, strict=True)
        ]
        stats = self.stack.sim_post("twilio", "/_sim/stats")
        elapsed = snap_after.at - snap_before.at
        lag_after = [metrics.lag_buckets(u, self.http, self.web_token) for u in self.stack.app_urls]
        lags = [metrics.lag_p99_ms(b, a) for b, a in zip(lag_before, lag_after, strict=True)]
        known_lags = [lag for lag in lags if lag is not None]

        def share(pid: int) -> float:
            return (snap_after.cpu.get(pid, 0.0) - snap_before.cpu.get(pid, 0.0)) / elapsed

        return {
            "elapsed_s": elapsed,
            "wall": (wall_start, time.time()),
            "daemon_cpu": [share(pid) for pid in self.daemon_pids],
            "daemon_waited": [w / elapsed for w in waited],
            "sim_cpu": {name: share(pid) for name, pid in self.sim_pids.items()},
            "rss": [procs.rss_mb(pid) for pid in self.daemon_pids],
            "stats": stats,
            "loop_lag_p99_ms": max(known_lags) if known_lags else None,
            "load_average": procs.load_average(),
            "other_busy": procs.busy_others(snap_before, snap_after, pids),
        }

    def _call_summaries(self, ended_before: Sequence[int], calls: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + END_TIMEOUT_S
        while time.monotonic() < deadline:
            ended = [
                d.events("call_ended")[n:]
                for d, n in zip(self.stack.daemons, ended_before, strict=True)
            ]
            summaries = [s for per_daemon in ended for s in per_daemon]
            if len(summaries) >= calls:
                return summaries
            time.sleep(0.2)
        return summaries

    def _speakers(self, calls: Mapping[str, latency.CallStreams]) -> dict[str, tuple[str, str]]:
        """Utterance id -> (call id, speaking role), from each daemon's transcript API."""
        speakers: dict[str, tuple[str, str]] = {}
        headers = {"Authorization": f"Bearer {self.web_token}"}
        for call in calls.values():
            try:
                response = self.http.get(
                    f"{call.daemon_url}/api/calls/{call.call_id}", headers=headers
                )
                response.raise_for_status()
            except httpx.HTTPError:
                continue
            for utterance in response.json().get("utterances", []):
                speakers[str(utterance["utterance_id"])] = (call.call_id, str(utterance["speaker"]))
        return speakers

    def _figures(
        self,
        calls: int,
        bridged: int,
        rss_idle: Sequence[float],
        window: Mapping[str, Any],
        summaries: Sequence[Mapping[str, Any]],
        palabra: Mapping[str, Any],
    ) -> dict[str, Any]:
        stats = window["stats"]
        streams = stats["streams"]
        by_call = latency.group_streams(streams)
        wall = window["wall"]
        translated = latency.translated_latencies(
            by_call, palabra, self._speakers(by_call), self.languages, wall
        )
        daemon_cpu = sum(window["daemon_cpu"])
        step: dict[str, Any] = {
            "calls": calls,
            "bridged": bridged,
            "window_s": round(window["elapsed_s"], 2),
            "daemon_cpu_pct": round(max(window["daemon_cpu"]) * 100, 1),
            "daemons_cpu_pct": [round(c * 100, 1) for c in window["daemon_cpu"]],
            # Runnable but waiting for a CPU, in % of the window: the neighbours' share.
            "daemon_runqueue_wait_pct": round(max(window["daemon_waited"]) * 100, 1),
            "cpu_ms_per_call_s": round(daemon_cpu * 1000 / max(bridged, 1), 2),
            "idle_cpu_pct": self.idle_cpu_pct,
            "rss_mb": [round(r, 1) for r in window["rss"]],
            "rss_mb_per_call": round((sum(window["rss"]) - sum(rss_idle)) / max(bridged, 1), 3),
            "lateness": stats["lateness"],
            "jitter": stats["jitter"],
            "late_frames": sum(s["underrun_frames"] for s in streams),
            "sim_late_ticks": sum(s["late_ticks"] for s in streams),
            "sim_warnings": sum(s["warnings"] for s in streams),
            "dropped_frames": _dropped(summaries) + sum(s["warnings"] for s in streams),
            "dropped_detail": _dropped_detail(summaries),
            "latency": {
                "original": latency.original_latencies(by_call, wall[1]).summary(),
                "translated": translated.summary(),
            },
            "loop_lag_p99_ms": window["loop_lag_p99_ms"],
            "load_average": window["load_average"],
            "other_busy": window["other_busy"],
            "sim_cpu_pct": {k: round(v * 100, 1) for k, v in window["sim_cpu"].items()},
            "streams_measured": len(streams),
            "phase_spread_slots": len({int(s["phase_ms"] or 0) for s in streams}),
            "end_reasons": _reasons(summaries),
        }
        step["failed"] = self.criteria.failures(step)
        return step


def per_instance(bridged: Sequence[int], cpu: Sequence[float]) -> list[dict[str, float]]:
    """Per daemon: the calls it carried in the window, its CPU (% of a core) and its CPU per
    call-second (ms), so N instances can be compared with one."""
    return [
        {
            "calls": calls,
            "cpu_pct": round(share * 100, 1),
            "cpu_ms_per_call_s": round(share * 1000 / calls, 2) if calls else 0.0,
        }
        for calls, share in zip(bridged, cpu, strict=True)
    ]


def _dropped_detail(summaries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    detail = {"send_dropped": 0, "translator_feed_dropped": 0}
    for summary in summaries:
        for role in ("caller", "operator"):
            detail["send_dropped"] += int(
                summary.get("media", {}).get(role, {}).get("send_dropped", 0)
            )
        detail["translator_feed_dropped"] += sum(
            int(n) for n in summary.get("translator_feed_dropped", {}).values()
        )
    return detail


def _dropped(summaries: Sequence[Mapping[str, Any]]) -> int:
    return sum(_dropped_detail(summaries).values())


def _reasons(summaries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for summary in summaries:
        reason = str(summary.get("reason"))
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons
