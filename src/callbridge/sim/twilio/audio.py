"""Phone audio for the fake Twilio: G.711 mu-law, party voices, the playback buffer, recordings.

Everything runs at 8 kHz mono in 20 ms frames (160 mu-law bytes), the unit Twilio streams in.

* A *voice* produces the frames a party says (tone bursts, silence, or queued script turns).
* A :class:`PlaybackBuffer` is Twilio's outbound FIFO for one stream: the app's media and marks
  go in, one 20 ms frame comes out per tick, marks come back once the audio before them played.
* A :class:`Party` records what that phone heard (decoded PCM per tick, wall-clock stamped) and
  said, and renders both as WAV files aligned on the wall clock.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import time
import wave
from collections import deque
from pathlib import Path
from typing import Protocol

import attrs
import numpy as np
import numpy.typing as npt
import trio

__all__ = [
    "FRAME_BYTES",
    "FRAME_S",
    "LOUD_RMS",
    "MAX_BUFFER_BYTES",
    "RATE",
    "SILENCE_BYTE",
    "Party",
    "Pcm",
    "PlaybackBuffer",
    "QueueVoice",
    "SilenceVoice",
    "Tick",
    "ToneVoice",
    "Voice",
    "read_wav_8k",
    "ulaw_decode",
    "ulaw_encode",
]

RATE = 8000
FRAME_S = 0.020
FRAME_BYTES = 160
SILENCE_BYTE = 0xFF  # mu-law code of zero amplitude
# Twilio discards outbound media beyond 10 minutes buffered (warning 31931).
MAX_BUFFER_BYTES = 10 * 60 * RATE
# RMS above this (about -40 dBFS) counts as "hearing something" for turn-taking.
LOUD_RMS = 330.0

Pcm = npt.NDArray[np.int16]


@functools.cache
def _decode_table() -> Pcm:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign, exp, mant = u & 0x80, (u >> 4) & 7, u & 0x0F
    mag = (((mant << 3) + 0x84) << exp) - 0x84
    return np.where(sign != 0, -mag, mag).astype(np.int16)


@functools.cache
def _encode_table() -> npt.NDArray[np.uint8]:
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x)
    v = x >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), 8159) + (0x84 >> 2)
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0xF))
    return (uval ^ mask).astype(np.uint8)


def ulaw_decode(data: bytes) -> Pcm:
    return _decode_table()[np.frombuffer(data, np.uint8)]


def ulaw_encode(pcm: Pcm) -> bytes:
    return bytes(_encode_table()[pcm.astype(np.int16).view(np.uint16)].tobytes())


def read_wav_8k(path: Path) -> Pcm:
    """A mono 16-bit WAV as 8 kHz PCM (other rates are resampled linearly: test audio only)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            msg = f"{path}: need 16-bit PCM WAV"
            raise ValueError(msg)
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels)[:, 0]
    if rate != RATE and len(pcm):
        n = int(len(pcm) * RATE / rate)
        pcm = np.interp(np.arange(n) * rate / RATE, np.arange(len(pcm)), pcm).astype(np.int16)
    return pcm.astype(np.int16)


def write_wav_8k(path: Path, pcm: Pcm) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm.astype("<i2").tobytes())


class Voice(Protocol):
    def next_frame(self) -> bytes:
        """The next 20 ms (160 mu-law bytes) this party says."""
        ...


@attrs.define
class SilenceVoice:
    def next_frame(self) -> bytes:
        return bytes([SILENCE_BYTE]) * FRAME_BYTES


@attrs.define
class ToneVoice:
    """Bursts of ``freq_hz``: ``start_delay_s`` silence, then ``on_s`` tone / ``off_s`` silence."""

    freq_hz: float
    on_s: float = 1.2
    off_s: float = 1.8
    start_delay_s: float = 0.3
    level_dbfs: float = -12.0
    _sample: int = 0

    def next_frame(self) -> bytes:
        n = np.arange(self._sample, self._sample + FRAME_BYTES)
        self._sample += FRAME_BYTES
        t = n / RATE - self.start_delay_s
        period = self.on_s + self.off_s
        on = (t >= 0) & (np.mod(t, period) < self.on_s)
        amp = 32767 * 10 ** (self.level_dbfs / 20)
        pcm = np.where(on, amp * np.sin(2 * math.pi * self.freq_hz * n / RATE), 0.0)
        frame = bytearray(ulaw_encode(pcm.astype(np.int16)))
        # Exact zero must be the mu-law idle code 0xFF, not its +0 twin 0x7F.
        for i in np.flatnonzero(~on):
            frame[i] = SILENCE_BYTE
        return bytes(frame)


@attrs.define
class QueueVoice:
    """Script-mode voice: says queued utterances, silence in between; tells when one is done."""

    # Each frame carries the event to set once it was sent (only an utterance's last frame).
    _pending: deque[tuple[bytes, trio.Event | None]] = attrs.field(factory=deque)

    def say(self, pcm: Pcm) -> trio.Event:
        """Queue an utterance; the returned event is set once its last frame was sent."""
        data = ulaw_encode(pcm)
        frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
        if frames and len(frames[-1]) < FRAME_BYTES:
            frames[-1] += bytes([SILENCE_BYTE]) * (FRAME_BYTES - len(frames[-1]))
        done = trio.Event()
        if not frames:
            done.set()
            return done
        self._pending.extend((frame, None) for frame in frames[:-1])
        self._pending.append((frames[-1], done))
        return done

    def next_frame(self) -> bytes:
        if not self._pending:
            return bytes([SILENCE_BYTE]) * FRAME_BYTES
        frame, done = self._pending.popleft()
        if done is not None:
            done.set()
        return frame


