"""callbridge.telephony.media_stream: golden Twilio messages in and out, and every class of bad input."""

from __future__ import annotations

import base64
import json
import random

import orjson
import pytest

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
    MediaFormat,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_message,
    parse,
)

SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
CALL = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"

# Golden inbound messages, from Twilio's docs,
# https://www.twilio.com/docs/voice/media-streams/websocket-messages.
CONNECTED = '{"event": "connected", "protocol": "Call", "version": "1.0.0"}'
START = """{
  "event": "start",
  "sequenceNumber": "1",
  "start": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "tracks": ["inbound"],
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"}
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}"""
MEDIA = """{"event": "media", "sequenceNumber": "4",
 "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": "no+JhoaJjpzS"},
 "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}"""
DTMF = """{"event": "dtmf", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "sequenceNumber": "5",
 "dtmf": {"track": "inbound_track", "digit": "1"}}"""
MARK = """{"event": "mark", "sequenceNumber": "4", "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
 "mark": {"name": "my label"}}"""
STOP = """{"event": "stop", "sequenceNumber": "5",
 "stop": {"accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
          "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"},
 "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}"""

GOLDEN = [CONNECTED, START, MEDIA, DTMF, MARK, STOP]


class TestGoldenInbound:
    def test_connected(self) -> None:
        assert parse(CONNECTED) == Connected(protocol="Call", version="1.0.0")

    def test_start(self) -> None:
        event = parse(START)
        assert event == Start(
            sequence_number=1,
            stream_sid=SID,
            call_sid=CALL,
            account_sid=ACCOUNT,
            tracks=("inbound",),
            media_format=MediaFormat("audio/x-mulaw", 8000, 1),
            custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        )
        assert isinstance(event, Start)
        assert event.media_format.is_mulaw_8k_mono

    def test_media(self) -> None:
        assert parse(MEDIA) == Media(
            sequence_number=4,
            stream_sid=SID,
            track="inbound",
            chunk=2,
            timestamp_ms=5,
            payload=base64.b64decode("no+JhoaJjpzS"),
        )

    def test_dtmf(self) -> None:
        assert parse(DTMF) == Dtmf(
            sequence_number=5, stream_sid=SID, track="inbound_track", digit="1"
        )

    def test_mark(self) -> None:
        assert parse(MARK) == Mark(sequence_number=4, stream_sid=SID, name="my label")

    def test_stop(self) -> None:
        assert parse(STOP) == Stop(
            sequence_number=5, stream_sid=SID, account_sid=ACCOUNT, call_sid=CALL
        )

    def test_typical_160_byte_frame(self) -> None:
        payload = bytes(range(160))
        text = _media(base64.b64encode(payload).decode())
        event = parse(text)
        assert isinstance(event, Media)
        assert event.payload == payload

    def test_numbers_as_json_ints_are_accepted(self) -> None:
        msg = orjson.loads(MEDIA)
        msg["sequenceNumber"], msg["media"]["chunk"], msg["media"]["timestamp"] = 4, 2, 5
        assert parse(json.dumps(msg)) == parse(MEDIA)

    def test_start_without_custom_parameters(self) -> None:
        msg = orjson.loads(START)
        del msg["start"]["customParameters"]
        event = parse(json.dumps(msg))
        assert isinstance(event, Start)
        assert event.custom_parameters == {}

    def test_non_mulaw_format_is_reported_not_rejected(self) -> None:
        msg = orjson.loads(START)
        msg["start"]["mediaFormat"]["sampleRate"] = 16000
        event = parse(json.dumps(msg))
        assert isinstance(event, Start)
        assert not event.media_format.is_mulaw_8k_mono


