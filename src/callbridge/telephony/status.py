"""Call status callbacks (``StatusCallback`` of a REST-created call), parsed into values.

Twilio sends one form POST per requested event (``initiated``, ``ringing``, ``answered`` as
``CallStatus=in-progress``, ``completed`` for every terminal status). They may arrive out of order
and may be retried, so the state machine orders them by ``SequenceNumber`` (starts at 0) and treats
a terminal status as final (https://www.twilio.com/docs/voice/api/call-resource,
"StatusCallback", "StatusCallbackEvent").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from callbridge.errors import CallbridgeError

__all__ = [
    "TERMINAL_STATUSES",
    "StatusCallbackError",
    "StatusUpdate",
    "parse_status_callback",
]

TERMINAL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


class StatusCallbackError(CallbridgeError, ValueError):
    """A status callback without the fields every callback carries (``CallSid``, ``CallStatus``)."""


@attrs.frozen
class StatusUpdate:
    call_sid: str
    call_status: str
    sequence: int | None
    timestamp: str | None  # RFC 2822 as Twilio sends it, e.g. "Tue, 31 Aug 2010 20:36:28 +0000"
    duration_s: int | None  # CallDuration, on terminal events
    sip_code: int | None  # SipResponseCode, on terminal events (487 = ring timeout, 486 = busy)

    @property
    def is_terminal(self) -> bool:
        return self.call_status in TERMINAL_STATUSES


def parse_status_callback(form: Mapping[str, Any]) -> StatusUpdate:
    """Parse one status callback form (a mapping or a multi-dict; the first value of a key wins).

    Error handling: ``StatusCallbackError`` when ``CallSid`` or ``CallStatus`` is missing or empty.
    Optional numeric fields that are absent, empty or malformed become ``None``: one bad optional
    field must not lose the status change itself.
    """
    call_sid = _text(form, "CallSid")
    call_status = _text(form, "CallStatus")
    if call_sid is None or call_status is None:
        missing = [k for k, v in (("CallSid", call_sid), ("CallStatus", call_status)) if v is None]
        msg = f"status callback without {', '.join(missing)}"
        raise StatusCallbackError(msg)
    return StatusUpdate(
        call_sid=call_sid,
        call_status=call_status.lower(),
        sequence=_int(form, "SequenceNumber"),
        timestamp=_text(form, "Timestamp"),
        duration_s=_int(form, "CallDuration"),
        sip_code=_int(form, "SipResponseCode"),
    )


def _text(form: Mapping[str, Any], key: str) -> str | None:
    value = form.get(key)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(form: Mapping[str, Any], key: str) -> int | None:
    text = _text(form, key)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
