"""When each of a listener's 20 ms frames goes out (sans-IO, so the mock clock can test it).

While the call is bridged the listener's output follows the speaker: a frame goes out the moment
the speaker's matching original frame has arrived, so the original never waits on our side. Any
latency left over then sits in one place, Twilio's playout buffer, where the probe marks can see
it and trim it (``calls/playout.py``). An earlier design held frames back to a fixed schedule;
whenever the speaker ran ahead of that schedule (after a few late frames, say), their audio
queued invisibly in the mixer for the rest of the call.

The clock expects the next frame one frame after the previous one, and when a frame arrives early
the expectation moves to the speaker's phase. A frame whose original has not arrived within the
grace after it was expected goes out anyway with silence in its place, so the listener's audio
stays continuous when the speaker's leg stops or stutters.

The grace adapts to the speaker's jitter. Silence sent for a frame that then arrives after all
was premature. The late frame still has to be played, so it leaves one frame standing in Twilio's
buffer, 20 ms on everything the listener hears until the probes trim it. When the clock sees this
(originals arriving ahead of their slots right after silence went out), it widens the grace to
cover that lateness, up to ``MAX_GRACE_S``. It then narrows back slowly (``GRACE_DECAY_PER_S``)
while the leg behaves, because jitter comes back. Frames that never come (a stream that skips
silence, a dead leg) do not widen it.

If the event loop itself stalls, the clock skips ahead instead of sending the missed frames in a
burst.
"""

from __future__ import annotations

from typing import Final

import attrs

from callbridge.audio import FRAME_S

__all__ = ["GRACE_S", "MAX_GRACE_S", "RESYNC_S", "OutputClock"]

# How late a frame may wait for its original, at first. Waiting costs nothing while the speaker's
# frames come; silence sent for a frame that was only late costs 20 ms on everything after it
# until the probes trim it. Busy machines delay frames by 10-15 ms now and then.
GRACE_S: Final = 0.020
MAX_GRACE_S: Final = 0.060  # the most the grace widens to for a jittery leg
GRACE_MARGIN_S: Final = 0.005  # added to a measured lateness when widening
GRACE_DECAY_PER_S: Final = 0.0002  # how fast a widened grace narrows again (12 ms a minute)
EARLY_S: Final = 0.005  # an original this far ahead of its slot came in a bunch
RESYNC_S: Final = 0.200  # behind by more than this (a stalled loop): skip ahead, don't burst


@attrs.define
class OutputClock:
    """The expected time of the next frame; fed with what was sent and when."""

    frame_s: float = FRAME_S
    base_grace_s: float = GRACE_S
    max_grace_s: float = MAX_GRACE_S
    resync_s: float = RESYNC_S
    resyncs: int = 0
    late_originals: int = 0  # times silence went out for frames that then arrived
    grace_s: float = attrs.field(init=False)
    widest_grace_s: float = 0.0  # the widest the grace became (0.0: never widened)
    _slot: float = 0.0
    _decayed_at: float = 0.0
    _silence_since: float | None = None  # slot of the first of the latest frames sent as silence

    def __attrs_post_init__(self) -> None:
        self.grace_s = self.base_grace_s

    def restart(self, now: float, *, wait_s: float | None = None) -> None:
        """The next frame is due now (output starts), or may wait ``wait_s`` for its original
        (the call is bridged, and the speaker's phase is not known yet)."""
        self._slot = now if wait_s is None else now + wait_s - self.grace_s
        self._decayed_at = now
        self._silence_since = None

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
        self._decay(now)
        if on_original:
            self._check_premature_silence(now)
            slot = min(self._slot, now)
        else:
            if self._silence_since is None:
                self._silence_since = self._slot
            slot = self._slot
        self._slot = slot + self.frame_s
        if now - self._slot > self.resync_s:
            self._slot = now
            self.resyncs += 1

    def _check_premature_silence(self, now: float) -> None:
        since = self._silence_since
        if since is None:
            return
        if now - since > self.max_grace_s:
            # Longer than any grace could have waited: a gap or a stall, not jitter.
            self._silence_since = None
        elif now < self._slot - EARLY_S:
            # Ahead of its slot right after silence went out: this original is one of the
            # frames the silence stood in for, bunched up behind a late one.
            self.grace_s = min(self.max_grace_s, max(self.grace_s, now - since + GRACE_MARGIN_S))
            self.widest_grace_s = max(self.widest_grace_s, self.grace_s)
            self.late_originals += 1
            self._silence_since = None

    def _decay(self, now: float) -> None:
        if self.grace_s > self.base_grace_s:
            narrowed = self.grace_s - (now - self._decayed_at) * GRACE_DECAY_PER_S
            self.grace_s = max(self.base_grace_s, narrowed)
        self._decayed_at = now
