"""``ListenerOutput``: the mixer task of one listener, from hold audio to the call's last frame.

It owns everything about what one party hears: the mixer (the other party's original, ducked
under their translation), the output clock (when each 20 ms frame goes out), the playout probe
(how much audio waits in Twilio's buffer), the utterance marks in flight, the stream's id and the
outbound counters.

Inputs, all synchronous and never blocking (they run inside other tasks):

- ``on_original`` from the speaker's receive task, which also rings the doorbell;
- ``on_translation`` from the direction's Palabra duplex task;
- ``on_mark`` from this listener's own receive task, when Twilio echoes a mark (a ``u:`` echo
  counts only if that mark was sent and not yet echoed; others are counted as
  ``unexpected_marks``);
- ``stream_started`` from this listener's receive task, at the stream's ``start``.

Timing. Until the call is bridged the caller hears looping hold audio, one frame per 20 ms slot.
Then each frame goes out as soon as the speaker's matching original has arrived, or after the
clock's grace with silence in its place (``output_clock.py``). Whatever delay is left sits in
Twilio's playout buffer, which probe marks measure and keep short (``playout.py``); at the bridge
that buffer is cleared of hold audio, so measurement starts from empty. A translated utterance
ends with a Twilio mark (``u:<utterance id>``) whose echo says when the listener heard its end;
that is published as the utterance's ``played`` event.

Outbound full policy: ``MediaLeg.send`` never blocks; a frame the socket cannot take is dropped
and counted (``send_dropped``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

import numpy as np
import trio

from callbridge.audio import FRAME_MS, FRAME_S, TWILIO_FRAME_SAMPLES, Pcm, ulaw_encode
from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.mixer import ListenerMixer, MixedFrame
from callbridge.calls.output_clock import OutputClock
from callbridge.calls.parts import transcription_of
from callbridge.calls.playout import PROBE_PREFIX, PlayoutProbe
from callbridge.log import get_logger
from callbridge.roles import Role
from callbridge.telephony.legs import MediaLeg
from callbridge.telephony.media_stats import MediaStats
from callbridge.telephony.media_stream import MediaMessages, clear_message, mark_message
from callbridge.transcripts.events import TranscriptEvent

__all__ = ["MARKS_KEPT", "MARK_PREFIX", "ListenerOutput"]

log = get_logger("callbridge.output")

FIRST_ORIGINAL_WAIT_S: Final = 0.2  # at the bridge, how long the output waits for the speaker
MARK_PREFIX: Final = "u:"  # utterance-end marks; probes use ``PROBE_PREFIX``
MARKS_KEPT: Final = 64  # utterance marks awaiting Twilio's echo (a few are in flight at once)
QUIET_PEAK: Final = 1000  # int16 peak below which a frame counts as quiet (about -30 dBFS)


class ListenerOutput:
    """What one listener hears; ``run`` is its task (see the module docstring)."""

    def __init__(
        self,
        listener: Role,
        mixer: ListenerMixer,
        *,
        hold: Pcm,
        bridged: trio.Event,
        broadcaster: CallBroadcaster,
        call_id: str,
        stats: MediaStats,
        playout_target_s: float,
        frames_per_message: int = 1,
    ) -> None:
        self.listener = listener
        self.mixer = mixer
        self._frames_per_message = frames_per_message
        self._message_ms = FRAME_MS * frames_per_message
        self.clock = OutputClock(frame_s=FRAME_S * frames_per_message)
        self.probe = PlayoutProbe(playout_target_s)
        self.stats = stats  # the leg's counters; the receive task counts what comes in
        self.started = trio.Event()
        self.stream_sid = ""
        self.send_dropped = 0
        self._hold = hold
        self._bridged = bridged
        self._broadcaster = broadcaster
        self._call_id = call_id
        self._leg: MediaLeg | None = None
        self._media = MediaMessages("")
        self._mixing = False  # bridged, and the first message's wait has begun
        self._wait: trio.CancelScope | None = None  # the task's sleep until the grace runs out
        # Utterance-end marks in Twilio's buffer, and those a ``clear`` threw away (ordered sets,
        # at most MARKS_KEPT each: a mark whose echo never comes must not stay for the call).
        self._pending_marks: dict[str, None] = {}
        self._cleared_marks: dict[str, None] = {}
        # Echoes of ``u:`` marks that were not outstanding (repeated, or never sent).
        self.unexpected_marks = 0

    # ---- inputs (synchronous, from other tasks) --------------------------------------------

    def stream_started(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        self.started.set()

    def on_original(self, pcm8: Pcm) -> None:
        """The speaker's original audio, 8 kHz. Once a whole message of it is queued, the
        message goes out now, from the caller's task: no task switch per frame."""
        self.mixer.push_original(pcm8)
        if self._mixing and self._original_ready():
            self._emit(trio.current_time(), on_original=True)

    def on_translation(self, utterance_id: str, pcm8: Pcm, last: bool) -> None:
        """Translated speech for this listener, 8 kHz, in utterance order."""
        dropped = self.mixer.push_translation(utterance_id, pcm8, last)
        if dropped:
            log.warning("translation_overflow", listener=str(self.listener), dropped=list(dropped))

    def on_mark(self, name: str) -> None:
        """Twilio echoed a mark we sent this listener."""
        if name.startswith(PROBE_PREFIX):
            self.probe.on_echo(name, trio.current_time())
        elif name.startswith(MARK_PREFIX):
            self._on_utterance_mark(name)

    def _on_utterance_mark(self, name: str) -> None:
        if name in self._cleared_marks:
            # Twilio echoes marks it threw away on ``clear`` too: that translation was cut short.
            del self._cleared_marks[name]
            return
        if name not in self._pending_marks:
            # Twilio echoes each mark once: a repeat, or a name we never sent, is not news and
            # must not publish ``played`` again or invent a transcript row.
            self.unexpected_marks += 1
            if self.unexpected_marks == 1:
                log.warning("mark_unexpected", listener=str(self.listener), mark=name[:64])
            return
        del self._pending_marks[name]
        # A later part of a translation is its own utterance; the transcript knows the whole.
        utterance_id = transcription_of(name[len(MARK_PREFIX) :])
        self._broadcaster.publish(
            TranscriptEvent.played(
                self._call_id, self.listener.other.speaks, utterance_id, time.time()
            )
        )

    # ---- the task ------------------------------------------------------------------------------

    async def run(self, get_leg: Callable[[], Awaitable[MediaLeg]]) -> None:
        """Play to the listener: hold audio until the call is bridged, then the mix."""
        leg = self._leg = await get_leg()
        await self.started.wait()
        self._media = MediaMessages(self.stream_sid)
        held = await self._play_hold(leg)
        if held:
            # Hold audio still queued at Twilio would delay the call's audio by its length for
            # as long as the call lasts, and the probes' floor is only right if measured from
            # an empty buffer.
            leg.send(clear_message(self.stream_sid))
        # The first message waits for the speaker's first original: silence sent just before
        # it would stand in Twilio's buffer (20 ms on everything) from then on.
        self.clock.restart(trio.current_time(), wait_s=FIRST_ORIGINAL_WAIT_S)
        self._mixing = True
        if self._original_ready():
            self._emit(trio.current_time(), on_original=True)
        while True:
            # Asleep while the speaker's originals come: each one sends its own message from
            # the speaker's receive task (``on_original``), which moves this deadline on. It
            # fires only when an original is late or missing, and then silence goes out.
            with trio.CancelScope(deadline=self.clock.deadline) as self._wait:
                await trio.sleep_forever()
            self._emit(trio.current_time(), on_original=self._original_ready())

    async def _play_hold(self, leg: MediaLeg) -> bool:
        """Loop the hold audio until the bridge; whether any was played."""
        hold_at = 0
        held = False
        samples = TWILIO_FRAME_SAMPLES * self._frames_per_message
        self.clock.restart(trio.current_time())
        while True:
            # Woken by the bridge at once: a frame of the other side queued while this slept
            # and sent late would be followed too soon by the next, and stand in Twilio's buffer.
            with trio.move_on_at(self.clock.slot):
                await self._bridged.wait()
            if self._bridged.is_set():
                return held
            pcm, hold_at = _loop_slice(self._hold, hold_at, samples)
            self._send_media(leg, ulaw_encode(pcm), self._frames_per_message)
            self.clock.sent(trio.current_time(), on_original=False)
            held = True

    def _original_ready(self) -> bool:
        return self.mixer.original_queue_ms >= self._message_ms

    def _emit(self, now: float, *, on_original: bool) -> None:
        """Send the next message of the mix (``frames_per_message`` frames, one fewer when a trim
        drops one) and move the clock on. Synchronous: it runs in whichever task has the
        speaker's original, or in this task when the grace has passed without it."""
        leg, probe = self._leg, self.probe
        if leg is None:
            return
        if probe.clear_pending:
            self._clear_playout(leg)
        frames = [self.mixer.next_frame() for _ in range(self._frames_per_message)]
        self._send_frames(leg, [frame for frame in frames if not self._trimmed(frame, now)], now)
        self.clock.sent(now, on_original=on_original)
        if self._wait is not None:
            self._wait.deadline = self.clock.deadline

    def _send_frames(self, leg: MediaLeg, frames: list[MixedFrame], now: float) -> None:
        """One media message of ``frames``, then the marks of utterances they end, then a probe
        mark when one is due."""
        if not frames:
            return
        pcm = frames[0].pcm if len(frames) == 1 else np.concatenate([f.pcm for f in frames])
        self._send_media(leg, ulaw_encode(pcm), len(frames))
        for frame in frames:
            for uid in frame.started:
                self._audio_started(uid)
            for uid in frame.finished:
                # Outstanding only once really queued for Twilio: a dropped mark never echoes.
                if self._send(leg, mark_message(self.stream_sid, MARK_PREFIX + uid), mark=True):
                    _remember(self._pending_marks, MARK_PREFIX + uid)
        name = self.probe.after_frame(now)
        if name is not None:
            self._send(leg, mark_message(self.stream_sid, name), mark=True)

    def _audio_started(self, uid: str) -> None:
        # When the listener starts hearing it: now, plus what waits in Twilio's buffer before it.
        heard_at = time.time() + (self.probe.last_delay_s or 0.0)
        self._broadcaster.publish(
            TranscriptEvent.audio_started(
                self._call_id, self.listener.other.speaks, transcription_of(uid), heard_at
            )
        )

    def _trimmed(self, frame: MixedFrame, now: float) -> bool:
        # Looking at the frame only while a trim waits keeps the common path cheap. A frame of
        # translated speech is never the one dropped: the hole would be heard, and a frame that
        # ends an utterance carries the mark that says when it was played.
        probe = self.probe
        return (
            probe.trim_pending
            and not _carries_translation(frame)
            and probe.should_skip(_is_quiet(frame), now)
        )

    def _clear_playout(self, leg: MediaLeg) -> None:
        delay = self.probe.last_delay_s
        leg.send(clear_message(self.stream_sid))
        self.probe.cleared()
        for name in self._pending_marks:
            _remember(self._cleared_marks, name)
        self._pending_marks.clear()
        log.warning("playout_cleared", listener=str(self.listener), delay_ms=_ms(delay))

    def _send_media(self, leg: MediaLeg, payload: bytes, frames: int) -> None:
        if leg.send(self._media.media(payload)):
            for _ in range(frames):
                self.stats.record_out(TWILIO_FRAME_SAMPLES)
        else:
            self.send_dropped += frames

    def _send(self, leg: MediaLeg, message: str, *, mark: bool = False) -> bool:
        if leg.send(message):
            self.stats.record_out(0, mark=mark)
            return True
        self.send_dropped += 1
        return False

    # ---- reporting ------------------------------------------------------------------------------

    @property
    def marks_awaiting_echo(self) -> int:
        """Utterance marks sent or cleared whose echo has not come (at most 2 * ``MARKS_KEPT``)."""
        return len(self._pending_marks) + len(self._cleared_marks)

    def summary(self) -> dict[str, object]:
        """This listener's counters for the call's summary line."""
        return {
            **self.stats.as_dict(),
            "send_dropped": self.send_dropped,
            "unexpected_marks": self.unexpected_marks,
            "resyncs": self.clock.resyncs,
            "late_originals": self.clock.late_originals,
            "widest_grace_ms": _ms(self.clock.widest_grace_s),
            "playout_trimmed": self.probe.trimmed,
            "playout_clears": self.probe.clears,
            "playout_delay_ms": _ms(self.probe.last_delay_s),
            "mixer": self.mixer.stats(),
        }


def _carries_translation(frame: MixedFrame) -> bool:
    return frame.ducked or bool(frame.started) or bool(frame.finished)


def _is_quiet(frame: MixedFrame) -> bool:
    """A low level; asked only of frames without translated speech."""
    return int(np.abs(frame.pcm).max()) < QUIET_PEAK


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _loop_slice(source: Pcm, at: int, n: int) -> tuple[Pcm, int]:
    """``n`` samples of ``source`` played as a loop from ``at``; returns them and the next index."""
    end = at + n
    if end <= len(source):
        return source[at:end], end % len(source)
    head = source[at:]
    rest = n - len(head)
    return np.concatenate((head, source[:rest])), rest


def _remember(marks: dict[str, None], name: str) -> None:
    """Add ``name`` to an ordered set of marks awaiting their echo, forgetting the oldest past
    ``MARKS_KEPT``: Twilio echoes marks in order, so one that many later marks overtook was lost."""
    marks[name] = None
    if len(marks) > MARKS_KEPT:
        del marks[next(iter(marks))]
