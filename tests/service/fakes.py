"""In-memory stand-ins for the daemon the metrics and health code read."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from callbridge.metrics.counters import CallCounters
from callbridge.metrics.live import PlayoutSample, StoreFigures


def store_figures(**changes: object) -> StoreFigures:
    base = StoreFigures(
        writer_alive=True,
        directory_writable=True,
        queue_depth=0,
        queue_capacity=20_000,
        written=10,
        failed_writes=0,
        dropped=0,
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


@attrs.define
class FakeDaemon:
    """A ``LiveSource``: live calls' counters by id, a store, playout samples."""

    live_calls: dict[str, CallCounters] = attrs.Factory(dict)
    draining: bool = False
    figures: StoreFigures = attrs.Factory(store_figures)
    samples: list[PlayoutSample] = attrs.Factory(list)
    feeds_dropped: int = 0

    @property
    def active_calls(self) -> int:
        return len(self.live_calls)

    def calls(self) -> Iterable[tuple[str, CallCounters]]:
        return list(self.live_calls.items())

    def counters_of(self, call_id: str) -> CallCounters:
        return CallCounters(self.live_calls.get(call_id, CallCounters()))

    def playout(self) -> Iterable[PlayoutSample]:
        return list(self.samples)

    def store(self) -> StoreFigures:
        return self.figures

    def feed_subscribers_dropped(self) -> int:
        return self.feeds_dropped


@attrs.define
class RecordingNotifier:
    """A ``SystemdNotifier`` stand-in that records what would have been sent, with times."""

    watchdog_interval_s: float | None = 1.0
    sent: list[tuple[float, str]] = attrs.Factory(list)

    def _record(self, text: str) -> bool:
        import trio

        self.sent.append((trio.current_time(), text))
        return True

    def watchdog(self) -> bool:
        return self._record("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self._record(f"STATUS={text}")

    def ready(self, status: str) -> bool:
        return self._record(f"READY=1\nSTATUS={status}")
