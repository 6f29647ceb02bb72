"""The media path of one call: legs in, translators, per-listener mixing and playout.

Data flow (per direction; the speaker never reaches their own mixer)::

    speaker leg --mu-law--> decode --+--> listener's mixer (original, ducked)
                                     +--> upsample 8k->24k --> Palabra link.feed()
    Palabra link.events --> transcripts --> TranscriptSink.publish (never blocks)
                        --> speech 24k --> downsample --> listener's mixer (translation)
    listener's mixer --one frame per 20 ms--> mu-law --> listener leg (send_nowait, counted drops)

Timing. Each listener's output is a continuous 20 ms frame stream paced by the speaker: a frame
goes out as soon as the speaker's matching original has arrived, or ``GRACE_S`` after it was due
with silence in its place (``calls/output_clock.py``). Whatever delay is left sits in Twilio's
playout buffer, which probe marks measure and keep short (``calls/playout.py``); at the bridge the
buffer is cleared of hold audio so that measurement starts from empty. Translated utterances end
with a Twilio mark (``u:<utterance id>``) whose echo says when the listener actually heard the end
of it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import numpy as np
import trio

from callbridge.audio import (
    TWILIO_FRAME_SAMPLES,
    Pcm,
    Resampler,
    downsampler_24k_to_8k,
    hold_chime,
    read_wav_mono,
    ulaw_decode,
    ulaw_encode,
    upsampler_8k_to_24k,
)
from callbridge.calls.legs import MediaLeg
from callbridge.calls.mixer import ListenerMixer, MixedFrame
from callbridge.calls.output_clock import OutputClock
from callbridge.calls.playout import PROBE_PREFIX, PlayoutProbe
from callbridge.calls.ports import TranslatorLink
from callbridge.config import Config
from callbridge.errors import CallEnded, ConfigError, PalabraUnavailable
from callbridge.log import get_logger
from callbridge.palabra.events import ServerError, ServerWarning, SpeechChunk, Transcript
from callbridge.roles import Direction, Role
from callbridge.telephony.media_stream import (
    Dtmf,
    Invalid,
    Mark,
    Media,
    MediaStats,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_message,
    parse,
)
from callbridge.transcripts.events import TranscriptEvent

__all__ = ["CallMedia", "load_hold_audio"]

log = get_logger("callbridge.media")

FRAME_MS: Final = 20.0  # one Twilio frame
FIRST_ORIGINAL_WAIT_S: Final = 0.2  # at the bridge, how long the output waits for the speaker
MARK_PREFIX: Final = "u:"
QUIET_PEAK: Final = 1000  # int16 peak below which a frame counts as quiet

_TRANSCRIPT_KINDS: Final = {
    "partial": "partial",
    "validated": "final",
    "partial_translation": "translation_partial",
    "translation": "translation",
}


def _listener_direction(listener: Role) -> Direction:
    return listener.other.speaks


class CallMedia:
    """Per-call media state shared by the call's tasks (all on one trio thread, no locks)."""

    def __init__(
        self, config: Config, hold: Pcm, publish: Callable[[TranscriptEvent], None], call_id: str
    ) -> None:
        self._config = config
        self._publish = publish
        self._call_id = call_id
        media = config.media
        self._mixers = {
            listener: ListenerMixer.from_config(media, _listener_direction(listener))
            for listener in Role
        }
        self._up: dict[Role, Resampler] = {role: upsampler_8k_to_24k() for role in Role}
        self._down: dict[Direction, Resampler] = {d: downsampler_24k_to_8k() for d in Direction}
        self._links: dict[Direction, TranslatorLink] = {}
        self._stream_sid: dict[Role, str] = {}
        self._started = {role: trio.Event() for role in Role}
        doorbells = {role: trio.open_memory_channel[None](1) for role in Role}
        self._ring = {role: pair[0] for role, pair in doorbells.items()}
        self._bell = {role: pair[1] for role, pair in doorbells.items()}
        self._bridged = trio.Event()
        self._stats = {role: MediaStats() for role in Role}
        self._invalid_logged: set[tuple[Role, str]] = set()
        self._fed_dropped = dict.fromkeys(Direction, 0)
        self._dropped_out = dict.fromkeys(Role, 0)
        self._clocks = {role: OutputClock() for role in Role}
        self._translator_warnings: dict[str, int] = {}
        self._hold = hold
        target_s = media.playout_target_ms / 1000
        self._probes = {role: PlayoutProbe(target_s) for role in Role}
        # Utterance-end marks in Twilio's buffer, and those a ``clear`` threw away.
        self._pending_marks: dict[Role, set[str]] = {role: set() for role in Role}
        self._cleared_marks: dict[Role, set[str]] = {role: set() for role in Role}

    # ---- configuration and state --------------------------------------------------------------

    def mode(self, direction: Direction) -> str:
        mode: str = getattr(self._config.media, direction.value)
        return mode

    def bridge(self) -> None:
        """Both parties are on: originals start flowing to the other side and to the translators."""
        self._bridged.set()

    def attach_link(self, direction: Direction, link: TranslatorLink) -> None:
        self._links[direction] = link

    def streams_started(self) -> bool:
        return all(event.is_set() for event in self._started.values())

    async def wait_streams_started(self) -> None:
        for role in Role:
            await self._started[role].wait()

    # ---- a Twilio leg in ------------------------------------------------------------------------

    async def run_leg(self, leg: MediaLeg) -> None:
        """Receive one leg until Twilio stops it; ends the call on hang-up or silence."""
        role = leg.role
        idle_s = self._config.media.leg_idle_timeout_s
        last_valid = trio.current_time()
        stats = self._stats[role]
        while True:
            with trio.move_on_at(last_valid + idle_s):
                try:
                    message = await leg.inbound.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    raise CallEnded(f"{role}_hangup", "media socket closed") from None
                event = parse(message)
                stats.record(event)
                if isinstance(event, Invalid):
                    self._log_invalid(role, event)
                    continue
                last_valid = trio.current_time()
                self._handle(role, event)
                continue
            raise CallEnded("leg_timeout", f"no valid media from the {role} for {idle_s} s")

    def _handle(self, role: Role, event: object) -> None:
        if isinstance(event, Media):
            self._on_speech(role, ulaw_decode(event.payload))
        elif isinstance(event, Mark):
            self._on_mark(role, event.name)
        elif isinstance(event, Start):
            self._stream_sid[role] = event.stream_sid
            self._started[role].set()
            log.info(
                "media_started",
                role=str(role),
                stream_sid=event.stream_sid,
                call_sid=event.call_sid,
            )
        elif isinstance(event, Stop):
            raise CallEnded(f"{role}_hangup", "media stream stopped")
        elif isinstance(event, Dtmf):
            log.info("dtmf", role=str(role), digit=event.digit)

    def _on_speech(self, speaker: Role, pcm8: Pcm) -> None:
        if not self._bridged.is_set():
            return  # nobody to hear it yet; the translators get silence keepalive meanwhile
        listener = speaker.other
        self._mixers[listener].push_original(pcm8)
        # Already rung means the output task will look at the mixer anyway.
        with contextlib.suppress(trio.WouldBlock):
            self._ring[listener].send_nowait(None)
        link = self._links.get(speaker.speaks)
        if link is not None and not link.feed(self._up[speaker].process(pcm8)):
            self._fed_dropped[speaker.speaks] += 1

    def _on_mark(self, listener: Role, name: str) -> None:
        if name.startswith(PROBE_PREFIX):
            self._probes[listener].on_echo(name, trio.current_time())
            return
        if not name.startswith(MARK_PREFIX):
            return
        if name in self._cleared_marks[listener]:
            # Twilio echoes marks it threw away on ``clear`` too: that translation was cut short.
            self._cleared_marks[listener].discard(name)
            return
        self._pending_marks[listener].discard(name)
        utterance_id = name[len(MARK_PREFIX) :]
        direction = _listener_direction(listener)
        now = time.time()
        self._publish(
            TranscriptEvent(
                call_id=self._call_id,
                kind="played",
                direction=direction,
                utterance_id=utterance_id,
                text="",
                language=None,
                ts=now,
                data={"played_at": now},
            )
        )

    def _log_invalid(self, role: Role, event: Invalid) -> None:
        # First of each kind per leg is a warning; the rest are counted in the summary line.
        key = (role, event.reason)
        if key not in self._invalid_logged:
            self._invalid_logged.add(key)
            log.warning(
                "media_invalid",
                role=str(role),
                reason=event.reason,
                detail=event.detail,
                size=event.raw_size,
            )

    # ---- translators out ----------------------------------------------------------------------

    async def run_translator_events(self, direction: Direction, link: TranslatorLink) -> None:
        listener = direction.listener
        voice = self.mode(direction) == "voice"
        async for event in link.events:
            if isinstance(event, SpeechChunk):
                if voice:
                    self._on_translated_speech(direction, listener, event)
            elif isinstance(event, Transcript):
                self._publish_transcript(direction, event)
            elif isinstance(event, ServerWarning):
                self._on_translator_notice(direction, event.code, event.message)
            elif isinstance(event, ServerError):
                self._on_translator_notice(direction, event.code, event.desc)
        msg = f"{direction} translator stopped sending events"
        raise PalabraUnavailable(msg)

    def _on_translated_speech(
        self, direction: Direction, listener: Role, chunk: SpeechChunk
    ) -> None:
        down = self._down[direction]
        pcm8 = down.process(chunk.pcm)
        if chunk.last_chunk:
            pcm8 = np.concatenate((pcm8, down.flush()))
        uid = chunk.transcription_id
        dropped = self._mixers[listener].push_translation(uid, pcm8, chunk.last_chunk)
        if dropped:
            log.warning("translation_overflow", direction=str(direction), dropped=list(dropped))

    def _publish_transcript(self, direction: Direction, event: Transcript) -> None:
        self._publish(
            TranscriptEvent(
                call_id=self._call_id,
                kind=_TRANSCRIPT_KINDS[event.kind],  # type: ignore[arg-type]
                direction=direction,
                utterance_id=event.transcription_id,
                text=event.text,
                language=event.language,
                ts=event.received_at,
                data={},
            )
        )

    def _on_translator_notice(self, direction: Direction, code: str, text: str) -> None:
        count = self._translator_warnings.get(code, 0) + 1
        self._translator_warnings[code] = count
        if count == 1:
            log.warning("translator_notice", direction=str(direction), code=code, message=text)

    # ---- a listener out -----------------------------------------------------------------------

    async def run_output(self, listener: Role, get_leg: Callable[[], Awaitable[MediaLeg]]) -> None:
        """Play to ``listener``: hold audio until the call is bridged, then the mix, every 20 ms."""
        leg = await get_leg()
        await self._started[listener].wait()
        stream_sid = self._stream_sid[listener]
        clock = self._clocks[listener]
        hold_at = 0
        held = False
        clock.restart(trio.current_time())
        while True:
            # Woken by the bridge at once: a frame of the other side queued while this slept
            # and sent late would be followed too soon by the next, and stand in Twilio's buffer.
            with trio.move_on_at(clock.slot):
                await self._bridged.wait()
            if self._bridged.is_set():
                break
            pcm, hold_at = _loop_slice(self._hold, hold_at, TWILIO_FRAME_SAMPLES)
            self._send(leg, listener, media_message(stream_sid, ulaw_encode(pcm)))
            clock.sent(trio.current_time(), on_original=False)
            held = True
        if held:
            # Hold audio still queued at Twilio would delay the call's audio by its length for
            # as long as the call lasts, and the probes' floor is only right if measured from
            # an empty buffer.
            leg.send(clear_message(stream_sid))
        # The first frame waits for the speaker's first original: a frame of silence sent
        # just before it would stand in Twilio's buffer (20 ms on everything) from then on.
        clock.restart(trio.current_time(), wait_s=FIRST_ORIGINAL_WAIT_S)
        while True:
            await self._send_next_mixed(leg, listener, stream_sid)

    async def _send_next_mixed(self, leg: MediaLeg, listener: Role, stream_sid: str) -> None:
        """Send one frame of the mix: as soon as the speaker's original for it is here, or
        without it once the clock's grace has passed."""
        mixer = self._mixers[listener]
        clock = self._clocks[listener]
        probe = self._probes[listener]
        with trio.move_on_at(clock.deadline):
            while mixer.original_queue_ms < FRAME_MS:
                await self._bell[listener].receive()
        on_original = mixer.original_queue_ms >= FRAME_MS
        frame = mixer.next_frame()
        if probe.clear_pending:
            self._clear_playout(leg, listener, stream_sid, probe)
        now = trio.current_time()
        # Looking at the frame only while a trim waits keeps the common path cheap. A frame of
        # translated speech is never the one dropped: the hole would be heard, and a frame that
        # ends an utterance carries the mark that says when it was played.
        trim = (
            probe.trim_pending
            and not _carries_translation(frame)
            and probe.should_skip(_is_quiet(frame), now)
        )
        if not trim:
            self._send_mixed(leg, listener, stream_sid, frame, probe)
        clock.sent(now, on_original=on_original)

    def _clear_playout(
        self, leg: MediaLeg, listener: Role, stream_sid: str, probe: PlayoutProbe
    ) -> None:
        delay = probe.last_delay_s
        leg.send(clear_message(stream_sid))
        probe.cleared()
        self._cleared_marks[listener] |= self._pending_marks[listener]
        self._pending_marks[listener].clear()
        log.warning("playout_cleared", listener=str(listener), delay_ms=_ms(delay))

    def _send_mixed(
        self, leg: MediaLeg, listener: Role, stream_sid: str, frame: MixedFrame, probe: PlayoutProbe
    ) -> None:
        self._send(leg, listener, media_message(stream_sid, ulaw_encode(frame.pcm)))
        for uid in frame.finished:
            self._pending_marks[listener].add(MARK_PREFIX + uid)
            self._send(leg, listener, mark_message(stream_sid, MARK_PREFIX + uid), mark=True)
        name = probe.after_frame(trio.current_time())
        if name is not None:
            self._send(leg, listener, mark_message(stream_sid, name), mark=True)

    def _send(self, leg: MediaLeg, listener: Role, message: str, *, mark: bool = False) -> None:
        if leg.send(message):
            self._stats[listener].record_out(0 if mark else TWILIO_FRAME_SAMPLES, mark=mark)
        else:
            self._dropped_out[listener] += 1

    # ---- reporting ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counters for the call's summary line; zeros are left out to keep the line readable."""
        return _without_zeros(
            {
                "media": {
                    str(role): {
                        **self._stats[role].as_dict(),
                        "send_dropped": self._dropped_out[role],
                        "resyncs": self._clocks[role].resyncs,
                        "late_originals": self._clocks[role].late_originals,
                        "widest_grace_ms": _ms(self._clocks[role].widest_grace_s),
                        "playout_trimmed": self._probes[role].trimmed,
                        "playout_clears": self._probes[role].clears,
                        "playout_delay_ms": _ms(self._probes[role].last_delay_s),
                        "mixer": self._mixers[role].stats(),
                    }
                    for role in Role
                },
                "translator_feed_dropped": {str(d): n for d, n in self._fed_dropped.items()},
                "translator_notices": dict(self._translator_warnings),
            }
        )


def _without_zeros(node: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _without_zeros(value)
        if value or value is False:
            result[key] = value
    return result


def _carries_translation(frame: MixedFrame) -> bool:
    return frame.ducked or bool(frame.started) or bool(frame.finished)


def _is_quiet(frame: MixedFrame) -> bool:
    """A low level (about -30 dBFS peak); asked only of frames without translated speech."""
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


def load_hold_audio(config: Config) -> Pcm:
    """The hold loop: ``media.hold_audio`` or the built-in chime. Raises ``ConfigError`` for a bad
    file, so a broken setting stops the daemon at start instead of failing every call."""
    path = config.media.hold_audio
    if not path:
        return hold_chime()
    try:
        pcm = read_wav_mono(path)
    except (OSError, ValueError, EOFError) as exc:
        msg = f"media.hold_audio: cannot use {path!r}: {exc}"
        raise ConfigError([msg]) from exc
    if len(pcm) < TWILIO_FRAME_SAMPLES:
        msg = f"media.hold_audio: {path!r} is shorter than one 20 ms frame"
        raise ConfigError([msg])
    return pcm
