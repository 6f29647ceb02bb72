"""Pure pieces: VAD, segmentation, tones, wire shapes, the demo script."""

from __future__ import annotations

import base64
import wave
import zlib
from typing import cast

import numpy as np
import pytest

from callbridge.sim.palabra import speech, wire
from callbridge.sim.palabra.script import DEFAULT_SCRIPT, DemoScript, ScriptError
from callbridge.sim.palabra.tones import CHUNK_BYTES, split_chunks, tone_for, tone_pcm
from callbridge.sim.palabra.vad import Closed, EnergyVad, Grew, Opened, Segmenter, dbfs_to_rms
from tests.sim_palabra.helpers import dominant_hz, silence, tone


def approx_s(seconds: float) -> float:
    """``pytest.approx`` where a float is expected: it compares equal within tolerance."""
    return cast("float", pytest.approx(seconds))


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")


class TestVad:
    def test_frames_are_20_ms_and_carry_over(self) -> None:
        vad = EnergyVad(24000, dbfs_to_rms(-40))
        first = vad.feed(_samples(tone(500, 0.03)))
        second = vad.feed(_samples(silence(0.03)))
        assert [round(t, 3) for t, _ in first + second] == [0.0, 0.02, 0.04]
        assert [v for _, v in first + second] == [True, True, False]

    def test_quiet_audio_is_unvoiced(self) -> None:
        vad = EnergyVad(16000, dbfs_to_rms(-40))
        frames = vad.feed(_samples(tone(500, 0.1, rate=16000, amplitude=0.005)))
        assert not any(v for _, v in frames)


class TestSegmenter:
    def _run(self, seg: Segmenter, pattern: str) -> list[object]:
        events: list[object] = []
        for i, mark in enumerate(pattern):
            events += seg.push(i * 0.1, 0.1, mark == "#")
        return events

    def test_utterance_opens_grows_and_closes_after_hangover(self) -> None:
        seg = Segmenter(hangover_s=0.3, min_speech_s=0.1, partial_interval_s=0.2)
        events = self._run(seg, "#####...")
        assert events == [
            Opened(1, 0.0, 0.1),
            Grew(1, 0.0, 0.2),
            Grew(1, 0.0, 0.4),
            Closed(1, 0.0, approx_s(0.5)),
        ]

    def test_short_pause_does_not_split_and_clicks_do_not_count(self) -> None:
        seg = Segmenter(hangover_s=0.3, min_speech_s=0.2, partial_interval_s=10)
        events = self._run(seg, "#....##.##....")
        assert [type(e).__name__ for e in events] == ["Opened", "Closed"]
        assert events[-1] == Closed(1, approx_s(0.5), approx_s(1.0))

    def test_flush_and_reset(self) -> None:
        seg = Segmenter(hangover_s=0.3, min_speech_s=0.1)
        self._run(seg, "##")
        assert seg.flush() == [Closed(1, 0.0, approx_s(0.2))]
        self._run(seg, "##")
        seg.reset()
        assert not seg.active
        assert seg.flush() == []


class TestTones:
    @pytest.mark.parametrize(
        ("language", "hz"), [("en", 2000), ("es-MX", 1300), ("ru", 1300), ("ja", 1100)]
    )
    def test_frequency_table(self, language: str, hz: float) -> None:
        assert tone_for(language) == hz
        assert abs(dominant_hz(tone_pcm(hz, 0.4)) - hz) < 5

    def test_fade_avoids_clicks(self) -> None:
        samples = _samples(tone_pcm(2000, 0.2))
        assert abs(int(samples[0])) < 100
        assert abs(int(samples[-1])) < 100

    def test_chunks_are_padded_to_9600_bytes(self) -> None:
        chunks = split_chunks(tone_pcm(1300, 0.45))
        assert [len(c) for c in chunks] == [CHUNK_BYTES] * 3
        assert chunks[-1][-100:] == bytes(100)


