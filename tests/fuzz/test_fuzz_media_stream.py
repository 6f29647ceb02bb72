"""Fuzzing the Twilio Media Streams parser: ``parse`` never raises, whatever arrives."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from callbridge.telephony.media_stats import MediaStats
from callbridge.telephony.media_stream import (
    MAX_MESSAGE_CHARS,
    MAX_PAYLOAD_BYTES,
    Connected,
    Dtmf,
    Invalid,
    InvalidReason,
    Mark,
    Media,
    Start,
    Stop,
    parse,
)

from .strategies import json_values, mutated, wire_text

EVENTS = (Connected, Start, Media, Mark, Dtmf, Stop, Invalid)
SID = "MZ" + "0" * 32

# One well-formed message per event, to mutate (shapes from
# https://www.twilio.com/docs/voice/media-streams/websocket-messages).
TEMPLATES: list[dict[str, Any]] = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": SID,
        "start": {
            "streamSid": SID,
            "accountSid": "AC" + "0" * 32,
            "callSid": "CA" + "0" * 32,
            "tracks": ["inbound"],
            "customParameters": {"call_id": "abc", "role": "caller"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    },
    {
        "event": "media",
        "sequenceNumber": "3",
        "streamSid": SID,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "//8="},
    },
    {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "u:1"}},
    {
        "event": "dtmf",
        "sequenceNumber": "5",
        "streamSid": SID,
        "dtmf": {"track": "inbound_track", "digit": "1"},
    },
    {
        "event": "stop",
        "sequenceNumber": "6",
        "streamSid": SID,
        "stop": {"accountSid": "AC" + "0" * 32, "callSid": "CA" + "0" * 32},
    },
]


def check(raw: str | bytes) -> None:
    """The parser's contract: a typed event, never an exception; Invalid carries a stable
    reason and the raw size; statistics accept whatever it returns."""
    event = parse(raw)
    assert isinstance(event, EVENTS)
    if isinstance(event, Invalid):
        assert isinstance(event.reason, InvalidReason)
        assert event.raw_size == len(raw)
        assert len(event.detail) <= 200
    if isinstance(event, Media):
        assert 0 < len(event.payload) <= MAX_PAYLOAD_BYTES
    MediaStats().record(event)


@given(st.one_of(st.text(), st.binary()))
def test_any_text_or_binary_frame(raw: str | bytes) -> None:
    check(raw)


@given(json_values)
def test_any_json_document(value: Any) -> None:
    check(orjson.dumps(value).decode())


@given(st.sampled_from(TEMPLATES).flatmap(mutated))
def test_twilio_messages_with_fields_dropped_or_replaced(message: dict[str, Any]) -> None:
    check(orjson.dumps(message).decode())


@given(st.binary(min_size=1, max_size=MAX_PAYLOAD_BYTES), wire_text, st.integers(0, 2**40))
def test_valid_media_round_trips(payload: bytes, track: str, timestamp: int) -> None:
    message = {
        "event": "media",
        "sequenceNumber": str(timestamp % 1000),
        "streamSid": SID,
        "media": {
            "track": track,
            "chunk": str(timestamp // 20),
            "timestamp": timestamp,
            "payload": base64.b64encode(payload).decode(),
        },
    }
    event = parse(orjson.dumps(message).decode())
    assert isinstance(event, Media)
    assert (event.payload, event.track, event.timestamp_ms) == (payload, track, timestamp)


@given(st.text(min_size=1, max_size=50), st.integers(MAX_MESSAGE_CHARS + 1, 4 * MAX_MESSAGE_CHARS))
def test_oversized_messages_are_refused_unread(fill: str, size: int) -> None:
    raw = (fill * (size // len(fill) + 1))[:size]
    event = parse(raw)
    assert isinstance(event, Invalid) and event.reason is InvalidReason.TOO_LARGE
