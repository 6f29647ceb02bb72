"""One task drives every media stream of the fake Twilio: the 20 ms ticks and the socket reads.

Twilio sends each stream's inbound audio every 20 ms, plays its outbound buffer at the same rate,
and reads what the app sends. Done with a task per stream that sleeps 20 ms and a task per
socket that waits to read, every frame costs several trio wake-ups, scheduler passes and epoll
registrations, and a hundred streams fill a core with that alone. Here one task serves them all:

* **ticks**: a heap of each stream's next deadline. Each stream keeps its own phase (its first
  tick is when it started), so frames from many streams still reach the app spread over the
  20 ms period, as real calls' do; start moments are rounded up to ``slot_s`` (1 ms) so that
  streams whose phases fall in the same millisecond share a wake-up. Deadlines are absolute: a
  late wake-up runs every overdue tick at once (bunching, as a network would), and each tick is
  told its deadline and when it actually ran, so the stream can tell its own lateness apart.
* **reads**: every stream socket is registered once in an epoll set of the engine's own
  (https://man7.org/linux/man-pages/man7/epoll.7.html), and the task waits for that set's file
  descriptor to become readable, which is one trio wait for all sockets. Ready sockets are then
  read without further waiting.

Ticks and reads are synchronous callbacks (:class:`Ticking`, :class:`Readable`): whatever they
send must not wait (see :mod:`callbridge.sim.twilio.wsclient`).

Resource handling: :meth:`MediaEngine.run` runs in the simulator's nursery until cancelled and
closes its epoll set when it ends. Streams and sockets are taken out with :meth:`remove` and
:meth:`unwatch` by their owners; a stream whose tick returns False is dropped by the engine.
Linux only (epoll), like the rest of the simulators' load tooling.
"""

from __future__ import annotations

import heapq
import itertools
import math
import select
from typing import Protocol

import trio

__all__ = ["FRAME_S", "SLOT_S", "MediaEngine", "Readable", "Ticking"]

FRAME_S = 0.020  # one Media Streams frame: 160 mu-law samples at 8 kHz
SLOT_S = 0.001  # start moments are rounded up to this, so nearby phases share a wake-up
_MAX_EVENTS = 256  # sockets served per epoll poll; the rest wait for the next pass


class Ticking(Protocol):
    def tick(self, deadline: float, now: float) -> bool:
        """Run the frame due at ``deadline`` (trio clock; ``now`` is when it ran); True to go on."""
        ...


class Readable(Protocol):
    def on_readable(self) -> None:
        """Read what the socket holds now, without waiting."""
        ...


class MediaEngine:
    """Deadlines and readable sockets of every stream, served by one task (see the module
    docstring)."""

    def __init__(self, frame_s: float = FRAME_S, slot_s: float = SLOT_S) -> None:
        self.frame_s = frame_s
        self.slot_s = slot_s
        self._heap: list[tuple[float, int, Ticking]] = []
        self._order = itertools.count()  # ties: first registered ticks first
        self._live: dict[int, int] = {}  # id(stream) -> its heap entry's order
        self._origin: float | None = None
        self._epoll = select.epoll()
        self._readers: dict[int, Readable] = {}  # fd -> reader
        self._wait: trio.CancelScope | None = None
        self.wakeups = 0  # passes of the task (for profiling)

    # ---- ticks ------------------------------------------------------------------------------

    def add(self, stream: Ticking) -> float:
        """Start ticking ``stream``; its first tick is due at the returned deadline (the next
        slot boundary: now, or within ``slot_s``)."""
        now = trio.current_time()
        if self._origin is None:
            self._origin = now
        slots = math.ceil((now - self._origin) / self.slot_s - 1e-9)
        deadline = self._origin + slots * self.slot_s
        order = next(self._order)
        self._live[id(stream)] = order
        heapq.heappush(self._heap, (deadline, order, stream))
        if self._wait is not None and deadline < self._wait.deadline:
            self._wait.deadline = deadline  # the task sleeps past this new deadline
        return deadline

    def remove(self, stream: Ticking) -> None:
        """Stop ticking ``stream`` (before its next tick)."""
        self._live.pop(id(stream), None)

    @property
    def streams(self) -> int:
        """Streams currently ticking."""
        return len(self._live)

    # ---- reads ------------------------------------------------------------------------------

    def watch(self, fd: int, reader: Readable) -> None:
        """Call ``reader.on_readable()`` whenever ``fd`` has data (level-triggered)."""
        self._readers[fd] = reader
        self._epoll.register(fd, select.EPOLLIN)

    def pause(self, fd: int) -> None:
        """Stop reading ``fd`` for now (its data stays in the kernel: TCP backpressure)."""
        if fd in self._readers:
            self._epoll.modify(fd, 0)

    def resume(self, fd: int) -> None:
        if fd in self._readers:
            self._epoll.modify(fd, select.EPOLLIN)

    def unwatch(self, fd: int) -> None:
        """Forget ``fd``; call before closing it."""
        if self._readers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    # ---- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve ticks and reads forever (cancel to stop)."""
        try:
            while True:
                deadline = self._heap[0][0] if self._heap else math.inf
                with trio.CancelScope(deadline=deadline) as scope:
                    self._wait = scope
                    await trio.lowlevel.wait_readable(self._epoll.fileno())
                self._wait = None
                self.wakeups += 1
                self._read_ready()
                self._run_due(trio.current_time())
        finally:
            self._epoll.close()

    def _read_ready(self) -> None:
        for fd, _ in self._epoll.poll(0, _MAX_EVENTS):
            reader = self._readers.get(fd)
            if reader is not None:
                reader.on_readable()

    def _run_due(self, now: float) -> None:
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now:
            deadline, order, stream = heapq.heappop(heap)
            if live.get(id(stream)) != order:
                continue  # removed
            if stream.tick(deadline, now) and live.get(id(stream)) == order:
                heapq.heappush(heap, (deadline + self.frame_s, order, stream))
            else:
                live.pop(id(stream), None)