class TestWire:
    def test_output_audio_shape_and_zlib(self) -> None:
        data = wire.output_audio("abc", "es", b"\x01\x02", last_chunk=True, compress=True)
        assert data["translation_part_id"] == "0"
        assert data["chunk_generation_delta"] is None
        assert zlib.decompress(base64.b64decode(data["data"])) == b"\x01\x02"

    def test_double_encoded_frame(self) -> None:
        frame = wire.frame("warning", wire.warning("X", "y"), double_encode=True)
        assert (
            frame
            == '{"message_type":"warning","data":"{\\"code\\":\\"X\\",\\"message\\":\\"y\\"}"}'
        )

    def test_segment_words_span_the_segment(self) -> None:
        seg = wire.segment("one two", 1.0, 2.0, 1000.0)
        assert seg["start_timestamp"] == 1001.0
        assert seg["words"][-1] == {"word": "two", "start": 1.5, "end": 2.0}


class TestScript:
    def test_bundled_demo_script(self) -> None:
        script = DemoScript.load(DEFAULT_SCRIPT)
        assert (script.caller_language, script.operator_language) == ("en", "ru")
        assert len(script.turns) >= 6
        assert script.turn_for("en", 1) is script.turns[0]
        assert script.turn_for("ru", 1) is script.turns[1]
        assert script.turn_for("en-US", 2) is script.turns[2]
        assert script.turn_for("en", 99) is None
        assert script.turn_for("de", 1) is None
        for turn in script.turns:
            assert len(turn.translated_pcm) > 24000  # > 0.5 s at 24 kHz
            with wave.open(str(DEFAULT_SCRIPT.parent / f"{turn.speaker}_01.wav")) as source:
                assert (source.getframerate(), source.getnchannels(), source.getsampwidth()) == (
                    8000,
                    1,
                    2,
                )

    def test_assets_stay_small(self) -> None:
        total = sum(p.stat().st_size for p in DEFAULT_SCRIPT.parent.iterdir())
        assert total < 1_500_000

    def test_bad_script_is_a_clear_error(self, tmp_path: object) -> None:
        from pathlib import Path

        path = Path(str(tmp_path)) / "script.json"
        path.write_text('{"turns": [{"speaker": "caller", "source_text": "x"}]}')
        with pytest.raises(ScriptError, match="missing"):
            DemoScript.load(path)

    def test_texts_in_both_modes(self) -> None:
        script = DemoScript.load(DEFAULT_SCRIPT)
        turn = script.turns[0]
        partial = speech.source_text(turn, "en", 1, turn.source_duration_s / 2, final=False)
        assert turn.source_text.startswith(partial)
        assert len(partial) < len(turn.source_text)
        assert speech.source_text(None, "en", 3, 1.42, final=True) == "[sim en #3] speech 1.4s"
        assert (
            speech.translated_text(None, "en", "es", 3, 1.42)
            == "[sim en->es #3] translation of 1.4s"
        )
        # A target the turn was not translated into falls back to a tone.
        assert abs(dominant_hz(speech.translated_pcm(turn, "de", 0.5)) - 1500) < 5


@pytest.mark.parametrize("hangover_s", [0.3, 0.7])
def test_each_demo_line_is_one_utterance(hangover_s: float) -> None:
    """Script mode maps the k-th utterance to the k-th turn, so no line may split in two."""
    import orjson

    turns = orjson.loads(DEFAULT_SCRIPT.read_bytes())["turns"]
    for turn in turns:
        with wave.open(str(DEFAULT_SCRIPT.parent / turn["source_audio"])) as source:
            samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        vad, seg = EnergyVad(8000, dbfs_to_rms(-40)), Segmenter(hangover_s)
        events = []
        for start, voiced in vad.feed(np.concatenate([samples, np.zeros(8000, dtype=np.int16)])):
            events += seg.push(start, vad.frame_s, voiced)
        assert sum(isinstance(e, Closed) for e in events) == 1, turn["source_audio"]