class TestOutbound:
    def test_media_message_exact_shape(self) -> None:
        text = media_message(SID, b"\x00\xff\x7f")
        assert text == '{"event":"media","streamSid":"' + SID + '","media":{"payload":"AP9/"}}'
        # Only payload inside media: no track, chunk or timestamp (Twilio's docs).
        assert json.loads(text) == {
            "event": "media",
            "streamSid": SID,
            "media": {"payload": "AP9/"},
        }

    def test_media_message_round_trips_160_bytes(self) -> None:
        payload = bytes(range(160))
        msg = json.loads(media_message(SID, payload))
        assert base64.b64decode(msg["media"]["payload"], validate=True) == payload
        assert len(msg["media"]["payload"]) == 216

    def test_mark_message(self) -> None:
        text = mark_message(SID, "utt-7")
        assert text == '{"event":"mark","streamSid":"' + SID + '","mark":{"name":"utt-7"}}'

    def test_clear_message(self) -> None:
        assert clear_message(SID) == '{"event":"clear","streamSid":"' + SID + '"}'

    def test_outbound_mark_parses_back_like_twilio_echo(self) -> None:
        msg = json.loads(mark_message(SID, "x"))
        msg["sequenceNumber"] = "9"
        assert parse(json.dumps(msg)) == Mark(sequence_number=9, stream_sid=SID, name="x")


def _media(payload: object, **media: object) -> str:
    body: dict[str, object] = {
        "track": "inbound",
        "chunk": "1",
        "timestamp": "0",
        "payload": payload,
    }
    body.update(media)
    return json.dumps({"event": "media", "sequenceNumber": "2", "streamSid": SID, "media": body})


def _without(text: str, *path: str) -> str:
    msg = orjson.loads(text)
    target = msg
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return json.dumps(msg)


def _with(text: str, value: object, *path: str) -> str:
    msg = orjson.loads(text)
    target = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(msg)


INVALID_CASES: list[tuple[str, str | bytes, InvalidReason]] = [
    ("binary frame", MEDIA.encode(), InvalidReason.BINARY_FRAME),
    ("too large", " " * (MAX_MESSAGE_CHARS + 1), InvalidReason.TOO_LARGE),
    ("not json", "{event: media", InvalidReason.BAD_JSON),
    ("empty text", "", InvalidReason.BAD_JSON),
    ("json array", "[1, 2]", InvalidReason.NOT_OBJECT),
    ("json string", '"media"', InvalidReason.NOT_OBJECT),
    ("unknown event", '{"event": "clear", "streamSid": "MZ1"}', InvalidReason.UNKNOWN_EVENT),
    ("no event", '{"streamSid": "MZ1"}', InvalidReason.UNKNOWN_EVENT),
    ("event not a string", '{"event": 3}', InvalidReason.UNKNOWN_EVENT),
    ("connected without version", _without(CONNECTED, "version"), InvalidReason.MISSING_FIELD),
    ("start without callSid", _without(START, "start", "callSid"), InvalidReason.MISSING_FIELD),
    ("start without body", _without(START, "start"), InvalidReason.MISSING_FIELD),
    (
        "start without mediaFormat",
        _without(START, "start", "mediaFormat"),
        InvalidReason.MISSING_FIELD,
    ),
    ("media without payload", _without(MEDIA, "media", "payload"), InvalidReason.MISSING_FIELD),
    ("media without streamSid", _without(MEDIA, "streamSid"), InvalidReason.MISSING_FIELD),
    ("media without seq", _without(MEDIA, "sequenceNumber"), InvalidReason.MISSING_FIELD),
    ("media without timestamp", _without(MEDIA, "media", "timestamp"), InvalidReason.MISSING_FIELD),
    ("mark without name", _without(MARK, "mark", "name"), InvalidReason.MISSING_FIELD),
    ("bare mark", _without(MARK, "mark"), InvalidReason.MISSING_FIELD),
    ("dtmf without digit", _without(DTMF, "dtmf", "digit"), InvalidReason.MISSING_FIELD),
    ("stop without callSid", _without(STOP, "stop", "callSid"), InvalidReason.MISSING_FIELD),
    ("tracks not a list", _with(START, "inbound", "start", "tracks"), InvalidReason.BAD_TYPE),
    (
        "params not strings",
        _with(START, {"a": 1}, "start", "customParameters"),
        InvalidReason.BAD_TYPE,
    ),
    ("media not an object", _with(MEDIA, "x", "media"), InvalidReason.BAD_TYPE),
    ("payload a number", _media(12), InvalidReason.BAD_TYPE),
    ("streamSid a number", _with(MARK, 5, "streamSid"), InvalidReason.BAD_TYPE),
    ("seq not digits", _with(MEDIA, "four", "sequenceNumber"), InvalidReason.BAD_NUMBER),
    ("seq negative", _with(MEDIA, "-1", "sequenceNumber"), InvalidReason.BAD_NUMBER),
    ("seq float", _with(MEDIA, 1.5, "sequenceNumber"), InvalidReason.BAD_NUMBER),
    ("seq bool", _with(MEDIA, True, "sequenceNumber"), InvalidReason.BAD_NUMBER),
    ("chunk empty", _media("AAAA", chunk=""), InvalidReason.BAD_NUMBER),
    ("timestamp unicode digits", _media("AAAA", timestamp="٣"), InvalidReason.BAD_NUMBER),
    (
        "sampleRate a string",
        _with(START, "8k", "start", "mediaFormat", "sampleRate"),
        InvalidReason.BAD_NUMBER,
    ),
    ("payload bad alphabet", _media("no+Jho!aJjpz"), InvalidReason.BAD_BASE64),
    ("payload bad padding", _media("abc"), InvalidReason.BAD_BASE64),
    ("payload with newline", _media("AAAA\nAAAA"), InvalidReason.BAD_BASE64),
    ("payload empty", _media(""), InvalidReason.EMPTY_PAYLOAD),
    (
        "payload over 1 s",
        _media(base64.b64encode(bytes(MAX_PAYLOAD_BYTES + 1)).decode()),
        InvalidReason.PAYLOAD_TOO_LARGE,
    ),
]


