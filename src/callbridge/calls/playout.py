"""Keep Twilio's playout buffer short: measure it with marks, drop a frame when it has grown.

Each listener's frames go out as soon as the other side's audio arrives, so the depth of Twilio's
playout buffer is set by history: a scheduling hiccup that lets two frames out back to back leaves
one extra frame queued there for the rest of the call, adding 20 ms to everything the listener
hears. Twilio tells us when audio has played (a mark comes back once everything before it played),
so every ``PROBE_EVERY`` frames we send a probe mark and time its echo.

A probe's delay is network round trip + the phase between our sends and Twilio's playout ticks +
20 ms per frame standing in the buffer. The first two do not change during a call, so the lowest
delay seen so far (the floor) is the best this call can do, and a whole window of probes at least a
frame above it means a frame is standing there. A window more than half a frame above ``target``
also counts, which catches a frame that was standing from the start (before the floor was ever
seen without it: a late frame in the first second, say), until a trim fails to lower the delay: then
the delay is network, not buffer, and only the floor rule stays on (so a long network path never
makes us drop audio again and again). A trim that did not help also moves the floor up to the
delay seen after it: when our frames reach Twilio just around its playout tick, some make the tick
and some wait for the next one, and the lucky ones set a floor that no trim can reach.

The frame dropped is the next quiet one (low level, no translation), or, if none is quiet within
``MAX_WAIT_S``, the next one without translated speech: the output task never offers those, as a
hole in a translation would be heard.

A backlog of more than ``CLEAR_ABOVE_S`` (after a stalled Twilio reader, say, which then gets
seconds of audio at once) is not worth trimming frame by frame: the output task sends Twilio a
``clear``, which throws away the stale audio in one go, and the listener is back to live audio.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

import attrs

from callbridge.audio import FRAME_S

__all__ = ["PROBE_PREFIX", "PlayoutProbe"]

PROBE_PREFIX: Final = "p:"
PROBE_EVERY: Final = 25  # frames between probes: two marks a second
WINDOW: Final = 3  # probes a decision is based on (1.5 s)
MAX_WAIT_S: Final = 1.0  # how long a trim may wait for a quiet frame
MAX_PENDING: Final = 16  # probes awaiting their echo (older ones are forgotten)
SLACK_S: Final = 0.005  # jitter allowed when comparing a window with the floor
CLEAR_ABOVE_S: Final = 0.1  # a backlog this long above the floor is cleared, not trimmed


@attrs.define
class PlayoutProbe:
    target_s: float
    trimmed: int = 0
    clears: int = 0
    _clear: bool = False
    _frames: int = 0
    _next_id: int = 0
    _pending: OrderedDict[str, float] = attrs.Factory(OrderedDict)
    _delays: deque[float] = attrs.Factory(lambda: deque(maxlen=WINDOW))
    _trim_since: float | None = None
    _before_trim: float | None = None  # best delay of the window that led to the last trim
    _toward_target: bool = True  # the absolute rule; off once a trim did not help
    floor_s: float = float("inf")
    last_delay_s: float | None = None

    def after_frame(self, now: float) -> str | None:
        """Call after each frame sent; returns a probe mark name to send now, or None."""
        self._frames += 1
        if self._frames % PROBE_EVERY:
            return None
        self._next_id += 1
        name = f"{PROBE_PREFIX}{self._next_id}"
        self._pending[name] = now
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return name

    def on_echo(self, name: str, now: float) -> None:
        """A probe mark came back: the frame before it has now played."""
        sent = self._pending.pop(name, None)
        if sent is None:
            return
        delay = now - sent
        self.last_delay_s = delay
        self.floor_s = min(self.floor_s, delay)
        self._delays.append(delay)
        if len(self._delays) < WINDOW or self._trim_since is not None:
            return
        best = min(self._delays)
        if self._before_trim is not None:
            # Higher than before is inconclusive (another frame crept in meanwhile); about the
            # same means the trim did not help.
            if abs(best - self._before_trim) < FRAME_S / 2:
                # Dropping a frame did not shorten the delay, so no frame was standing: the rest
                # is network, or our frames miss Twilio's tick now and then (a lucky early reading
                # set the floor). Aim at neither again.
                self._toward_target = False
                self.floor_s = best
            self._before_trim = None
        excess = best - self.floor_s
        if excess >= CLEAR_ABOVE_S:
            self._clear = True
            return
        creep = excess >= FRAME_S - SLACK_S
        over_target = self._toward_target and best > self.target_s + FRAME_S / 2
        if creep or over_target:
            self._trim_since = now

    @property
    def trim_pending(self) -> bool:
        return self._trim_since is not None

    @property
    def clear_pending(self) -> bool:
        return self._clear

    def cleared(self) -> None:
        """The output task sent ``clear``: Twilio's buffer is empty and echoes every pending mark
        at once, so forget the probes in flight and measure afresh."""
        self._clear = False
        self._trim_since = None
        self._before_trim = None
        self._pending.clear()
        self._delays.clear()
        self.clears += 1

    def should_skip(self, quiet: bool, now: float) -> bool:
        """Whether to drop the frame about to be sent (only ever one per decision)."""
        if self._trim_since is None or not (quiet or now - self._trim_since > MAX_WAIT_S):
            return False
        self._trim_since = None
        self._before_trim = min(self._delays, default=None)
        self._delays.clear()  # judge the new depth on fresh probes only
        self.trimmed += 1
        return True
