"""callbridge.calls.parts: a translation's parts as utterances and as one text."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from callbridge.calls.mixer import MixedFrame
from callbridge.calls.parts import KEPT, TranslationParts, transcription_of, utterance_key
from callbridge.palabra.events import Transcript
from callbridge.roles import Role
from callbridge.telephony.legs import MediaLeg
from tests.calls.fakes import FakeSink, twilio_side
from tests.calls.media_parts import STREAM_SID, output


@pytest.mark.parametrize("tid", ["1a0e9048dfeed5a3", "a#b", "x#0", "t#07"])
@pytest.mark.parametrize("part", [0, 1, 12])
def test_keys_map_back_to_their_transcription(tid: str, part: int) -> None:
    key = utterance_key(tid, part)
    assert transcription_of(key) == tid
    assert (key == tid) == (part == 0)  # part 0 keeps the id every other event uses


def test_parts_play_forward_only() -> None:
    parts = TranslationParts()
    assert parts.speech_key("t", 0) == "t"
    assert parts.speech_key("t", 1) == "t#1"
    assert parts.speech_key("t", 0) is None  # part 1 began: part 0 is over
    assert parts.speech_key("t", 1) == "t#1"
    assert parts.speech_key("u", 0) == "u"
    assert parts.late_chunks == 1


def test_memory_is_bounded() -> None:
    parts = TranslationParts()
    for n in range(KEPT + 10):
        parts.speech_key(f"t{n}", 1)
        parts.whole(Transcript("translation", f"t{n}", "x", "es", 0.0, 1))
    assert len(parts._latest) == len(parts._texts) == KEPT


@pytest.mark.parametrize(("language", "joined"), [("es", "uno dos"), ("ja", "unodos")])
def test_texts_join_in_part_order(language: str, joined: str) -> None:
    parts = TranslationParts()
    later = parts.whole(Transcript("translation", "t", "dos", language, 0.0, 1))
    assert later.text == "dos"
    first = parts.whole(Transcript("translation", "t", "uno ", language, 0.0, 0))
    assert first.text == joined
    assert first.translation_part_id == 0 and first.transcription_id == "t"
    source = Transcript("final", "t", "one two", "en", 0.0)
    assert parts.whole(source) is source


async def test_a_later_parts_played_mark_is_the_transcriptions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FakeSink()
    listener = output(Role.OPERATOR, sink=sink)
    listener.stream_started(STREAM_SID)
    leg = MediaLeg.open(Role.OPERATOR, twilio_side()[1])
    ending = MixedFrame(np.zeros(160, np.int16), finished=("t#1",))
    listener._send_frames(leg, [ending], trio.current_time())  # the mark went out with it
    broadcaster = listener._broadcaster
    async with trio.open_nursery() as nursery:
        nursery.start_soon(broadcaster.run)
        listener.on_mark("u:t#1")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [(e.kind, e.utterance_id) for e in sink.events] == [("played", "t")]
