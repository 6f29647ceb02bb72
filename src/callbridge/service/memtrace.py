"""Where the daemon's memory goes: ``tracemalloc`` snapshots on ``SIGUSR1``, for leak hunts.

Off unless the environment sets ``CALLBRIDGE_TRACEMALLOC`` to a number of stack frames to keep
per allocation (``1`` names the line; ``8`` also names who called it). The daemon then starts
``tracemalloc`` once it is up (so the imports are not traced: tracing them makes start-up ten
times slower), and each ``SIGUSR1`` logs one ``memory_top`` line per top allocation site
(``TOP`` of them, grouped by traceback) and a ``memory_traced`` total: the first dump as sizes,
every later one as the growth since the previous dump. Two dumps a few minutes apart under a
steady load name what accumulates::

    CALLBRIDGE_TRACEMALLOC=8 callbridge serve ...
    kill -USR1 $PID; sleep 300; kill -USR1 $PID   # then read the memory_top lines

A daemon already tracing (Python's own ``PYTHONTRACEMALLOC``) dumps the same way.
``benchmarks/soak.py --tracemalloc 8`` does exactly this.

Costs, and why it stays out of production: tracing every allocation slows Python about 2x and
adds memory per live block (https://docs.python.org/3/library/tracemalloc.html); a dump walks
every traced block on the event loop (around a second for a 100 MB heap, which the loop monitor
reports as lag). Nothing on the media path checks the setting: when Python is not tracing, the
task below returns at once and ``SIGUSR1`` keeps its default action (the process ends).
The variable is read here, not by ``config``: it is a debugging switch, not a setting.
"""

from __future__ import annotations

import linecache
import signal
import tracemalloc
from collections.abc import AsyncIterator, Mapping
from typing import Final

import trio

from callbridge.log import get_logger

__all__ = ["ENV_VAR", "TOP", "dump_growth", "frames_from_env", "serve_memory_dumps"]

log = get_logger("callbridge.service.memtrace")

ENV_VAR: Final = "CALLBRIDGE_TRACEMALLOC"
TOP: Final = 25  # allocation sites per dump
MAX_FRAMES: Final = 64
# Allocations of the tracer itself, of imports and of the dump are noise in a leak hunt.
_IGNORED: Final = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
    tracemalloc.Filter(False, linecache.__file__),  # the dump's own source lines
)


def frames_from_env(environ: Mapping[str, str]) -> int | None:
    """Frames per traced allocation from ``CALLBRIDGE_TRACEMALLOC`` (1..64), or None when it is
    unset, empty or ``0``. Raises ``ValueError`` for anything else: a typo must not pass for
    "off" during a leak hunt."""
    raw = environ.get(ENV_VAR, "").strip()
    if raw in ("", "0"):
        return None
    frames = int(raw) if raw.isdigit() else 0
    if not 1 <= frames <= MAX_FRAMES:
        msg = f"{ENV_VAR} must be a number of stack frames, 0..{MAX_FRAMES}; got {raw!r}"
        raise ValueError(msg)
    return frames


def dump_growth(previous: tracemalloc.Snapshot | None, top: int = TOP) -> tracemalloc.Snapshot:
    """Log the ``top`` allocation sites (grouped by traceback): their size and count now, and
    their growth since ``previous`` when given. Returns the new snapshot for the next dump.
    ``tracemalloc`` must be tracing."""
    snapshot = tracemalloc.take_snapshot().filter_traces(_IGNORED)
    if previous is None:
        rows = [
            (stat.traceback, stat.size, stat.count, stat.size, stat.count)
            for stat in snapshot.statistics("traceback")[:top]
        ]
    else:
        rows = [
            (stat.traceback, stat.size, stat.count, stat.size_diff, stat.count_diff)
            for stat in snapshot.compare_to(previous, "traceback")[:top]
        ]
    for rank, (where, size, count, size_diff, count_diff) in enumerate(rows, start=1):
        log.info(
            "memory_top",
            rank=rank,
            size_kib=round(size / 1024, 1),
            count=count,
            growth_kib=round(size_diff / 1024, 1),
            count_growth=count_diff,
            where=[line.strip() for line in where.format(most_recent_first=True) if line.strip()],
        )
    current, peak = tracemalloc.get_traced_memory()
    log.info(
        "memory_traced", traced_kib=round(current / 1024), peak_kib=round(peak / 1024), top=top
    )
    return snapshot


async def serve_memory_dumps(
    environ: Mapping[str, str],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Root-nursery task: with ``CALLBRIDGE_TRACEMALLOC`` set (or Python already tracing), trace
    allocations and dump the top sites on every ``SIGUSR1`` until ``stop`` is set; otherwise
    return at once. Started (``nursery.start``) once ``SIGUSR1`` is handled. A malformed setting
    is logged (``tracemalloc_invalid``) and leaves tracing off: a debugging switch never stops
    the daemon."""
    try:
        frames = frames_from_env(environ)
    except ValueError as exc:
        log.error("tracemalloc_invalid", error=str(exc))
        frames = None
    started = frames is not None and not tracemalloc.is_tracing()
    if frames is not None and started:
        tracemalloc.start(frames)
    if not tracemalloc.is_tracing():
        task_status.started()
        return
    log.warning(
        "tracemalloc_on",
        frames=tracemalloc.get_traceback_limit(),
        signal="SIGUSR1",
        hint="debugging only: slow",
    )
    try:
        with trio.open_signal_receiver(signal.SIGUSR1) as signals:
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_dump_each, signals)
                await stop.wait()
                nursery.cancel_scope.cancel()
    finally:
        if started:
            tracemalloc.stop()


async def _dump_each(signals: AsyncIterator[int]) -> None:
    previous: tracemalloc.Snapshot | None = None
    async for _ in signals:
        previous = dump_growth(previous)
