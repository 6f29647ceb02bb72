"""``ServiceLifecycle``: what ``serve`` tells systemd, and the loop monitor it runs meanwhile.

The order ``serve`` drives it in:

1. ``async with lifecycle.monitoring():`` starts :class:`callbridge.service.health.LoopMonitor` (loop lag,
   ``WATCHDOG=1`` while healthy, ``STATUS=`` on change, playout samples);
2. ``ready()`` once the socket listens and the transcript store is open: ``READY=1`` + ``STATUS=``;
3. ``stopping()`` at the first SIGTERM/SIGINT: ``STOPPING=1``;
4. ``extend_while_draining()`` in the drain's nursery: ``EXTEND_TIMEOUT_USEC=`` every
   ``EXTEND_EVERY_S``, so a drain longer than ``TimeoutStopSec=`` is not killed while it makes
   progress; a wedged drain stops asking and is killed ``EXTEND_BY_S`` later.

Source: https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import attrs
import trio

from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.registry import Metrics
from callbridge.service.health import LoopMonitor, status_text
from callbridge.service.systemd import SystemdNotifier

__all__ = ["EXTEND_BY_S", "EXTEND_EVERY_S", "ServiceLifecycle"]

EXTEND_EVERY_S: Final = 5.0
EXTEND_BY_S: Final = 15.0


@attrs.define
class ServiceLifecycle:
    notifier: SystemdNotifier
    live: LiveDaemon
    metrics: Metrics
    max_calls: int

    def status(self) -> str:
        return status_text(self.live.active_calls, self.max_calls, self.live.draining)

    _monitor: LoopMonitor | None = None

    @asynccontextmanager
    async def monitoring(self) -> AsyncIterator[LoopMonitor]:
        """Run the loop monitor for the ``async with`` block."""
        monitor = self._monitor = LoopMonitor(self.notifier, self.metrics, self.status)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            try:
                yield monitor
            finally:
                nursery.cancel_scope.cancel()

    def ready(self) -> None:
        if self._monitor is not None:
            self._monitor.ready()
        else:
            self.notifier.ready(self.status())

    def stopping(self) -> None:
        self.notifier.stopping(f"Stopping: {self.live.active_calls} call(s) still live")

    async def extend_while_draining(self) -> None:
        """Ask for more stop time every ``EXTEND_EVERY_S`` until cancelled."""
        while True:
            self.notifier.extend_timeout(EXTEND_BY_S)
            await trio.sleep(EXTEND_EVERY_S)