class TestInvalid:
    @pytest.mark.parametrize(
        ("text", "reason"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
    )
    def test_invalid_input_is_reported_with_a_reason(self, text: str | bytes, reason: str) -> None:
        event = parse(text)
        assert isinstance(event, Invalid)
        assert event.reason == reason
        assert event.raw_size == len(text)
        assert event.detail

    def test_invalid_names_the_event_when_known(self) -> None:
        event = parse(_without(MARK, "mark", "name"))
        assert isinstance(event, Invalid)
        assert event.event == "mark"
        assert "mark.name" in event.detail

    def test_payload_of_exactly_1s_is_accepted(self) -> None:
        event = parse(_media(base64.b64encode(bytes(MAX_PAYLOAD_BYTES)).decode()))
        assert isinstance(event, Media)
        assert len(event.payload) == MAX_PAYLOAD_BYTES

    def test_parse_never_raises_on_mangled_messages(self) -> None:
        rng = random.Random(1234)
        alphabet = '{}[]":,0123456789abcdefAZ+/= \\\x00é'
        for _ in range(3000):
            text = rng.choice(GOLDEN)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(text) + 1)
                op = rng.randrange(3)
                if op == 0:
                    text = text[:i] + text[i + 1 :]
                elif op == 1:
                    text = text[:i] + rng.choice(alphabet) + text[i:]
                else:
                    text = text[:i]
            event = parse(text)
            assert isinstance(event, Connected | Start | Media | Mark | Dtmf | Stop | Invalid)


class TestMediaStats:
    def test_counts_frames_invalid_marks_dtmf(self) -> None:
        stats = MediaStats()
        texts: list[str | bytes] = [MEDIA, MEDIA, MARK, DTMF, "nope", b"\x00", "[]", "nope"]
        for text in texts:
            stats.record(parse(text))
        assert stats.frames_in == 2
        assert stats.payload_bytes_in == 18
        assert (stats.marks_in, stats.dtmf_in) == (1, 1)
        assert stats.invalid == {"bad_json": 2, "binary_frame": 1, "not_object": 1}
        assert stats.invalid_total == 4

    def test_counts_timestamp_gaps(self) -> None:
        stats = MediaStats()
        frame = base64.b64encode(bytes(160)).decode()
        for ts in (0, 20, 40, 100, 120, 123):  # 100 skips 40 ms; 123 is early: no gap
            stats.record(parse(_media(frame, timestamp=str(ts))))
        assert stats.timestamp_gaps == 1
        assert stats.gap_ms == 40

    def test_record_out_and_as_dict(self) -> None:
        stats = MediaStats()
        stats.record_out(160)
        stats.record_out(mark=True)
        out = stats.as_dict()
        assert (out["frames_out"], out["payload_bytes_out"], out["marks_out"]) == (1, 160, 1)
