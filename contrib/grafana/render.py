"""Render ``callbridge.json``'s panels from a real run, without Grafana.

Grafana is not packaged by Debian, so the screenshot in ``docs/`` is made this way: the real
daemon and both simulators run (``callbridge.sim.stack.Stack``) with ``metrics.listen`` set, a
real Prometheus (Debian's ``prometheus`` package) scrapes them every 2 s while a few calls are
placed, and each panel's own PromQL (``$__rate_interval`` read as ``30s``, ``$instance`` as
``.*``) is asked of Prometheus's ``query_range`` API and drawn with matplotlib in the dashboard's
grid. Tools needed beyond callbridge's dev install: ``apt-get install prometheus`` and
``pip install matplotlib``.

    python contrib/grafana/render.py --out docs/screenshots/grafana-dashboard.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from callbridge.sim.stack import Stack, StackOptions, free_port

HERE = Path(__file__).resolve().parent
STEP_S = 5


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--out", type=Path, default=Path("docs/screenshots/grafana-dashboard.png"))
    args.add_argument("--rounds", type=int, default=4, help="rounds of calls to place")
    options = args.parse_args()
    dashboard = json.loads((HERE / "callbridge.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="callbridge-grafana-") as tmp:
        metrics_port, prom_port = free_port(), free_port()
        stack = Stack(
            StackOptions(
                workdir=Path(tmp) / "stack",
                palabra_args=("--ready-delay-s", "0.3"),
                config_toml=f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n',
            )
        )
        prometheus = _start_prometheus(Path(tmp), metrics_port, prom_port)
        try:
            with stack:
                start = time.time()
                _drive_calls(stack, options.rounds)
                time.sleep(10)  # two more scrapes after the last call
                end = time.time()
                series = _query_panels(dashboard, f"http://127.0.0.1:{prom_port}", start, end)
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)
    _draw(dashboard, series, start, options.out)
    print(f"wrote {options.out}")


def _start_prometheus(tmp: Path, metrics_port: int, prom_port: int) -> subprocess.Popen[bytes]:
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
        "scrape_configs:\n"
        "  - job_name: callbridge\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n",
        encoding="utf-8",
    )
    log = (tmp / "prometheus.log").open("wb")
    return subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=log,
    )


def _call(stack: Stack, hangup: str, after_s: float) -> None:
    sid = stack.place_call()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = stack.report("twilio")
        heard = sum(
            1
            for s in report["streams"]
            for m in s["marks"]
            if m["name"].startswith("u:") and m["echoed_at"]
        )
        if heard >= 2:
            break
        time.sleep(0.5)
    time.sleep(after_s)
    stack.sim_post("twilio", "/_sim/hangup", {"call_sid": sid} if hangup == "caller" else
                   {"party": "operator"})  # fmt: skip


def _drive_calls(stack: Stack, rounds: int) -> None:
    """Rounds of two overlapping calls (one ended by each side) and one caller who gives up."""
    for k in range(rounds):
        threads = [
            threading.Thread(target=_call, args=(stack, "caller", 4.0 + k)),
            threading.Thread(target=_call, args=(stack, "operator", 8.0)),
        ]
        for thread in threads:
            thread.start()
            time.sleep(3)
        stack.place_call(hangup_at_s=1.5)
        for thread in threads:
            thread.join()
        stack.wait_idle(60)


def _query_panels(
    dashboard: dict[str, Any], prometheus: str, start: float, end: float
) -> dict[int, list[tuple[str, list[tuple[float, float]]]]]:
    found: dict[int, list[tuple[str, list[tuple[float, float]]]]] = {}
    with httpx.Client(timeout=30) as http:
        for panel in dashboard["panels"]:
            lines = []
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "30s").replace("$instance", ".*")
                reply = http.get(
                    f"{prometheus}/api/v1/query_range",
                    params={"query": expr, "start": start, "end": end, "step": STEP_S},
                ).json()
                for result in reply["data"]["result"]:
                    label = target["legendFormat"]
                    for key, value in result["metric"].items():
                        label = label.replace("{{" + key + "}}", value)
                    points = [(float(t), float(v)) for t, v in result["values"] if v != "NaN"]
                    lines.append((label, points))
            found[panel["id"]] = lines
    return found


def _draw(
    dashboard: dict[str, Any],
    series: dict[int, list[tuple[str, list[tuple[float, float]]]]],
    start: float,
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use("dark_background")
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    fig = plt.figure(figsize=(18, rows * 0.5), facecolor="#111217")
    grid = fig.add_gridspec(rows, 24, hspace=14, wspace=3)
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        ax = fig.add_subplot(grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        ax.set_facecolor("#181b1f")
        ax.set_title(panel["title"], loc="left", fontsize=10, color="#ccccdc")
        for label, points in series.get(panel["id"], []):
            if points:
                ax.plot([t - start for t, _ in points], [v for _, v in points], label=label, lw=1.4)
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        ax.set_ylabel("seconds" if unit == "s" else "", fontsize=8)
        if pos["y"] + pos["h"] == rows:
            ax.set_xlabel("seconds into the run", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(color="#2c3235", lw=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", framealpha=0.3)
    fig.suptitle(
        "callbridge dashboard (contrib/grafana/callbridge.json) - panels rendered from Prometheus "
        "by contrib/grafana/render.py, real daemon + simulators",
        fontsize=11,
        color="#ccccdc",
        x=0.01,
        ha="left",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor=fig.get_facecolor(), bbox_inches="tight")


if __name__ == "__main__":
    main()
