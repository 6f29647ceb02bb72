"""When each of a listener's 20 ms frames goes out (sans-IO, so the mock clock can test it).

While the call is bridged the listener's output follows the speaker: a frame goes out the moment
the speaker's matching original frame has arrived, so the original never waits on our side. Any
latency left over then sits in one place, Twilio's playout buffer, where the probe marks can see
it and trim it (``calls/playout.py``). An earlier design held frames back to a fixed schedule;
whenever the speaker ran ahead of that schedule (after a few late frames, say), their audio
queued invisibly in the mixer for the rest of the call.

The clock expects the next frame one frame after the previous one, and when a frame arrives early
the expectation moves to the speaker's phase. A frame whose original has not arrived ``grace_s``
after it was expected goes out anyway with silence in its place, so the listener's audio stays
continuous when the speaker's leg stutters. If the event loop itself stalls, the clock skips
ahead instead of sending the missed frames in a burst.
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["FRAME_S", "GRACE_S", "RESYNC_S", "OutputClock"]

FRAME_S: Final = 0.020  # one Twilio frame
GRACE_S: Final = 0.010  # how late a frame may wait for its original before going out without it
RESYNC_S: Final = 0.200  # behind by more than this (a stalled loop): skip ahead, don't burst


@attrs.define
class OutputClock:
    """The expected time of the next frame; fed with what was sent and when."""

    frame_s: float = FRAME_S
    grace_s: float = GRACE_S
    resync_s: float = RESYNC_S
    resyncs: int = 0
    _slot: float = 0.0

    def restart(self, now: float) -> None:
        """The next frame is due now (output starts, or the call is bridged)."""
        self._slot = now

    @property
    def slot(self) -> float:
        """When the next frame is due."""
        return self._slot

    @property
    def deadline(self) -> float:
        """The latest the next frame may wait for its original."""
        return self._slot + self.grace_s

    def sent(self, now: float, *, on_original: bool) -> None:
        """A frame went out at ``now``; ``on_original`` if the speaker's audio was there for it."""
        slot = min(self._slot, now) if on_original else self._slot
        self._slot = slot + self.frame_s
        if now - self._slot > self.resync_s:
            self._slot = now
            self.resyncs += 1
