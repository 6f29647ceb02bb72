"""Sans-IO per-listener mixer: the speaker's original voice, ducked under translated speech.

One :class:`ListenerMixer` per listening leg. The async wiring pushes the speaker's 8 kHz audio
(:meth:`ListenerMixer.push_original`) and the translated speech, already resampled to 8 kHz
(:meth:`ListenerMixer.push_translation`), and calls :meth:`ListenerMixer.next_frame` once per
20 ms tick to get exactly one Twilio frame. Nothing here touches a clock or a socket.

Gains (all from ``[media]`` config; ``None`` means that source is off, i.e. gain 0):

- no translation in the frame: original at ``original_gain_db``;
- translation playing in the frame (see "ducked" below): original at ``original_duck_gain_db``
  plus translation at ``translation_gain_db``.

A frame is *ducked* when it contains at least one translation sample, or when an utterance has
started but is waiting for more audio (a mid-utterance underrun), so the original does not pump up
and down between late chunks of one sentence.

Gain ramp (de-click): when the original's gain changes from one frame to the next, that frame
ramps it linearly, sample ``i`` (0..159) getting ``prev + (new - prev) * (i + 1) / 160``; the last
sample of the frame is at the new gain and later frames are flat. Mixing is in float64:
``out = clip(rint(original * gain + translation * translation_gain), -32768, 32767)``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import attrs
import numpy as np

from callbridge.audio import TWILIO_FRAME_SAMPLES, TWILIO_RATE, Pcm, PcmFifo, db_to_gain
from callbridge.config import DIRECTION_MODES, DirectionMode, MediaConfig

__all__ = ["ListenerMixer", "MixedFrame"]


_FRAME: Final = TWILIO_FRAME_SAMPLES  # 160 samples = 20 ms at 8 kHz
_SAMPLES_PER_MS: Final = TWILIO_RATE // 1000
_RETIRED_IDS_KEPT: Final = 256  # ids remembered after finishing/dropping, to reject late chunks
_NO_IDS: Final[tuple[str, ...]] = ()
# What ``stats()`` reports, in this order (properties of ``ListenerMixer``).
_STATS: Final = (
    "translation_queue_ms", "original_queue_ms", "dropped_original_ms", "original_underrun_ms",
    "dropped_translation_ms", "ignored_translation_ms", "late_translation_ms", "overflow_events",
    "dropped_utterances", "stalled_utterances",
)  # fmt: skip


@attrs.frozen(eq=False)
class MixedFrame:
    """One 20 ms frame for the listener.

    ``started``/``finished``: utterances whose first/last sample is in this frame, in play order.
    After sending a frame with ``finished`` ids, send a Twilio mark to learn when it really played.
    """

    pcm: Pcm  # int16, exactly 160 samples, owned by the caller
    started: tuple[str, ...] = _NO_IDS
    finished: tuple[str, ...] = _NO_IDS
    ducked: bool = False


@attrs.define(eq=False)
class _Utterance:
    id: str
    chunks: deque[Pcm] = attrs.Factory(deque)
    offset: int = 0  # samples of chunks[0] already played
    queued: int = 0  # samples received and not yet played
    complete: bool = False  # the chunk with last=True has arrived
    starved: int = 0  # frames in a row it held the head with nothing left to play
    started: bool = False
    truncated: bool = False  # overflow cut its tail: later chunks are discarded


def _check_mode(_inst: object, _attr: object, value: str) -> None:
    if value not in DIRECTION_MODES:
        msg = f"mix mode must be one of {DIRECTION_MODES}, got {value!r}"
        raise ValueError(msg)


def _check_positive(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        msg = f"{attr.name} must be positive, got {value!r}"
        raise ValueError(msg)


@attrs.define
class ListenerMixer:
    """Mixes what one listener hears. Allocation-light: it runs 50 times a second per listener.

    Original audio goes through a bounded jitter FIFO (``original_buffer_ms``, 200 ms by
    default); when a push overflows it, the OLDEST samples are dropped and counted, so the
    original's latency can never grow past that bound. An underrun plays silence.

    Translation overflow policy. Translated speech queues up to ``queue_limit_s`` (everything
    received and not yet played, including the rest of the utterance that is playing). When a
    push would go over the limit, it counts one overflow event, then:

    1. drops whole utterances that have not started playing, other than the one receiving this
       push, oldest first, until the push fits (the listener is behind: stale sentences go
       first; the one on air is never touched). Their ids are returned by ``push_translation``;
       they never appear in ``started``/``finished`` and later chunks for them are discarded;
    2. if it still does not fit, keeps only the part of the pushed chunk that fits: the
       receiving utterance loses its tail. Its later chunks are discarded too (no jump into the
       middle of a sentence), but its ``last`` flag is honoured so it still finishes.

    Utterances play in push order, back to back: the next one's first sample directly follows
    the previous one's last sample, within a frame if need be. A chunk for an utterance that has
    already finished, or after its ``last``, is discarded and counted as late.

    Stall policy. An utterance at the head of the queue that has played all it has and still
    waits for more (its ``last`` never came: a link that reconnected, a lost chunk) holds up
    every utterance behind it and keeps the original ducked. After ``stall_ms`` of frames
    without new audio for it, it is ended there (it appears in ``finished``; later chunks
    for it are late) and the original returns to its level. Counted in
    ``stalled_utterances``. Frames stand in for time: ``next_frame`` runs once per 20 ms.

    In ``captions`` and ``passthrough`` modes translation is never mixed: pushes are discarded
    and counted, and the original always plays at ``original_gain_db``.
    """

    mode: DirectionMode = attrs.field(validator=_check_mode)
    translation_gain_db: float | None
    original_gain_db: float | None
    original_duck_gain_db: float | None
    queue_limit_s: float = attrs.field(validator=_check_positive)
    original_buffer_ms: int = attrs.field(default=200, validator=_check_positive)
    stall_ms: int = attrs.field(default=1000, validator=_check_positive)

    _translation_gain: float = attrs.field(init=False)
    _original_gain: float = attrs.field(init=False)
    _duck_gain: float = attrs.field(init=False)
    _limit: int = attrs.field(init=False)
    _original: PcmFifo = attrs.field(init=False)
    _queue: deque[_Utterance] = attrs.field(init=False, factory=deque)
    _by_id: dict[str, _Utterance] = attrs.field(init=False, factory=dict)
    _retired: dict[str, None] = attrs.field(init=False, factory=dict)  # ordered set
    _queued: int = attrs.field(init=False, default=0)
    _prev_gain: float = attrs.field(init=False)
    # Per-frame scratch buffers, reused every frame.
    _orig_buf: Pcm = attrs.field(init=False)
    _trans_buf: np.ndarray = attrs.field(init=False)
    _acc: np.ndarray = attrs.field(init=False)
    _tmp: np.ndarray = attrs.field(init=False)
    _ramp: np.ndarray = attrs.field(init=False)
    # Counters, in samples at 8 kHz (exposed in ms).
    _dropped_original: int = attrs.field(init=False, default=0)
    _original_underrun: int = attrs.field(init=False, default=0)
    _dropped_translation: int = attrs.field(init=False, default=0)
    _ignored_translation: int = attrs.field(init=False, default=0)
    _late_translation: int = attrs.field(init=False, default=0)
    _overflow_events: int = attrs.field(init=False, default=0)
    _dropped_utterances: int = attrs.field(init=False, default=0)
    _stalled_utterances: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._translation_gain = db_to_gain(self.translation_gain_db)
        self._original_gain = db_to_gain(self.original_gain_db)
        self._duck_gain = db_to_gain(self.original_duck_gain_db)
        self._limit = round(self.queue_limit_s * TWILIO_RATE)
        self._original = PcmFifo(round(self.original_buffer_ms * _SAMPLES_PER_MS))
        self._prev_gain = self._original_gain
        self._orig_buf = np.zeros(_FRAME, dtype=np.int16)
        self._trans_buf = np.zeros(_FRAME, dtype=np.float64)
        self._acc = np.zeros(_FRAME, dtype=np.float64)
        self._tmp = np.zeros(_FRAME, dtype=np.float64)
        self._ramp = np.arange(1, _FRAME + 1, dtype=np.float64) / _FRAME

    @classmethod
    def from_config(cls, media: MediaConfig, mode: DirectionMode) -> ListenerMixer:
        """A listener's mixer for a direction in ``mode``, with the ``[media]`` gains."""
        return cls(
            mode=mode,
            translation_gain_db=media.translation_gain_db,
            original_gain_db=media.original_gain_db,
            original_duck_gain_db=media.original_duck_gain_db,
            queue_limit_s=media.translation_queue_s,
        )

    # -- input ----------------------------------------------------------------------------------

    def push_original(self, pcm8: Pcm) -> None:
        """Queue the speaker's original 8 kHz audio (any length; copied)."""
        self._dropped_original += self._original.push(pcm8)

    def push_translation(self, utterance_id: str, pcm8: Pcm, last: bool) -> tuple[str, ...]:
        """Queue translated 8 kHz speech for ``utterance_id``; ``last`` marks its final chunk.

        Returns the ids of utterances dropped whole to make room (usually empty). ``pcm8`` is
        copied. See the class docstring for the overflow policy.
        """
        n = len(pcm8)
        if self.mode != "voice":
            self._ignored_translation += n
            return _NO_IDS
        utt = self._by_id.get(utterance_id)
        if utt is None:
            if utterance_id in self._retired:
                self._late_translation += n
                return _NO_IDS
            utt = _Utterance(utterance_id)
            self._queue.append(utt)
            self._by_id[utterance_id] = utt
        if utt.complete:
            self._late_translation += n
            return _NO_IDS
        dropped_ids = _NO_IDS
        if utt.truncated:
            self._dropped_translation += n
            n = 0
        elif self._queued + n > self._limit:
            dropped_ids, n = self._make_room(utt, n)
        utt.starved = 0
        if n:
            utt.chunks.append(pcm8[:n].copy())
            utt.queued += n
            self._queued += n
        if last:
            utt.complete = True
        return dropped_ids

    def _make_room(self, receiving: _Utterance, n: int) -> tuple[tuple[str, ...], int]:
        """Apply the overflow policy for a push of ``n`` samples; return (dropped ids, n kept)."""
        self._overflow_events += 1
        excess = self._queued + n - self._limit
        dropped: list[str] = []
        for utt in list(self._queue):
            if excess <= 0:
                break
            if utt is receiving or utt.started:
                continue
            self._remove(utt)
            self._dropped_translation += utt.queued
            self._dropped_utterances += 1
            excess -= utt.queued
            dropped.append(utt.id)
        if excess > 0:
            receiving.truncated = True
            self._dropped_translation += excess
            n -= excess
        return tuple(dropped), n

    def clear_translation(self) -> tuple[str, ...]:
        """Drop all queued translation, the playing utterance included; return the dropped ids."""
        dropped = tuple(utt.id for utt in self._queue)
        for utt in list(self._queue):
            self._remove(utt)
            self._dropped_translation += utt.queued
        self._dropped_utterances += len(dropped)
        return dropped

    def _remove(self, utt: _Utterance) -> None:
        self._queue.remove(utt)
        del self._by_id[utt.id]
        self._queued -= utt.queued
        self._retire(utt.id)

    def _retire(self, utterance_id: str) -> None:
        self._retired[utterance_id] = None
        if len(self._retired) > _RETIRED_IDS_KEPT:
            del self._retired[next(iter(self._retired))]

    # -- output ---------------------------------------------------------------------------------

    def next_frame(self) -> MixedFrame:
        """Produce exactly one 20 ms frame (160 samples) and advance all queues by it."""
        got = self._original.pop_into(self._orig_buf)
        self._original_underrun += _FRAME - got
        started: list[str] | None = None
        finished: list[str] | None = None
        filled = 0
        queue = self._queue
        if queue and queue[0].starved * _FRAME >= self.stall_ms * _SAMPLES_PER_MS:
            queue[0].complete = True  # ended where it stalled: the queue moves on
            self._stalled_utterances += 1
        while filled < _FRAME and queue:
            utt = queue[0]
            if not utt.started:
                if not utt.queued and not utt.complete:
                    break  # its first audio has not arrived yet
                utt.started = True
                started = started or []
                started.append(utt.id)
            filled = self._play(utt, filled)
            if utt.queued:
                break  # frame full
            if not utt.complete:
                break  # mid-utterance underrun: wait for the rest, keep order
            queue.popleft()
            del self._by_id[utt.id]
            self._retire(utt.id)
            finished = finished or []
            finished.append(utt.id)
        if not filled and queue and not queue[0].queued and not queue[0].complete:
            queue[0].starved += 1  # a frame without any of it
        waiting = bool(queue) and queue[0].started
        ducked = self.mode == "voice" and (filled > 0 or waiting)
        pcm = self._mix(filled, self._duck_gain if ducked else self._original_gain)
        return MixedFrame(
            pcm=pcm,
            started=tuple(started) if started else _NO_IDS,
            finished=tuple(finished) if finished else _NO_IDS,
            ducked=ducked,
        )

    def _play(self, utt: _Utterance, filled: int) -> int:
        """Copy the utterance's next samples into the translation buffer from ``filled`` on."""
        buf = self._trans_buf
        while filled < _FRAME and utt.chunks:
            chunk = utt.chunks[0]
            take = min(_FRAME - filled, len(chunk) - utt.offset)
            buf[filled : filled + take] = chunk[utt.offset : utt.offset + take]
            filled += take
            utt.offset += take
            utt.queued -= take
            self._queued -= take
            if utt.offset == len(chunk):
                utt.chunks.popleft()
                utt.offset = 0
        return filled

    def _mix(self, filled: int, gain: float) -> Pcm:
        acc, tmp = self._acc, self._tmp
        prev = self._prev_gain
        if gain == prev:
            np.multiply(self._orig_buf, gain, out=acc)
        else:
            np.multiply(self._ramp, gain - prev, out=tmp)
            np.add(tmp, prev, out=tmp)
            np.multiply(self._orig_buf, tmp, out=acc)
            self._prev_gain = gain
        if filled:
            self._trans_buf[filled:] = 0.0
            np.multiply(self._trans_buf, self._translation_gain, out=tmp)
            np.add(acc, tmp, out=acc)
        np.rint(acc, out=acc)
        np.clip(acc, -32768.0, 32767.0, out=acc)
        return acc.astype(np.int16)

    # -- observability --------------------------------------------------------------------------

    @property
    def playing(self) -> str | None:
        """The utterance on air (started, not finished), if any."""
        return self._queue[0].id if self._queue and self._queue[0].started else None

    @property
    def translation_queue_ms(self) -> float:
        return self._queued / _SAMPLES_PER_MS

    @property
    def original_queue_ms(self) -> float:
        return len(self._original) / _SAMPLES_PER_MS

    @property
    def queued_utterances(self) -> int:
        return len(self._queue)

    @property
    def dropped_original_ms(self) -> float:
        return self._dropped_original / _SAMPLES_PER_MS

    @property
    def original_underrun_ms(self) -> float:
        return self._original_underrun / _SAMPLES_PER_MS

    @property
    def dropped_translation_ms(self) -> float:
        return self._dropped_translation / _SAMPLES_PER_MS

    @property
    def ignored_translation_ms(self) -> float:
        return self._ignored_translation / _SAMPLES_PER_MS

    @property
    def late_translation_ms(self) -> float:
        return self._late_translation / _SAMPLES_PER_MS

    @property
    def overflow_events(self) -> int:
        return self._overflow_events

    @property
    def dropped_utterances(self) -> int:
        return self._dropped_utterances

    @property
    def stalled_utterances(self) -> int:
        return self._stalled_utterances

    def stats(self) -> dict[str, float | int]:
        """All counters and depths, for a canonical log line."""
        return {name: getattr(self, name) for name in _STATS}
