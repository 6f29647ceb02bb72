"""Sans-IO codec for Twilio Media Streams (bidirectional ``<Connect><Stream>``).

:func:`parse` turns one WebSocket message from Twilio into a frozen event and never raises:
anything malformed becomes :class:`Invalid` with a stable ``reason`` code (for counters and logs)
and a human ``detail``. The builders return the exact JSON text frames the app may send back
(https://www.twilio.com/docs/voice/media-streams/websocket-messages, "Send WebSocket messages
to Twilio"). No sockets, no clocks, no logging here: the caller owns all of that.

Wire facts this relies on (same page, "WebSocket messages from Twilio"): every message is a JSON
text frame;
``sequenceNumber``, ``chunk`` and ``timestamp`` are strings of digits (ints are accepted too);
``connected`` has no ``sequenceNumber``/``streamSid``; the media payload is base64 mu-law.
"""

from __future__ import annotations

import binascii
import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

import attrs
import orjson

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_PAYLOAD_BYTES",
    "Connected",
    "Dtmf",
    "Event",
    "Invalid",
    "InvalidReason",
    "Mark",
    "Media",
    "MediaFormat",
    "MediaMessages",
    "Start",
    "Stop",
    "clear_message",
    "mark_message",
    "media_message",
    "parse",
]

MAX_PAYLOAD_BYTES: Final = 8000  # 1 s of 8 kHz mu-law; Twilio sends 160 (20 ms) per message
# Whole-message cap, checked before JSON parsing: a 1 s payload is ~10.7 kB of base64 plus a few
# hundred bytes of JSON, so 64 KiB only rejects abuse (OAP capped its example at 64 KiB too).
MAX_MESSAGE_CHARS: Final = 64 * 1024


@attrs.frozen
class Connected:
    protocol: str
    version: str


@attrs.frozen
class MediaFormat:
    encoding: str
    sample_rate: int
    channels: int

    @property
    def is_mulaw_8k_mono(self) -> bool:
        """The only format callbridge can play and decode."""
        return (self.encoding, self.sample_rate, self.channels) == ("audio/x-mulaw", 8000, 1)


@attrs.frozen
class Start:
    sequence_number: int
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str]


@attrs.frozen
class Media:
    sequence_number: int
    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes  # mu-law, already base64-decoded


@attrs.frozen
class Mark:
    sequence_number: int
    stream_sid: str
    name: str


@attrs.frozen
class Dtmf:
    sequence_number: int
    stream_sid: str
    track: str
    digit: str


@attrs.frozen
class Stop:
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str


class InvalidReason(enum.StrEnum):
    """Why a message was :class:`Invalid` (stable codes for counters and logs)."""

    BINARY_FRAME = "binary_frame"  # Twilio only sends text frames
    TOO_LARGE = "too_large"  # message longer than MAX_MESSAGE_CHARS
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"  # valid JSON, but not an object
    UNKNOWN_EVENT = "unknown_event"  # "event" missing, not a string, or not a Twilio event
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"  # a field of the wrong JSON type
    BAD_NUMBER = "bad_number"  # sequenceNumber/chunk/timestamp/... not a non-negative integer
    BAD_BASE64 = "bad_base64"
    EMPTY_PAYLOAD = "empty_payload"
    PAYLOAD_TOO_LARGE = "payload_too_large"  # decoded media over MAX_PAYLOAD_BYTES


@attrs.frozen
class Invalid:
    """A message that could not be used.

    ``reason`` is an :class:`InvalidReason` (a ``str``). ``raw_size`` is the message length in characters
    (bytes for a binary frame); ``event`` the event name when one was readable.
    """

    reason: InvalidReason
    raw_size: int
    detail: str = ""
    event: str | None = None


Event: TypeAlias = Connected | Start | Media | Mark | Dtmf | Stop | Invalid


