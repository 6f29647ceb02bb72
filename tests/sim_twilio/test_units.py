"""Pure pieces: playback buffer, tone voice, scenario parsing, TwiML parsing."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.sim.twilio.audio import Party, PlaybackBuffer, ulaw_decode
from callbridge.sim.twilio.scenario import ScenarioError, scenario_from_dict
from callbridge.sim.twilio.tone_voice import ToneVoice
from callbridge.sim.twilio.twiml import Connect, Play, Say, TwimlError, parse_twiml


def test_buffer_plays_160_bytes_per_tick_and_echoes_marks_after_their_audio() -> None:
    buf = PlaybackBuffer()
    assert buf.add_mark("idle") is True  # empty: echo now
    buf.add_media(b"\x01" * 200)
    assert buf.add_mark("m1") is False
    first = buf.tick()
    assert first.frame == b"\x01" * 160 and first.marks == [] and not first.underrun
    second = buf.tick()
    assert (
        second.frame == b"\x01" * 40 + b"\xff" * 120 and second.marks == ["m1"] and second.underrun
    )
    assert buf.tick().underrun


def test_clear_drops_audio_and_returns_pending_marks_in_order() -> None:
    buf = PlaybackBuffer()
    buf.add_media(b"\x00" * 800)
    buf.add_mark("a")
    buf.add_media(b"\x00" * 800)
    buf.add_mark("b")
    assert buf.clear() == (["a", "b"], 1600)
    assert buf.buffered_bytes == 0


def test_buffer_discards_beyond_limit() -> None:
    buf = PlaybackBuffer(max_bytes=320)
    assert buf.add_media(b"\x00" * 320)
    assert not buf.add_media(b"\x00")


def test_tone_voice_bursts_at_its_frequency_with_ulaw_silence_between() -> None:
    voice = ToneVoice(500.0, on_s=0.2, off_s=0.2, start_delay_s=0.1)
    frames = [voice.next_frame() for _ in range(25)]
    assert frames[0] == b"\xff" * 160  # start delay
    burst = ulaw_decode(b"".join(frames[5:15])).astype(float)
    assert abs(np.argmax(np.abs(np.fft.rfft(burst))) * 8000 / len(burst) - 500) < 10
    assert frames[20] == b"\xff" * 160  # off phase


def test_scenario_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(
            {"caller": {"form": "+1"}, "default_operator": {"outcome": "maybe"}, "bogus": 1}
        )
    text = str(info.value)
    assert "form" in text and "bogus" in text
    ok = scenario_from_dict({"caller": {"from": "+19"}, "operators": {"+2": {"outcome": "busy"}}})
    assert ok.caller.from_ == "+19" and ok.operator("+2").outcome == "busy"
    assert ok.operator("+3").outcome == "answer"


def test_twiml_parses_connect_stream_parameters_and_rejects_non_twiml() -> None:
    verbs = parse_twiml(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="es">x</Say>'
        '<Play loop="0">u</Play><Connect action="/a"><Stream url="wss://h/m" '
        'statusCallback="/s"><Parameter name="k" value="v"/></Stream></Connect></Response>'
    )
    assert verbs[0] == Say("x", "es") and verbs[1] == Play("u", 0)
    connect = verbs[2]
    assert isinstance(connect, Connect) and connect.action == "/a" and connect.stream is not None
    assert connect.stream.parameters == (("k", "v"),) and connect.stream.status_callback == "/s"
    with pytest.raises(TwimlError):
        parse_twiml("<html/>")


def test_phones_keep_no_audio_when_recording_is_off() -> None:
    """A soak runs 20 calls for an hour: 60 kB/s a call of recorded frames would not fit."""
    assert scenario_from_dict({}).record_audio is True
    assert scenario_from_dict({"record_audio": False}).record_audio is False
    with pytest.raises(ScenarioError, match="record_audio"):
        scenario_from_dict({"record_audio": "no"})
    frame = bytes([0xFF]) * 160
    quiet = Party("caller", recording=False)
    quiet.record_heard(frame)
    quiet.record_said(frame)
    assert (quiet.heard, quiet.said) == ([], [])
    kept = Party("caller")
    kept.record_heard(frame)
    kept.record_said(frame)
    assert (len(kept.heard), len(kept.said)) == (1, 1)
