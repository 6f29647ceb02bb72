"""Status callback parsing."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from callbridge.telephony.status import (
    TERMINAL_STATUSES,
    StatusCallbackError,
    StatusUpdate,
    parse_status_callback,
)

COMPLETED = {
    "AccountSid": "AC" + "a" * 32,
    "CallSid": "CA" + "b" * 32,
    "CallStatus": "completed",
    "CallDuration": "42",
    "Duration": "1",
    "SipResponseCode": "200",
    "Timestamp": "Tue, 31 Aug 2010 20:36:28 +0000",
    "CallbackSource": "call-progress-events",
    "SequenceNumber": "3",
}


def test_terminal_callback() -> None:
    update = parse_status_callback(COMPLETED)
    assert update == StatusUpdate(
        call_sid="CA" + "b" * 32,
        call_status="completed",
        sequence=3,
        timestamp="Tue, 31 Aug 2010 20:36:28 +0000",
        duration_s=42,
        sip_code=200,
    )
    assert update.is_terminal


def test_ringing_has_no_terminal_fields() -> None:
    form = MultiDict(
        [("CallSid", "CA1"), ("CallStatus", "ringing"), ("SequenceNumber", "0"), ("Timestamp", "")]
    )
    update = parse_status_callback(form)
    assert update.sequence == 0  # Twilio's sequence starts at 0: not "missing"
    assert update.timestamp is None
    assert update.duration_s is None
    assert update.sip_code is None
    assert not update.is_terminal


def test_answered_is_in_progress() -> None:
    update = parse_status_callback({"CallSid": "CA1", "CallStatus": "in-progress"})
    assert update.call_status == "in-progress"
    assert not update.is_terminal


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_terminal_statuses(status: str) -> None:
    update = parse_status_callback(
        {"CallSid": "CA1", "CallStatus": status, "SipResponseCode": "487"}
    )
    assert update.is_terminal
    assert update.sip_code == 487


def test_terminal_set_is_exactly_twilios() -> None:
    assert frozenset({"completed", "busy", "no-answer", "failed", "canceled"}) == TERMINAL_STATUSES


@pytest.mark.parametrize(
    ("form", "missing"),
    [
        ({"CallStatus": "ringing"}, "CallSid"),
        ({"CallSid": "CA1"}, "CallStatus"),
        ({"CallSid": " ", "CallStatus": ""}, "CallSid, CallStatus"),
    ],
)
def test_required_fields(form: dict[str, str], missing: str) -> None:
    with pytest.raises(StatusCallbackError, match=missing):
        parse_status_callback(form)


def test_malformed_optional_numbers_become_none() -> None:
    update = parse_status_callback(
        {"CallSid": "CA1", "CallStatus": "Busy", "SequenceNumber": "x", "CallDuration": "1.5"}
    )
    assert update.call_status == "busy"
    assert update.sequence is None
    assert update.duration_s is None


def test_list_values_take_the_first() -> None:
    update = parse_status_callback({"CallSid": ["CA1", "CA2"], "CallStatus": ["failed"]})
    assert update.call_sid == "CA1"
    assert update.call_status == "failed"
