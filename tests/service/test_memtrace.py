"""CALLBRIDGE_TRACEMALLOC: allocation dumps on SIGUSR1 for leak hunts, off by default."""

from __future__ import annotations

import os
import signal
import tracemalloc
from collections.abc import Iterator

import pytest
import trio
from structlog.testing import capture_logs

from callbridge.service.memtrace import (
    ENV_VAR,
    dump_growth,
    frames_from_env,
    serve_memory_dumps,
)


@pytest.fixture
def not_tracing() -> Iterator[None]:
    """Each test starts and ends with tracemalloc off (it is process-wide)."""
    was = tracemalloc.is_tracing()
    tracemalloc.stop()
    yield
    tracemalloc.stop()
    if was:
        tracemalloc.start()


@pytest.mark.parametrize(("raw", "frames"), [("", None), ("0", None), (" 8 ", 8), ("64", 64)])
def test_the_setting_is_a_number_of_frames_or_off(raw: str, frames: int | None) -> None:
    assert frames_from_env({ENV_VAR: raw}) == frames
    assert frames_from_env({}) is None


@pytest.mark.parametrize("raw", ["yes", "-1", "65", "1.5"])
def test_a_malformed_setting_is_refused_not_taken_for_off(raw: str) -> None:
    with pytest.raises(ValueError, match=ENV_VAR):
        frames_from_env({ENV_VAR: raw})


def test_a_dump_names_the_site_that_grew_and_by_how_much(not_tracing: None) -> None:
    tracemalloc.start(4)
    with capture_logs() as logs:
        first = dump_growth(None, top=5)
        kept = [bytearray(1024) for _ in range(512)]  # 512 KiB that stay
        dump_growth(first, top=5)
    del kept
    second = [e for e in logs if e["event"] == "memory_top"][5:]
    top = second[0]
    assert top["rank"] == 1
    assert any(__file__ in line for line in top["where"])
    assert top["count_growth"] >= 512
    assert 512 <= top["growth_kib"] < 600
    assert [e["event"] for e in logs].count("memory_traced") == 2


async def test_off_unless_asked_for(not_tracing: None) -> None:
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_memory_dumps, {}, trio.Event())  # nothing to stop
    assert not tracemalloc.is_tracing()


async def test_a_malformed_setting_is_logged_and_leaves_tracing_off(not_tracing: None) -> None:
    with capture_logs() as logs, trio.fail_after(1):
        await serve_memory_dumps({ENV_VAR: "lots"}, trio.Event())
    assert [e["event"] for e in logs] == ["tracemalloc_invalid"]
    assert not tracemalloc.is_tracing()


async def test_sigusr1_dumps_while_on_and_stopping_turns_tracing_off(not_tracing: None) -> None:
    stop = trio.Event()
    with capture_logs() as logs, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_memory_dumps, {ENV_VAR: "2"}, stop)
            assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 2
            os.kill(os.getpid(), signal.SIGUSR1)
            while not any(e["event"] == "memory_traced" for e in logs):
                await trio.sleep(0.01)  # the signal arrives through trio's wakeup socket
            stop.set()
    assert not tracemalloc.is_tracing()
    assert [e["event"] for e in logs].count("memory_top") >= 1
