"""The load sweep's outputs: a progress line per step, the JSON record, a markdown table, a plot.

The plot needs matplotlib, the ``bench`` extra (``pip install -e '.[bench]'``; ``make
bench-load`` installs it). Without it the JSON and markdown are still written and the plot is
skipped with a one-line note.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown", "progress_line", "write_outputs"]

Step = Mapping[str, Any]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def progress_line(step: Step) -> str:
    """One line per step, printed as the sweep goes."""
    late, lat = step["lateness"], step["latency"]
    return (
        f"{step['calls']:>4} calls: daemon {step['daemon_cpu_pct']:5.1f} % = "
        f"{_fmt(step['cpu_ms_per_call_s'])} ms/call-s, RSS {_fmt(step['rss_mb_per_call'], 2)} MB/call, "
        f"lateness p50/p99/max {_fmt(late['p50_ms'])}/{_fmt(late['p99_ms'])}/{_fmt(late['max_ms'])} ms, "
        f"late frames {step['late_frames']}, dropped {step['dropped_frames']}, "
        f"original p50 {_fmt(lat['original']['p50_ms'])} ms, translated p50 {_fmt(lat['translated']['p50_ms'])} ms, "
        f"loop lag p99 {_fmt(step['loop_lag_p99_ms'])} ms, load {step['load_average'][0]:.2f}, "
        f"daemon waited for a CPU {step['daemon_runqueue_wait_pct']:.0f} %, "
        f"sims {step['sim_cpu_pct']['twilio']:.0f}+{step['sim_cpu_pct']['palabra']:.0f} % "
        f"{instances_text(step)}"
        f"-> {'ok' if not step['failed'] else 'FAIL: ' + ', '.join(step['failed'])}"
    )


def instances_text(step: Step) -> str:
    """``per instance: 4 / 3 / 3 calls, 31 / 24 / 25 % CPU `` with several daemons, else ""."""
    rows = step.get("per_instance") or []
    if len(rows) < 2:
        return ""
    calls = " / ".join(str(r["calls"]) for r in rows)
    cpu = " / ".join(f"{r['cpu_pct']:.0f}" for r in rows)
    return f"per instance: {calls} calls, {cpu} % CPU "


def instances_table(steps: Sequence[Step]) -> list[str]:
    """Calls and CPU per instance and step, when the sweep ran several daemons."""
    widths = {len(s.get("per_instance") or []) for s in steps}
    if not widths or max(widths) < 2:
        return []
    n = max(widths)
    head = " | ".join(f"instance {i + 1}: calls, CPU %, ms/call-s" for i in range(n))
    lines = ["", "Per instance:", "", f"| calls | {head} |", "|---:|" + "---|" * n]
    for s in steps:
        cells = " | ".join(
            f"{r['calls']}, {_fmt(r['cpu_pct'])}, {_fmt(r['cpu_ms_per_call_s'], 2)}"
            for r in s.get("per_instance") or []
        )
        lines.append(f"| {s['calls']} | {cells} |")
    return lines


def markdown(run: Mapping[str, Any]) -> str:
    """The sweep as a markdown table, with the run's context above it."""
    meta = run["meta"]
    lines = [
        f"Load sweep `{meta['label']}` at {meta['started']}: {meta['machine']}; "
        f"{meta['daemons']} daemon(s); window {meta['window_s']:.0f} s per step; "
        f"placement: {meta['pinning']}.",
        "",
        "| calls | CPU ms/call-s | daemon CPU % | RSS MB/call | lateness p50 / p99 / max ms | "
        "late frames (sim-late ticks) | dropped | jitter p99 ms | original p50 / p90 ms | "
        "translated p50 / p90 ms | loop lag p99 ms | load avg | other busy | daemon waited for CPU % | "
        "sims CPU % | verdict |",
        "|---:|---:|---:|---:|---|---|---:|---:|---|---|---:|---:|---:|---:|---|---|",
    ]
    for s in run["steps"]:
        late, orig, trans = s["lateness"], s["latency"]["original"], s["latency"]["translated"]
        lines.append(
            f"| {s['calls']} | {_fmt(s['cpu_ms_per_call_s'])} | {_fmt(s['daemon_cpu_pct'])} | "
            f"{_fmt(s['rss_mb_per_call'], 2)} | {_fmt(late['p50_ms'])} / {_fmt(late['p99_ms'])} / "
            f"{_fmt(late['max_ms'])} | {s['late_frames']} ({s['sim_late_ticks']}) | "
            f"{s['dropped_frames']} | {_fmt(s['jitter']['p99_ms'])} | "
            f"{_fmt(orig['p50_ms'])} / {_fmt(orig['p90_ms'])} | "
            f"{_fmt(trans['p50_ms'])} / {_fmt(trans['p90_ms'])} | {_fmt(s['loop_lag_p99_ms'])} | "
            f"{s['load_average'][0]:.2f} | {len(s['other_busy'])} | "
            f"{s['daemon_runqueue_wait_pct']:.0f} | "
            f"{s['sim_cpu_pct']['twilio']:.0f} + {s['sim_cpu_pct']['palabra']:.0f} | "
            f"{'ok' if not s['failed'] else ', '.join(s['failed'])} |"
        )
    lines += instances_table(run["steps"])
    if run.get("profile"):
        lines += ["", *profile_table(run["profile"])]
    return "\n".join(lines) + "\n"


