"""Is the daemon alive, and should it get calls? The event-loop monitor and ``/readyz``.

``LoopMonitor.run`` is one small task in the root nursery. Every ``tick_s`` it sleeps until a
deadline and measures how late it woke: that lag is ``callbridge_event_loop_lag_seconds``. The
same task sends systemd's ``WATCHDOG=1`` (at half of ``WatchdogSec=``), but only while the lag
stays under ``LAG_LIMIT_S``: a loop wedged by a blocking call sends nothing, and systemd restarts
the unit when ``WatchdogSec=`` passes without a ping. It also keeps ``STATUS=`` current and
samples each live listener's playout delay once a second.

``Readiness`` answers ``/readyz``: ready only when not draining, below ``server.max_calls`` and
the transcript store is writable. A load balancer in front of several instances sends new calls
only to ready ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import attrs
import trio

from callbridge.log import get_logger
from callbridge.service.systemd import SystemdNotifier

__all__ = ["LAG_LIMIT_S", "LoopMonitor", "Readiness", "ReadyState", "StoreFigures", "StoreProbe"]

log = get_logger("callbridge.service.health")

TICK_S: Final = 0.25  # how often the loop's lag is measured
LAG_LIMIT_S: Final = 1.0  # a loop this late is not healthy: no watchdog ping
SAMPLE_EVERY_S: Final = 1.0  # playout delay samples per listener
STORE_FULL_FRACTION: Final = 0.9  # a store queue this full no longer counts as writable


@attrs.frozen
class StoreFigures:
    """The transcript store's health as metrics and ``/readyz`` see it."""

    writer_alive: bool
    directory_writable: bool
    queue_depth: int
    queue_capacity: int
    written: int
    failed_writes: int
    dropped: int


class LoopMetrics(Protocol):
    def loop_lag(self, seconds: float) -> None: ...

    def sample_playout(self) -> None: ...


@attrs.define
class LoopMonitor:
    """See the module docstring. ``status`` gives the ``STATUS=`` text (sent when it changes)."""

    notifier: SystemdNotifier
    metrics: LoopMetrics
    status: Callable[[], str]
    tick_s: float = TICK_S
    last_lag_s: float = 0.0
    _last_status: str = ""
    _next_ping: float = 0.0
    _next_sample: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.last_lag_s < LAG_LIMIT_S

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        now = trio.current_time()
        self._next_ping = self._next_sample = now
        task_status.started()
        due = now + self.tick_s
        while True:
            await trio.sleep_until(due)
            now = trio.current_time()
            self.on_tick(now, now - due)
            # From now, not from ``due``: a stalled loop must not be followed by a burst of ticks.
            due = now + self.tick_s

    def on_tick(self, now: float, lag_s: float) -> None:
        self.last_lag_s = max(0.0, lag_s)
        self.metrics.loop_lag(self.last_lag_s)
        if not self.healthy:
            log.warning("event_loop_lag", lag_s=round(self.last_lag_s, 3), limit_s=LAG_LIMIT_S)
        interval = self.notifier.watchdog_interval_s
        if interval is not None and self.healthy and now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + interval
        if now >= self._next_sample:
            self.metrics.sample_playout()
            self._next_sample = now + SAMPLE_EVERY_S
        self.send_status()

    def ready(self) -> None:
        """``READY=1`` with the current ``STATUS=``."""
        text = self.status()
        if self.notifier.ready(text):
            self._last_status = text

    def send_status(self) -> None:
        text = self.status()
        if text != self._last_status and self.notifier.status(text):
            self._last_status = text


@attrs.frozen
class ReadyState:
    ready: bool
    reason: str | None = None  # draining | max_calls | store_not_writable
    detail: str = ""


@attrs.define
class StoreProbe:
    """Judges the store from successive ``StoreFigures``: failing when the writer is gone, its
    directory is read-only, its queue is nearly full, or writes failed with none succeeding
    since the previous look."""

    _written: int = 0
    _failed: int = 0
    _failing: bool = False

    def problem(self, figures: StoreFigures) -> str | None:
        if figures.failed_writes > self._failed:
            self._failing = figures.written == self._written
        elif figures.written > self._written:
            self._failing = False
        self._written, self._failed = figures.written, figures.failed_writes
        if not figures.writer_alive:
            return "the store's writer thread is not running"
        if not figures.directory_writable:
            return "the state directory is not writable"
        if figures.queue_depth >= STORE_FULL_FRACTION * figures.queue_capacity:
            return f"the store queue is {figures.queue_depth}/{figures.queue_capacity} full"
        if self._failing:
            return "the last store writes failed"
        return None


class DaemonState(Protocol):
    @property
    def active_calls(self) -> int: ...

    @property
    def draining(self) -> bool: ...

    def store(self) -> StoreFigures: ...


@attrs.define
class Readiness:
    """``check()`` -> ``ReadyState`` for ``/readyz``."""

    daemon: DaemonState
    max_calls: int
    probe: StoreProbe = attrs.Factory(StoreProbe)

    def check(self) -> ReadyState:
        if self.daemon.draining:
            return ReadyState(False, "draining", "a shutdown signal arrived; live calls finish")
        active = self.daemon.active_calls
        if active >= self.max_calls:
            return ReadyState(False, "max_calls", f"{active} of {self.max_calls} calls active")
        problem = self.probe.problem(self.daemon.store())
        if problem is not None:
            return ReadyState(False, "store_not_writable", problem)
        return ReadyState(True)


def status_text(active: int, max_calls: int, draining: bool) -> str:
    """The ``STATUS=`` line ``systemctl status`` shows."""
    if draining:
        return f"Draining: {active} call(s) still live"
    return f"Serving: {active} active call(s) of {max_calls}"
