"""Added latency at the listener, on the original path and on the translated path.

In tone mode every voice has its own frequency (docs/simulators.md): the caller says 500 Hz, the
operator 800 Hz, and each translation is a tone chosen by its target language. The Twilio
simulator, started with ``--detect-tones``, reports per stream when each burst of its own voice
was sent (``said_onsets``) and when each frequency rose in what the phone played
(``heard_onsets``), all wall-clock seconds, as do the Palabra simulator's reports.

* **original**: a speaker's burst sent by Twilio -> the other party first hears that frequency.
* **translated**: Palabra sent an utterance's first audio chunk -> the listener first hears the
  translation's tone.

Both include the daemon's work, loopback, the wait for the listener's next 20 ms playout tick
and any frame standing in Twilio's buffer: what the listener experiences, as
``tests/e2e/test_media.py`` measures it for one call. Streams are paired into calls by their
URL (``/media/{call_id}/{role}``); a translated utterance is tied to its call through the
daemon's transcript API (``GET /api/calls/{id}``: the utterance id is Palabra's
``transcription_id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from callbridge.sim.palabra.tones import tone_for
from callbridge.sim.twilio.sim import TONE_HZ

__all__ = [
    "CallStreams",
    "Latencies",
    "group_streams",
    "original_latencies",
    "translated_latencies",
]

SLACK_S = 0.1  # a heard onset may be stamped this much before the send (two clocks' tick)
ORIGINAL_WITHIN_S = 1.0  # a burst not heard by then is reported missing
TRANSLATED_WITHIN_S = 2.0
_MEDIA_URL = re.compile(r"^(wss?://[^/]+)/media/([^/]+)/(caller|operator)$")


@attrs.frozen
class CallStreams:
    """One call's two streams as the Twilio simulator reported them in a window."""

    call_id: str
    daemon_url: str  # http://host:port of the daemon that served it
    streams: Mapping[str, Mapping[str, Any]]  # role -> window stats of that stream


@attrs.define
class Latencies:
    samples_ms: list[float] = attrs.Factory(list)
    missing: int = 0  # sent but never heard within the limit

    def add(self, value_s: float | None) -> None:
        if value_s is None:
            self.missing += 1
        else:
            self.samples_ms.append(round(value_s * 1000, 1))

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples_ms)

        def pick(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "count": len(ordered),
            "missing": self.missing,
            "p50_ms": pick(0.50),
            "p90_ms": pick(0.90),
            "max_ms": ordered[-1] if ordered else None,
        }


def group_streams(streams: Sequence[Mapping[str, Any]]) -> dict[str, CallStreams]:
    """Calls with both streams present, by call id."""
    by_call: dict[str, dict[str, Mapping[str, Any]]] = {}
    bases: dict[str, str] = {}
    for stream in streams:
        match = _MEDIA_URL.match(str(stream.get("url", "")))
        if match is None:
            continue
        base, call_id, role = match.groups()
        by_call.setdefault(call_id, {})[role] = stream
        bases[call_id] = base.replace("ws", "http", 1)
    return {
        call_id: CallStreams(call_id, bases[call_id], roles)
        for call_id, roles in by_call.items()
        if len(roles) == 2
    }


def _first_heard(
    stream: Mapping[str, Any], tone_hz: float, sent: float, within: float
) -> float | None:
    heard = stream.get("heard_onsets", {}).get(f"{tone_hz:g}", [])
    later = [t for t in heard if sent - SLACK_S <= t <= sent + within]
    return min(later) - sent if later else None


def original_latencies(calls: Mapping[str, CallStreams], window_end: float) -> Latencies:
    """Every burst said in the window (but its last second, so it can still be heard), to its
    first hearing by the other party."""
    result = Latencies()
    for call in calls.values():
        for speaker, listener in (("caller", "operator"), ("operator", "caller")):
            voice = TONE_HZ[speaker]
            for sent in call.streams[speaker].get("said_onsets", []):
                if sent <= window_end - ORIGINAL_WITHIN_S:
                    heard = _first_heard(call.streams[listener], voice, sent, ORIGINAL_WITHIN_S)
                    result.add(heard)
    return result


def translated_latencies(
    calls: Mapping[str, CallStreams],
    palabra_report: Mapping[str, Any],
    speakers: Mapping[str, tuple[str, str]],
    languages: Mapping[str, str],
    window: tuple[float, float],
) -> Latencies:
    """Every translation Palabra began to send within ``window`` (wall clock, last 2 s left out
    so it can still be heard), to its first hearing by the listener. ``speakers`` maps an
    utterance id to (call id, speaking role); ``languages`` maps a role to its language."""
    result = Latencies()
    start, end = window
    for connection in palabra_report.get("connections", []):
        for utterance in connection.get("utterances", []):
            sent = utterance.get("first_audio_chunk_at")
            owner = speakers.get(str(utterance.get("transcription_id")))
            if sent is None or owner is None or not start <= sent <= end - TRANSLATED_WITHIN_S:
                continue
            call_id, speaker = owner
            call = calls.get(call_id)
            if call is None:
                continue
            listener = "operator" if speaker == "caller" else "caller"
            tone = tone_for(languages[listener])
            result.add(_first_heard(call.streams[listener], tone, sent, TRANSLATED_WITHIN_S))
    return result
