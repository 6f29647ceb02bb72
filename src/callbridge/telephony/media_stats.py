"""``MediaStats``: the counters of one Media Stream, both ways, for the call's summary line."""

from __future__ import annotations

from typing import Final

import attrs

from callbridge.telephony.media_stream import Dtmf, Event, Invalid, Mark, Media

__all__ = ["MediaStats"]

_GAP_SLACK_MS: Final = 5  # timestamp jitter tolerated before MediaStats counts a gap


@attrs.define
class MediaStats:
    """Per-stream counters. ``record`` every parsed event and ``record_out`` every media sent.

    ``timestamp_gaps``/``gap_ms`` count inbound media whose timestamp jumped further than the
    previous payload lasted (Twilio may skip silent chunks; 5 ms of slack for rounding).
    """

    frames_in: int = 0
    payload_bytes_in: int = 0
    marks_in: int = 0
    dtmf_in: int = 0
    frames_out: int = 0
    payload_bytes_out: int = 0
    marks_out: int = 0
    timestamp_gaps: int = 0
    gap_ms: int = 0
    invalid: dict[str, int] = attrs.Factory(dict)
    _next_timestamp_ms: int | None = None

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())

    def record(self, event: Event) -> None:
        if isinstance(event, Media):
            self.frames_in += 1
            self.payload_bytes_in += len(event.payload)
            expected = self._next_timestamp_ms
            if expected is not None and event.timestamp_ms > expected + _GAP_SLACK_MS:
                self.timestamp_gaps += 1
                self.gap_ms += event.timestamp_ms - expected
            self._next_timestamp_ms = event.timestamp_ms + len(event.payload) // 8
        elif isinstance(event, Invalid):
            key = event.reason.value  # plain str keys: safe for any JSON renderer
            self.invalid[key] = self.invalid.get(key, 0) + 1
        elif isinstance(event, Mark):
            self.marks_in += 1
        elif isinstance(event, Dtmf):
            self.dtmf_in += 1

    def record_out(self, payload_bytes: int = 0, *, mark: bool = False) -> None:
        """Count one outbound media message of ``payload_bytes`` (or a mark)."""
        if mark:
            self.marks_out += 1
        else:
            self.frames_out += 1
            self.payload_bytes_out += payload_bytes

    def as_dict(self) -> dict[str, object]:
        """Counters for a canonical log line or a report."""
        return {
            "frames_in": self.frames_in,
            "payload_bytes_in": self.payload_bytes_in,
            "marks_in": self.marks_in,
            "dtmf_in": self.dtmf_in,
            "frames_out": self.frames_out,
            "payload_bytes_out": self.payload_bytes_out,
            "marks_out": self.marks_out,
            "timestamp_gaps": self.timestamp_gaps,
            "gap_ms": self.gap_ms,
            "invalid": dict(self.invalid),
        }
