"""``LinkLifetime``: the link's one cancel scope and its named transitions, on the mock clock."""

from __future__ import annotations

import trio
import trio.testing

from callbridge.palabra.lifetime import LinkLifetime, LinkState


def state(lifetime: LinkLifetime) -> LinkState:
    """Read afresh (mypy would otherwise keep the value narrowed by an earlier assert)."""
    return lifetime.state


async def test_before_ready_close_cancels_at_once(autojump_clock: trio.testing.MockClock) -> None:
    lifetime = LinkLifetime()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifetime.run, trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        assert state(lifetime) == "starting"
        start = trio.current_time()
        await lifetime.close(grace_s=5.0)
    assert trio.current_time() == start  # nothing streaming: no goodbye to wait for
    assert state(lifetime) == "finished" and lifetime.finished.is_set()


async def test_a_started_link_survives_its_callers_cancellation_until_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the first ready() the body is shielded: cancelling the caller's scope does not
    reach it; close() lets it finish its goodbye within the grace."""
    lifetime = LinkLifetime()
    said_goodbye = trio.Event()

    async def supervisor() -> None:
        assert lifetime.ready() is True
        assert lifetime.ready() is False  # a reconnect's readiness starts nothing new
        await lifetime.closing.wait()
        await trio.sleep(1.0)  # the goodbye
        said_goodbye.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifetime.run, supervisor)
        await trio.testing.wait_all_tasks_blocked()
        assert state(lifetime) == "streaming"
        nursery.cancel_scope.cancel()  # the call ends
        await lifetime.close(grace_s=5.0)
    assert said_goodbye.is_set()
    assert state(lifetime) == "finished"


async def test_close_bounds_a_hung_goodbye(autojump_clock: trio.testing.MockClock) -> None:
    lifetime = LinkLifetime()

    async def supervisor() -> None:
        lifetime.ready()
        await trio.sleep_forever()  # never finishes its goodbye

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifetime.run, supervisor)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await lifetime.close(grace_s=3.0)
    assert trio.current_time() - start == 3.0
    assert lifetime.finished.is_set()


async def test_closing_while_reconnecting_waits_for_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A drop, then ready again; dropped again and closed during the backoff: nothing is
    streaming, so there is no goodbye to wait for and the backoff is cancelled."""
    lifetime = LinkLifetime()

    async def supervisor() -> None:
        lifetime.ready()
        lifetime.lost()
        assert state(lifetime) == "reconnecting"
        lifetime.ready()
        assert state(lifetime) == "streaming"
        lifetime.lost()
        await trio.sleep(4.0)  # the backoff

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifetime.run, supervisor)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await lifetime.close(grace_s=5.0)
    assert trio.current_time() == start
    assert state(lifetime) == "finished"