class _Bad(Exception):
    """Internal: a field check failed; turned into Invalid at the boundary of parse()."""

    def __init__(self, reason: InvalidReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse(text: str | bytes) -> Event:
    """Decode one WebSocket message from Twilio. Never raises.

    ``bytes`` means a binary WebSocket frame, which Twilio never sends (and forbids, warning
    31950), so it is :class:`Invalid` without looking inside.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        return Invalid(InvalidReason.BINARY_FRAME, len(text), "binary WebSocket frame")
    size = len(text)
    if size > MAX_MESSAGE_CHARS:
        return Invalid(
            InvalidReason.TOO_LARGE, size, f"message of {size} chars > {MAX_MESSAGE_CHARS}"
        )
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Invalid(InvalidReason.BAD_JSON, size, str(exc)[:120])
    if not isinstance(msg, dict):
        return Invalid(InvalidReason.NOT_OBJECT, size, f"top level is {type(msg).__name__}")
    event = msg.get("event")
    decoder = _DECODERS.get(event) if isinstance(event, str) else None
    if decoder is None:
        return Invalid(
            InvalidReason.UNKNOWN_EVENT, size, f"event {event!r}"[:120], _event_name(event)
        )
    try:
        return decoder(msg)
    except _Bad as bad:
        return Invalid(bad.reason, size, bad.detail, _event_name(event))


def _event_name(event: object) -> str | None:
    return event[:40] if isinstance(event, str) else None


def _field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise _Bad(InvalidReason.MISSING_FIELD, f"{where}{key} missing") from None


def _str(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    value = _field(obj, key, where)
    if not isinstance(value, str):
        raise _Bad(InvalidReason.BAD_TYPE, f"{where}{key} is {type(value).__name__}, want string")
    return value


def _obj(obj: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = _field(obj, key, where)
    if not isinstance(value, dict):
        raise _Bad(InvalidReason.BAD_TYPE, f"{where}{key} is {type(value).__name__}, want object")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str = "") -> int:
    """A non-negative integer sent as a string of digits (Twilio) or as a JSON number."""
    value = _field(obj, key, where)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _Bad(
        InvalidReason.BAD_NUMBER, f"{where}{key}={value!r:.40} is not a non-negative integer"
    )


def _decode_connected(msg: Mapping[str, Any]) -> Connected:
    return Connected(protocol=_str(msg, "protocol"), version=_str(msg, "version"))


def _decode_start(msg: Mapping[str, Any]) -> Start:
    start = _obj(msg, "start")
    fmt = _obj(start, "mediaFormat", "start.")
    tracks = _field(start, "tracks", "start.")
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise _Bad(InvalidReason.BAD_TYPE, "start.tracks is not a list of strings")
    params = start.get("customParameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise _Bad(InvalidReason.BAD_TYPE, "start.customParameters is not an object of strings")
    return Start(
        sequence_number=_int(msg, "sequenceNumber"),
        stream_sid=_str(start, "streamSid", "start."),
        call_sid=_str(start, "callSid", "start."),
        account_sid=_str(start, "accountSid", "start."),
        tracks=tuple(tracks),
        media_format=MediaFormat(
            encoding=_str(fmt, "encoding", "start.mediaFormat."),
            sample_rate=_int(fmt, "sampleRate", "start.mediaFormat."),
            channels=_int(fmt, "channels", "start.mediaFormat."),
        ),
        custom_parameters=dict(params),
    )


def _decode_media(msg: Mapping[str, Any]) -> Media:
    media = _obj(msg, "media")
    encoded = _str(media, "payload", "media.")
    # 4 base64 chars carry 3 bytes: reject oversize before spending time decoding it.
    if len(encoded) > (MAX_PAYLOAD_BYTES + 2) // 3 * 4:
        raise _Bad(InvalidReason.PAYLOAD_TOO_LARGE, f"payload of {len(encoded)} base64 chars")
    try:
        payload = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _Bad(InvalidReason.BAD_BASE64, f"media.payload: {exc}") from None
    if not payload:
        raise _Bad(InvalidReason.EMPTY_PAYLOAD, "media.payload is empty")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Bad(
            InvalidReason.PAYLOAD_TOO_LARGE,
            f"payload of {len(payload)} bytes > {MAX_PAYLOAD_BYTES}",
        )
    return Media(
        sequence_number=_int(msg, "sequenceNumber"),
        stream_sid=_str(msg, "streamSid"),
        track=_str(media, "track", "media."),
        chunk=_int(media, "chunk", "media."),
        timestamp_ms=_int(media, "timestamp", "media."),
        payload=payload,
    )


def _decode_mark(msg: Mapping[str, Any]) -> Mark:
    return Mark(
        sequence_number=_int(msg, "sequenceNumber"),
        stream_sid=_str(msg, "streamSid"),
        name=_str(_obj(msg, "mark"), "name", "mark."),
    )


def _decode_dtmf(msg: Mapping[str, Any]) -> Dtmf:
    dtmf = _obj(msg, "dtmf")
    return Dtmf(
        sequence_number=_int(msg, "sequenceNumber"),
        stream_sid=_str(msg, "streamSid"),
        track=_str(dtmf, "track", "dtmf."),
        digit=_str(dtmf, "digit", "dtmf."),
    )


def _decode_stop(msg: Mapping[str, Any]) -> Stop:
    stop = _obj(msg, "stop")
    return Stop(
        sequence_number=_int(msg, "sequenceNumber"),
        stream_sid=_str(msg, "streamSid"),
        account_sid=_str(stop, "accountSid", "stop."),
        call_sid=_str(stop, "callSid", "stop."),
    )


_DECODERS: Final[Mapping[str, Callable[[Mapping[str, Any]], Event]]] = {
    "connected": _decode_connected,
    "start": _decode_start,
    "media": _decode_media,
    "mark": _decode_mark,
    "dtmf": _decode_dtmf,
    "stop": _decode_stop,
}


# ---------------------------------------------------------------------------------------------
# Messages the app sends (exact shapes from Twilio's
# https://www.twilio.com/docs/voice/media-streams/websocket-messages)


def media_message(stream_sid: str, payload: bytes) -> str:
    """Outbound audio: base64 mu-law, ONLY ``payload`` (no track/chunk/timestamp)."""
    b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
    return orjson.dumps(
        {"event": "media", "streamSid": stream_sid, "media": {"payload": b64}}
    ).decode()


class MediaMessages:
    """The ``media`` messages of one stream, from a template: the stream's JSON around the
    payload is built once, so each message costs one base64 encoding and one concatenation.
    ``media(payload)`` equals ``media_message(stream_sid, payload)``."""

    __slots__ = ("_prefix",)

    def __init__(self, stream_sid: str) -> None:
        sid = orjson.dumps(stream_sid).decode()
        self._prefix = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'

    def media(self, payload: bytes) -> str:
        return self._prefix + binascii.b2a_base64(payload, newline=False).decode("ascii") + '"}}'


def mark_message(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo ``name`` once everything sent before it has played (or was cleared)."""
    return orjson.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).decode()


def clear_message(stream_sid: str) -> str:
    """Drop Twilio's buffered outbound audio; pending marks come back unplayed."""
    return orjson.dumps({"event": "clear", "streamSid": stream_sid}).decode()
