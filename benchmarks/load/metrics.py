"""The daemon's event-loop lag, from its Prometheus ``/metrics`` when it has one.

The histogram ``callbridge_event_loop_lag_seconds`` is read in the Prometheus text exposition
format (https://prometheus.io/docs/instrumenting/exposition_formats/): cumulative
``_bucket{le="..."}`` counters. Two scrapes, one at each end of a measurement window, give the
window's own distribution; its p99 is the upper bound of the bucket that holds the 99th
percentile (the usual ``histogram_quantile`` reading, without interpolation).
"""

from __future__ import annotations

import math
import re

import httpx

__all__ = ["LAG_METRIC", "lag_buckets", "lag_p99_ms"]

LAG_METRIC = "callbridge_event_loop_lag_seconds"
_BUCKET = re.compile(LAG_METRIC + r'_bucket\{[^}]*le="([^"]+)"[^}]*\}\s+([0-9.eE+-]+)')

Buckets = dict[float, float]  # upper bound (s) -> cumulative count


def lag_buckets(base_url: str, client: httpx.Client, token: str = "") -> Buckets | None:
    """The lag histogram's cumulative buckets now, or None when the daemon exports none
    (``/metrics`` on the main port wants the web token as a Bearer token)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = client.get(f"{base_url}/metrics", timeout=5, headers=headers)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    buckets: Buckets = {}
    for bound, count in _BUCKET.findall(response.text):
        le = math.inf if bound == "+Inf" else float(bound)
        buckets[le] = buckets.get(le, 0.0) + float(count)  # summed over any labels
    return buckets or None


def lag_p99_ms(before: Buckets | None, after: Buckets | None) -> float | None:
    """p99 of the lag observed between two scrapes, in ms; None when either is missing or
    nothing was observed (report it as "n/a")."""
    if before is None or after is None:
        return None
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= 0.99 * total:
            return bound * 1000 if math.isfinite(bound) else math.inf
    return math.inf
