"""Small builders for testing one media task on its own: outputs, legs and Twilio messages."""

from __future__ import annotations

import base64

import attrs
import numpy as np
import orjson
import trio

from callbridge.audio import Pcm, hold_chime, ulaw_encode
from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.mixer import ListenerMixer
from callbridge.calls.output import ListenerOutput
from callbridge.config import DirectionMode, MediaConfig
from callbridge.roles import Role
from callbridge.telephony.media_stats import MediaStats
from tests.calls.fakes import FakeSink

STREAM_SID = "MZ" + "0" * 32


def output(
    listener: Role,
    *,
    sink: FakeSink | None = None,
    bridged: trio.Event | None = None,
    mode: DirectionMode = "voice",
) -> ListenerOutput:
    media = MediaConfig()
    return ListenerOutput(
        listener,
        ListenerMixer.from_config(media, mode),
        hold=hold_chime(),
        bridged=bridged if bridged is not None else trio.Event(),
        broadcaster=CallBroadcaster(sink or FakeSink()),
        call_id="call-1",
        stats=MediaStats(),
        playout_target_s=media.playout_target_ms / 1000,
    )


def media_message(pcm: Pcm, chunk: int = 1) -> str:
    payload = base64.b64encode(ulaw_encode(pcm)).decode()
    return orjson.dumps(
        {
            "event": "media",
            "sequenceNumber": str(chunk + 1),
            "streamSid": STREAM_SID,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(chunk * 20),
                "payload": payload,
            },
        }
    ).decode()


def mark_message(name: str) -> str:
    return orjson.dumps(
        {"event": "mark", "sequenceNumber": "9", "streamSid": STREAM_SID, "mark": {"name": name}}
    ).decode()


def stop_message() -> str:
    return orjson.dumps(
        {
            "event": "stop",
            "sequenceNumber": "10",
            "streamSid": STREAM_SID,
            "stop": {"accountSid": "AC" + "0" * 32, "callSid": "CA" + "0" * 32},
        }
    ).decode()


def tone(level: int = 8000) -> Pcm:
    return np.full(160, level, dtype=np.int16)


@attrs.define
class RecordingInput:
    """A translator stand-in: what the speaker fed it."""

    frames: list[Pcm] = attrs.Factory(list)

    def feed(self, pcm8: Pcm) -> None:
        self.frames.append(pcm8)
