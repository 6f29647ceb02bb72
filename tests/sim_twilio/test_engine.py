"""The fake Twilio's media engine: per-stream phases on one clock, bunching, socket reads."""

from __future__ import annotations

import socket

import attrs
import pytest
import trio
import trio.testing

from callbridge.sim.twilio.engine import MediaEngine


@attrs.define(eq=False)
class Recorder:
    stop_after: int = 1_000_000
    ticks: list[tuple[float, float]] = attrs.Factory(list)  # (deadline, ran at)

    def tick(self, deadline: float, now: float) -> bool:
        self.ticks.append((deadline, now))
        return len(self.ticks) < self.stop_after


async def test_each_stream_keeps_its_own_phase_rounded_up_to_the_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = MediaEngine()
    a, b = Recorder(stop_after=5), Recorder(stop_after=5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run)
        await trio.sleep(0.0103)  # the engine's origin is its first add, so add one first
        t0 = engine.add(a)
        await trio.sleep(0.0072)
        tb = engine.add(b)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert tb - t0 == pytest.approx(0.008)  # 7.2 ms later, rounded up to the next 1 ms slot
    assert [d - t0 for d, _ in a.ticks] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    assert [d - tb for d, _ in b.ticks] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    assert all(now == pytest.approx(d) for d, now in a.ticks + b.ticks)
    assert engine.streams == 0  # both said stop after 5 ticks


async def test_a_late_wake_up_runs_every_overdue_tick_and_says_when(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = MediaEngine()
    stream = Recorder()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run)
        await trio.lowlevel.checkpoint()
        t0 = engine.add(stream)
        await trio.sleep(0.05)
        autojump_clock.jump(0.1)  # the whole process stalled for 100 ms past its deadline
        await trio.sleep(0.001)
        engine.remove(stream)
        count = len(stream.ticks)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert len(stream.ticks) == count  # removed: no more ticks
    deadlines = [d - t0 for d, _ in stream.ticks]
    assert deadlines == pytest.approx([0.02 * i for i in range(len(deadlines))])
    late = [(d, now) for d, now in stream.ticks if now - d > 0.01]
    assert len(late) >= 4 and len({now for _, now in late}) == 1  # bunched, in one pass


async def test_readable_sockets_are_served_and_a_paused_one_waits() -> None:
    engine = MediaEngine()
    left, right = socket.socketpair()
    got: list[bytes] = []

    class Reader:
        def on_readable(self) -> None:
            got.append(left.recv(100))

    left.setblocking(False)
    with left, right, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.run)
            engine.watch(left.fileno(), Reader())
            right.send(b"one")
            while not got:
                await trio.sleep(0.005)
            engine.pause(left.fileno())
            right.send(b"two")
            await trio.sleep(0.05)
            assert got == [b"one"]
            engine.resume(left.fileno())
            while len(got) < 2:
                await trio.sleep(0.005)
            engine.unwatch(left.fileno())
            nursery.cancel_scope.cancel()
    assert got == [b"one", b"two"]