@attrs.frozen
class Tick:
    frame: bytes  # 160 mu-law bytes played to the listener (silence-padded on underrun)
    marks: list[str]  # marks whose audio has now fully played
    underrun: bool  # the app had started sending but less than 20 ms was buffered


@attrs.define
class PlaybackBuffer:
    """Twilio's outbound FIFO of one stream: media bytes interleaved with mark names."""

    max_bytes: int = MAX_BUFFER_BYTES
    _items: deque[bytes | str] = attrs.field(factory=deque)  # str = mark name
    _bytes: int = 0
    started: bool = False  # any media received yet (underruns only count after that)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def add_media(self, data: bytes) -> bool:
        """Queue audio; False means it was discarded (over 10 minutes buffered, 31931)."""
        if self._bytes + len(data) > self.max_bytes:
            return False
        self.started = True
        if data:
            self._items.append(data)
            self._bytes += len(data)
        return True

    def add_mark(self, name: str) -> bool:
        """Queue a mark; True means nothing is buffered, so it is echoed right away."""
        if not self._items:
            return True
        self._items.append(name)
        return False

    def clear(self) -> tuple[list[str], int]:
        """Drop all audio; returns the pending marks (to echo now) and the bytes dropped."""
        marks = [item for item in self._items if isinstance(item, str)]
        dropped = self._bytes
        self._items.clear()
        self._bytes = 0
        return marks, dropped

    def tick(self) -> Tick:
        out = bytearray()
        while len(out) < FRAME_BYTES and self._items:
            head = self._items[0]
            if isinstance(head, str):
                # A mark before the end of this frame: its audio already left the buffer but
                # is still playing, so it is echoed at the end of the tick (below).
                break
            take = head[: FRAME_BYTES - len(out)]
            out += take
            self._bytes -= len(take)
            if len(take) == len(head):
                self._items.popleft()
            else:
                self._items[0] = head[len(take) :]
        underrun = self.started and len(out) < FRAME_BYTES
        # Mark names at the front are now fully played; a mark in the middle of a short frame
        # (audio ran out before it) is also played.
        marks: list[str] = []
        while self._items and isinstance(self._items[0], str):
            marks.append(str(self._items.popleft()))
        if len(out) < FRAME_BYTES:
            out += bytes([SILENCE_BYTE]) * (FRAME_BYTES - len(out))
        return Tick(bytes(out), marks, underrun)


@attrs.define(eq=False)
class Party:
    """One phone (caller or operator): what it heard and said, with wall-clock times."""

    name: str
    heard: list[tuple[float, bytes]] = attrs.field(factory=list)  # (time.time(), mu-law frame)
    said: list[tuple[float, bytes]] = attrs.field(factory=list)
    events: list[dict[str, object]] = attrs.field(factory=list)  # Say / Play / Pause as heard
    voice: Voice | None = None  # script mode: one shared voice; else a fresh one per stream
    last_loud: float = -math.inf  # trio clock of the last heard frame above LOUD_RMS
    loud_frames: int = 0
    stream_live: trio.Event = attrs.field(factory=trio.Event)
    stream_started_at: float = 0.0  # trio clock
    record: bool = True  # keep heard/said audio (False: a long soak; no WAVs then)

    def record_heard(self, frame: bytes) -> None:
        if self.record:
            self.heard.append((time.time(), frame))
        pcm = ulaw_decode(frame).astype(np.float64)
        if float(np.sqrt(np.mean(pcm * pcm))) > LOUD_RMS:
            self.loud_frames += 1
            self.last_loud = trio.current_time()

    def record_said(self, frame: bytes) -> None:
        if self.record:
            self.said.append((time.time(), frame))

    def write_wavs(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for kind, frames in (("heard", self.heard), ("said", self.said)):
            path = directory / f"{self.name}-{kind}.wav"
            write_wav_8k(path, align_frames(frames))
            paths.append(path)
            paths.append(write_timeline(directory / f"{self.name}-{kind}.timeline.json", frames))
        return paths

    def heard_summary(self) -> dict[str, object]:
        return {
            "frames": len(self.heard),
            "loud_ms": self.loud_frames * 20,
            "first_at": self.heard[0][0] if self.heard else None,
            "last_at": self.heard[-1][0] if self.heard else None,
            "events": list(self.events),
        }


def write_timeline(path: Path, frames: list[tuple[float, bytes]]) -> Path:
    """Every frame with its wall-clock time, for exact timing analysis in tests:
    ``{"times": [t, ...], "mulaw": base64 of the frames back to back}``."""
    body = {
        "times": [stamp for stamp, _ in frames],
        "frame_bytes": FRAME_BYTES,
        "mulaw": base64.b64encode(b"".join(frame for _, frame in frames)).decode(),
    }
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def align_frames(frames: list[tuple[float, bytes]]) -> Pcm:
    """Decode frames into one track, placing each by its wall-clock time.

    Frames of one stream arrive on a 20 ms schedule and are laid end to end; only a gap of
    more than two frames (between streams, or a stalled process) is filled with silence, so
    scheduling jitter does not chop the audio.
    """
    if not frames:
        return np.zeros(0, np.int16)
    t0 = frames[0][0]
    chunks: list[Pcm] = []
    cursor = 0
    for stamp, frame in frames:
        target = round((stamp - t0) * RATE)
        if target > cursor + 2 * FRAME_BYTES:
            chunks.append(np.zeros(target - cursor, np.int16))
            cursor = target
        pcm = ulaw_decode(frame)
        chunks.append(pcm)
        cursor += len(pcm)
    return np.concatenate(chunks).astype(np.int16)
