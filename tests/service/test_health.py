"""The loop monitor (lag, watchdog, status) on trio's mock clock, and /readyz's decisions."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import trio
import trio.testing

from callbridge.service.health import LAG_LIMIT_S, LoopMonitor, Readiness, StoreProbe
from tests.service.fakes import FakeDaemon, RecordingNotifier, store_figures


@attrs.define
class LagRecorder:
    lags: list[float] = attrs.Factory(list)
    samples: int = 0

    def loop_lag(self, seconds: float) -> None:
        self.lags.append(seconds)

    def sample_playout(self) -> None:
        self.samples += 1


def monitor(notifier: RecordingNotifier, metrics: LagRecorder, status: str = "ok") -> LoopMonitor:
    return LoopMonitor(notifier, metrics, lambda: status)  # type: ignore[arg-type]


class TestLoopMonitor:
    async def test_pings_the_watchdog_every_half_interval_while_the_loop_is_healthy(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        notifier, metrics = RecordingNotifier(watchdog_interval_s=1.0), LagRecorder()
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor(notifier, metrics).run)
            await trio.sleep(5.1)
            nursery.cancel_scope.cancel()
        pings = [t for t, text in notifier.sent if text == "WATCHDOG=1"]
        assert len(pings) == 5
        assert [round(b - a, 2) for a, b in itertools.pairwise(pings)] == [1.0] * 4
        assert metrics.lags and max(metrics.lags) < 0.01  # one observation per 0.25 s tick
        assert len(metrics.lags) == 20

    async def test_a_blocked_loop_gets_no_ping_and_its_lag_is_observed(
        self, mock_clock: trio.testing.MockClock
    ) -> None:
        notifier, metrics = RecordingNotifier(watchdog_interval_s=1.0), LagRecorder()
        loop = monitor(notifier, metrics)
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.run)
            mock_clock.jump(0.25)
            await trio.testing.wait_all_tasks_blocked()
            pings_before = sum(text == "WATCHDOG=1" for _, text in notifier.sent)
            # Time passes while nothing runs: exactly what a blocking call does to the loop.
            mock_clock.jump(5.0)
            await trio.testing.wait_all_tasks_blocked()
            assert not loop.healthy
            assert sum(text == "WATCHDOG=1" for _, text in notifier.sent) == pings_before
            assert max(metrics.lags) == 4.75  # woken at 5.25 s for a tick due at 0.5 s
            # Once the loop runs on time again, so does the watchdog.
            mock_clock.jump(0.25)
            await trio.testing.wait_all_tasks_blocked()
            assert loop.healthy
            assert sum(text == "WATCHDOG=1" for _, text in notifier.sent) == pings_before + 1
            nursery.cancel_scope.cancel()

    async def test_no_watchdog_configured_means_no_ping(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        notifier = RecordingNotifier(watchdog_interval_s=None)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor(notifier, LagRecorder()).run)
            await trio.sleep(3)
            nursery.cancel_scope.cancel()
        assert all(text != "WATCHDOG=1" for _, text in notifier.sent)

    async def test_status_is_sent_only_when_it_changes_and_ready_counts_as_sent(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        notifier, text = RecordingNotifier(watchdog_interval_s=None), ["Serving: 0"]
        loop = LoopMonitor(notifier, LagRecorder(), lambda: text[0])  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.run)
            loop.ready()
            await trio.sleep(1)
            text[0] = "Serving: 1"
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert [m for _, m in notifier.sent] == ["READY=1\nSTATUS=Serving: 0", "STATUS=Serving: 1"]

    async def test_playout_is_sampled_once_a_second(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        metrics = LagRecorder()
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor(RecordingNotifier(), metrics).run)
            await trio.sleep(4.1)
            nursery.cancel_scope.cancel()
        assert metrics.samples == 4

    def test_lag_limit_is_under_any_sensible_watchdog(self) -> None:
        assert LAG_LIMIT_S <= 1.0


def readiness(daemon: Any, max_calls: int = 2) -> Readiness:
    return Readiness(daemon, max_calls)


class TestReadiness:
    def test_ready_when_idle(self) -> None:
        assert readiness(FakeDaemon()).check().ready

    def test_draining_is_not_ready(self) -> None:
        state = readiness(FakeDaemon(draining=True)).check()
        assert (state.ready, state.reason) == (False, "draining")

    def test_at_max_calls_is_not_ready(self) -> None:
        from callbridge.metrics.counters import CallCounters

        daemon = FakeDaemon(live_calls={"a": CallCounters(), "b": CallCounters()})
        state = readiness(daemon, max_calls=2).check()
        assert (state.ready, state.reason, state.detail) == (
            False,
            "max_calls",
            "2 of 2 calls active",
        )
        assert readiness(daemon, max_calls=3).check().ready

    def test_store_problems_are_not_ready(self) -> None:
        for figures in (
            store_figures(writer_alive=False),
            store_figures(directory_writable=False),
            store_figures(queue_depth=19_000),
        ):
            state = readiness(FakeDaemon(figures=figures)).check()
            assert (state.ready, state.reason) == (False, "store_not_writable"), figures


class TestStoreProbe:
    def test_failing_writes_without_a_success_since_mean_not_writable(self) -> None:
        probe = StoreProbe()
        assert probe.problem(store_figures(written=10, failed_writes=0)) is None
        assert probe.problem(store_figures(written=10, failed_writes=2)) is not None
        # Still nothing written: still failing.
        assert probe.problem(store_figures(written=10, failed_writes=2)) is not None
        # A write went through: the disk is back.
        assert probe.problem(store_figures(written=11, failed_writes=2)) is None

    def test_one_bad_row_among_good_writes_is_not_an_outage(self) -> None:
        probe = StoreProbe()
        probe.problem(store_figures(written=10, failed_writes=0))
        assert probe.problem(store_figures(written=20, failed_writes=1)) is None
