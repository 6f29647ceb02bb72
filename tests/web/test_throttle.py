"""AuthThrottle on trio's mock clock: failures are slowed, token guesses rate-limited."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.web.throttle import AuthThrottle


async def test_every_failure_is_answered_late(autojump_clock: trio.testing.MockClock) -> None:
    throttle = AuthThrottle()
    start = trio.current_time()
    await throttle.failed("198.51.100.1", guess=False)
    assert trio.current_time() - start == pytest.approx(throttle.delay_s)
    assert throttle.failures == 1


async def test_guesses_beyond_the_burst_wait_for_the_refill(
    autojump_clock: trio.testing.MockClock,
) -> None:
    throttle = AuthThrottle(burst=3, refill_s=10.0, delay_s=0.0)
    client = "198.51.100.1"
    with capture_logs() as logs:
        for _ in range(3):
            assert throttle.retry_after(client) == 0
            await throttle.failed(client, guess=True)
    assert [e["event"] for e in logs] == ["web_auth_throttled"]
    assert throttle.retry_after(client) == pytest.approx(10.0)
    assert throttle.retry_after("198.51.100.2") == 0  # per address
    await trio.sleep(4.0)
    assert throttle.retry_after(client) == pytest.approx(6.0)
    await trio.sleep(6.0)
    assert throttle.retry_after(client) == 0  # exactly one more guess
    await throttle.failed(client, guess=True)
    assert throttle.retry_after(client) == pytest.approx(10.0)
    assert throttle.refusals == 3


async def test_bad_cookies_are_slowed_but_do_not_spend_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    throttle = AuthThrottle(burst=1, delay_s=0.0)
    for _ in range(5):
        await throttle.failed("198.51.100.1", guess=False)
    assert throttle.retry_after("198.51.100.1") == 0


async def test_tracked_addresses_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    throttle = AuthThrottle(burst=2, refill_s=1.0, delay_s=0.0, max_clients=3)
    for n in range(10):
        await throttle.failed(f"198.51.100.{n}", guess=True)
    assert len(throttle._buckets) <= 3
    assert throttle.retry_after("198.51.100.9") == 0 and throttle._buckets["198.51.100.9"]