def profile_table(profile: Mapping[str, Any]) -> list[str]:
    lines = [
        f"Profile of the daemon at {profile['calls']} calls ({profile['samples']} samples, "
        f"py-spy {profile['mode']}; speedscope: `{profile['speedscope']}`):",
        "",
        "| stage | share of CPU |",
        "|---|---:|",
    ]
    lines += [f"| {stage} | {share:.1f} % |" for stage, share in profile["stages"].items()]
    return lines


def write_outputs(run: Mapping[str, Any], out_dir: Path, label: str) -> list[Path]:
    """``load-{label}.json``, ``.md`` and (with matplotlib) ``.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"load-{label}.json", out_dir / f"load-{label}.md"]
    paths[0].write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(run), encoding="utf-8")
    png = out_dir / f"load-{label}.png"
    if plot(run["steps"], png, label):
        paths.append(png)
    return paths


def plot(steps: Sequence[Step], path: Path, label: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot written")
        return False
    calls = [s["calls"] for s in steps]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    cpu, late, lat, rss = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    cpu.plot(calls, [s["cpu_ms_per_call_s"] for s in steps], "o-", label="CPU ms per call-second")
    cpu.plot(calls, [s["daemon_cpu_pct"] for s in steps], "s--", label="daemon CPU % of a core")
    cpu.axhline(15, color="grey", lw=0.8, ls=":", label="target 15 ms")
    cpu.set_title("daemon CPU")
    late.plot(calls, [s["lateness"]["p99_ms"] or 0 for s in steps], "o-", label="lateness p99")
    late.plot(calls, [s["lateness"]["max_ms"] or 0 for s in steps], "^:", label="lateness max")
    late.plot(calls, [s["jitter"]["p99_ms"] or 0 for s in steps], "s--", label="jitter p99")
    late.axhline(20, color="red", lw=0.8, ls=":", label="20 ms")
    late.set_title("outbound frames at the listener (ms)")
    for path_name, mark in (("original", "o-"), ("translated", "s-")):
        values = [s["latency"][path_name]["p50_ms"] for s in steps]
        lat.plot(calls, [v if v is not None else float("nan") for v in values], mark,
                 label=f"{path_name} p50")  # fmt: skip
    lat.axhline(40, color="grey", lw=0.8, ls=":")
    lat.axhline(60, color="grey", lw=0.8, ls="--")
    lat.set_title("added latency at the listener (ms)")
    rss.plot(calls, [s["rss_mb_per_call"] or 0 for s in steps], "o-", label="RSS MB per call")
    rss.axhline(2, color="grey", lw=0.8, ls=":", label="target 2 MB")
    rss.set_title("memory")
    for ax in (cpu, late, lat, rss):
        ax.set_xlabel("concurrent calls")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"callbridge load sweep: {label}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
