"""Utterance marks (``u:<id>``): an echo counts only for a mark that was sent and not yet echoed.

Twilio echoes each mark once when the audio before it has played (or at once on ``clear``), so a
second echo of the same name, or an echo of a name never sent, is not news: it must not publish
``played`` again or invent a transcript row (https://www.twilio.com/docs/voice/media-streams/
websocket-messages#mark-message).
"""

from __future__ import annotations

import time

import numpy as np
from structlog.testing import capture_logs

from callbridge.calls.mixer import MixedFrame
from callbridge.calls.output import ListenerOutput
from callbridge.records import CallRecord
from callbridge.roles import Role
from callbridge.telephony.legs import MediaLeg
from tests.calls.fakes import FakeSink, twilio_side
from tests.calls.media_parts import STREAM_SID, output


def _sent_utterance_end(out: ListenerOutput, leg: MediaLeg, utterance_id: str) -> None:
    """The output sends the frame that ends ``utterance_id`` (and so its ``u:`` mark)."""
    frame = MixedFrame(np.zeros(160, np.int16), finished=(utterance_id,))
    out._send_frames(leg, [frame], 0.0)


def _played(out: ListenerOutput, sink: FakeSink) -> list[str]:
    """Every ``played`` event the output published (delivered by closing its broadcaster)."""
    out._broadcaster.close(CallRecord("call-1", "CA1", "+1", "en", "es"))
    return [e.utterance_id for e in sink.events if e.kind == "played"]


def _listener() -> tuple[ListenerOutput, MediaLeg, FakeSink]:
    sink = FakeSink()
    out = output(Role.OPERATOR, sink=sink)
    out.stream_started(STREAM_SID)
    return out, MediaLeg.open(Role.OPERATOR, twilio_side()[1]), sink


async def test_the_echo_of_a_sent_mark_publishes_played_once() -> None:
    out, leg, sink = _listener()
    _sent_utterance_end(out, leg, "u1")
    out.on_mark("u:u1")
    assert _played(out, sink) == ["u1"]


async def test_a_repeated_echo_publishes_nothing_more() -> None:
    out, leg, sink = _listener()
    _sent_utterance_end(out, leg, "u1")
    with capture_logs() as logs:
        out.on_mark("u:u1")
        out.on_mark("u:u1")
        out.on_mark("u:u1")
    assert _played(out, sink) == ["u1"]
    assert out.unexpected_marks == 2
    assert [e["event"] for e in logs].count("mark_unexpected") == 1  # the first one, then counted


async def test_an_echo_of_a_mark_never_sent_invents_no_row() -> None:
    out, _leg, sink = _listener()
    out.on_mark("u:never-sent")
    assert _played(out, sink) == []
    assert out.unexpected_marks == 1


async def test_a_mark_the_socket_dropped_was_never_sent() -> None:
    out, leg, sink = _listener()
    leg.outbound.close()  # every send is now dropped
    _sent_utterance_end(out, leg, "u1")
    out.on_mark("u:u1")
    assert _played(out, sink) == []
    assert out.unexpected_marks == 1


async def test_unexpected_marks_reach_the_summary_line() -> None:
    out, _leg, _sink = _listener()
    out.on_mark("u:nope")
    assert out.summary()["unexpected_marks"] == 1


async def test_the_first_frame_of_a_translation_says_when_the_listener_starts_hearing_it() -> None:
    """For the first-translated-audio latency: sent now, heard after Twilio's buffer."""
    out, leg, sink = _listener()
    out.probe.last_delay_s = 0.04
    out.mixer.push_translation("u1", np.full(480, 3000, np.int16), True)
    before = time.time()
    out._send_frames(leg, [out.mixer.next_frame() for _ in range(3)], 0.0)
    out._broadcaster.close(CallRecord("call-1", "CA1", "+1", "en", "es"))
    [started] = [e for e in sink.events if e.kind == "audio_started"]
    assert started.utterance_id == "u1"
    assert before + 0.04 <= started.ts <= time.time() + 0.04
