"""Wire shapes without I/O: the task we send and every kind of frame we parse."""

from __future__ import annotations

import base64
from typing import Any

import attrs
import numpy as np
import orjson
import pytest

from callbridge.config import (
    Config,
    DirectionOverrides,
    LanguagesConfig,
    MediaConfig,
    PalabraConfig,
)
from callbridge.palabra import (
    LanguageDetected,
    ServerError,
    ServerWarning,
    SpeechChunk,
    TaskSettings,
    Transcript,
    build_set_task,
)
from callbridge.palabra.protocol import (
    CurrentTask,
    EndOfStream,
    Ignored,
    Malformed,
    TaskStatus,
    Unknown,
    detected_language,
    encode_end_task,
    encode_input_audio,
    parse,
)
from callbridge.roles import Direction

C2O = Direction.CALLER_TO_OPERATOR


def frame(message_type: str, data: object, *, double: bool = False) -> str:
    payload = orjson.dumps(data).decode() if double else data
    return orjson.dumps({"message_type": message_type, "data": payload}).decode()


class TestSetTask:
    def test_every_setting_reaches_the_task(self) -> None:
        config = Config(
            palabra=PalabraConfig(
                voice_id="v1",
                segment_confirmation_silence_threshold=0.9,
                desired_queue_level_ms=5000,
                max_queue_level_ms=20000,
                auto_tempo=False,
                min_tempo=1.1,
                max_tempo=1.4,
            )
        )
        task = build_set_task(config, C2O)
        assert task["input_stream"]["source"] == {
            "type": "ws",
            "format": "pcm_s16le",
            "sample_rate": 24000,
            "channels": 1,
        }
        assert task["output_stream"] == {
            "content_type": "audio",
            "target": {"type": "ws", "format": "pcm_s16le"},
        }
        pipeline = task["pipeline"]
        assert pipeline["transcription"] == {
            "source_language": "en",
            "segment_confirmation_silence_threshold": 0.9,
        }
        assert pipeline["translations"] == [
            {
                "target_language": "es",
                "translate_partial_transcriptions": False,
                "speech_generation": {"voice_id": "v1"},
            }
        ]
        assert pipeline["translation_queue_configs"] == {
            "global": {
                "desired_queue_level_ms": 5000,
                "max_queue_level_ms": 20000,
                "auto_tempo": False,
                "min_tempo": 1.1,
                "max_tempo": 1.4,
            }
        }
        assert pipeline["allowed_message_types"] == [
            "partial_transcription",
            "validated_transcription",
            "translated_transcription",
        ]

    def test_direction_overrides_apply_to_their_direction_only(self) -> None:
        over = DirectionOverrides(
            segment_confirmation_silence_threshold=1.5,
            translate_partials=True,
            desired_queue_level_ms=3000,
            max_queue_level_ms=9000,
            auto_tempo=False,
        )
        config = Config(palabra=PalabraConfig(operator_to_caller=over))
        o2c = build_set_task(config, Direction.OPERATOR_TO_CALLER)["pipeline"]
        c2o = build_set_task(config, C2O)["pipeline"]
        assert o2c["transcription"]["segment_confirmation_silence_threshold"] == 1.5
        assert o2c["translations"][0]["translate_partial_transcriptions"] is True
        assert o2c["allowed_message_types"][-1] == "partial_translated_transcription"
        assert o2c["translation_queue_configs"]["global"]["max_queue_level_ms"] == 9000
        assert c2o["transcription"]["segment_confirmation_silence_threshold"] == 0.7
        assert c2o["translation_queue_configs"]["global"]["desired_queue_level_ms"] == 8000

    def test_auto_languages(self) -> None:
        languages = LanguagesConfig(
            caller="auto",
            operator="auto",
            caller_detectable=["en", "de"],
            operator_detectable=["es", "pt"],
        )
        config = Config(languages=languages)
        transcription = build_set_task(config, C2O)["pipeline"]["transcription"]
        assert transcription["source_language"] == "auto"
        assert transcription["detectable_languages"] == ["en", "de"]
        assert build_set_task(config, C2O)["pipeline"]["translations"][0]["target_language"] == "es"

    def test_captions_mode_has_no_output_stream(self) -> None:
        config = Config(media=MediaConfig(operator_to_caller="captions"))
        assert build_set_task(config, Direction.OPERATOR_TO_CALLER)["output_stream"] is None
        assert build_set_task(config, C2O)["output_stream"] is not None


class TestEncode:
    def test_input_audio_is_base64_pcm_s16le(self) -> None:
        pcm = np.array([1, -2, 300], dtype=np.int16)
        message = orjson.loads(encode_input_audio(pcm))
        assert message["message_type"] == "input_audio_data"
        assert base64.b64decode(message["data"]["data"]) == pcm.astype("<i2").tobytes()

    def test_end_task(self) -> None:
        assert orjson.loads(encode_end_task()) == {"message_type": "end_task", "data": {}}


class TestParse:
    @pytest.mark.parametrize("double", [False, True])
    @pytest.mark.parametrize(
        ("message_type", "kind"),
        [
            ("partial_transcription", "partial"),
            ("validated_transcription", "final"),
            ("partial_translated_transcription", "translation_partial"),
            ("translated_transcription", "translation"),
        ],
    )
    def test_transcripts(self, message_type: str, kind: str, double: bool) -> None:
        data = {"transcription": {"transcription_id": "ab12", "language": "de", "text": "hallo"}}
        event = parse(frame(message_type, data, double=double), received_at=5.0)
        assert event == Transcript(kind, "ab12", "hallo", "de", 5.0)  # type: ignore[arg-type]

    def test_transcript_language_defaults_from_the_task(self) -> None:
        data = {"transcription": {"transcription_id": "x", "text": "t"}}
        source = parse(frame("validated_transcription", data), received_at=0, source_language="en")
        target = parse(frame("translated_transcription", data), received_at=0, target_language="es")
        assert isinstance(source, Transcript) and source.language == "en"
        assert isinstance(target, Transcript) and target.language == "es"

    def test_speech(self) -> None:
        pcm = np.arange(-5, 5, dtype=np.int16)
        data = {
            "transcription_id": "t",
            "translation_part_id": "0",
            "language": "es",
            "last_chunk": True,
            "data": base64.b64encode(pcm.tobytes()).decode(),
        }
        event = parse(frame("output_audio_data", data, double=True), received_at=1.0)
        assert isinstance(event, SpeechChunk)
        assert np.array_equal(event.pcm, pcm) and event.pcm.dtype == np.int16
        assert (event.transcription_id, event.language, event.last_chunk) == ("t", "es", True)

    def test_translation_part_ids(self) -> None:
        """A number on transcripts, a string on audio (as observed live); absent means 0."""
        pcm = base64.b64encode(np.zeros(4, np.int16).tobytes()).decode()
        text = {"transcription": {"transcription_id": "t", "text": "b", "translation_part_id": 2}}
        audio = {"transcription_id": "t", "translation_part_id": "2", "data": pcm}
        plain = {"transcription_id": "t", "data": pcm}
        transcript = parse(frame("translated_transcription", text), received_at=0)
        speech = parse(frame("output_audio_data", audio), received_at=0)
        unnumbered = parse(frame("output_audio_data", plain), received_at=0)
        assert isinstance(transcript, Transcript) and transcript.translation_part_id == 2
        assert isinstance(speech, SpeechChunk) and speech.translation_part_id == 2
        assert isinstance(unnumbered, SpeechChunk) and unnumbered.translation_part_id == 0

    def test_undecodable_speech_still_names_its_utterance(self) -> None:
        data = {"transcription_id": "t", "translation_part_id": "1", "data": "AAA"}
        raw = frame("output_audio_data", data)
        assert parse(raw, received_at=0) == Malformed(
            len(raw), "output_audio_data: audio payload is not base64", "t", 1
        )
        bad_part = frame("output_audio_data", {**data, "translation_part_id": "x"})
        malformed = parse(bad_part, received_at=0)
        assert isinstance(malformed, Malformed) and "translation_part_id" in malformed.reason

    def test_control_messages(self) -> None:
        ack = {"command": "set_task", "event": "started", "task_status": "running"}
        assert parse(frame("task_status", ack), received_at=0) == TaskStatus(
            "set_task", "started", "running"
        )
        assert parse(
            frame("current_task", {"task_status": "running"}), received_at=0
        ) == CurrentTask("running")
        assert parse(frame("end_of_stream", {}), received_at=0) == EndOfStream()
        assert parse(frame("eos", {}), received_at=0) == EndOfStream()

    def test_warnings_and_errors(self) -> None:
        warning = {"code": "AUDIO_STREAM_TOO_FAST", "message": "slow down"}
        assert parse(frame("warning", warning), received_at=0) == ServerWarning(
            "AUDIO_STREAM_TOO_FAST", "slow down"
        )
        error = {"code": "NOT_FOUND", "desc": "No active task found", "param": None}
        assert parse(frame("error", error), received_at=0) == ServerError(
            "NOT_FOUND", "No active task found"
        )
        listed = parse(
            frame("error", {"code": "VALIDATION_ERROR", "desc": [{"msg": "bad"}]}), received_at=0
        )
        assert listed == ServerError("VALIDATION_ERROR", '[{"msg":"bad"}]')
        assert parse(frame("error", {"description": "x"}), received_at=0) == ServerError(
            "UNKNOWN_ERROR", "x"
        )

    def test_frames_without_message_type_are_ignored(self) -> None:
        assert parse("{}", received_at=0) == Ignored()
        assert parse('{"es": {"current_queue_level_ms": 1}}', received_at=0) == Ignored()
        assert parse("[1, 2]", received_at=0) == Ignored()

    def test_unknown_type(self) -> None:
        assert parse(frame("pipeline_timings", {}), received_at=0) == Unknown("pipeline_timings")

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("{oops", "invalid JSON"),
            ('{"message_type": "warning", "data": "{nope"}', "data is a string but not JSON"),
            ('{"message_type": "warning", "data": [1]}', "data is not an object"),
            ('{"message_type": "validated_transcription", "data": {}}', "no transcription object"),
            (
                '{"message_type": "output_audio_data", "data": {"data": "AAA"}}',
                "audio payload is not base64",
            ),
            (
                '{"message_type": "output_audio_data", "data": {"data": "AAAA"}}',
                "odd number of PCM bytes",
            ),
        ],
    )
    def test_malformed(self, raw: str, reason: str) -> None:
        result = parse(raw, received_at=0)
        assert isinstance(result, Malformed)
        assert result.size == len(raw)
        assert reason in result.reason
        assert result.as_error().code == "MALFORMED_MESSAGE"


class TestCallLanguagesAndVoices:
    def test_call_languages_replace_the_configured_pair(self) -> None:
        config = Config()
        c2o = build_set_task_for(config, C2O, caller_language="ru", operator_language="de")
        o2c = build_set_task_for(
            config, Direction.OPERATOR_TO_CALLER, caller_language="ru", operator_language="de"
        )
        assert c2o["pipeline"]["transcription"]["source_language"] == "ru"
        assert c2o["pipeline"]["translations"][0]["target_language"] == "de"
        assert o2c["pipeline"]["transcription"]["source_language"] == "de"
        assert o2c["pipeline"]["translations"][0]["target_language"] == "ru"

    def test_auto_caller_keeps_the_detectable_list(self) -> None:
        config = Config(languages=LanguagesConfig(caller_detectable=["en", "ru"]))
        task = build_set_task_for(config, C2O, caller_language="auto", operator_language="es")
        assert task["pipeline"]["transcription"]["detectable_languages"] == ["en", "ru"]
        back = build_set_task_for(
            config, Direction.OPERATOR_TO_CALLER, caller_language="auto", operator_language="es"
        )
        assert back["pipeline"]["translations"][0]["target_language"] == "en"

    def test_voice_options_per_direction(self) -> None:
        """Cloning for the caller's voice, timbre detection for the operator's, as
        Palabra's task schema spells them (https://docs.palabra.ai)."""
        config = Config(
            palabra=PalabraConfig(
                high_timbre_voices=["hi_1", "hi_2"],
                low_timbre_voices=["lo_1"],
                caller_to_operator=DirectionOverrides(voice_cloning=True),
                operator_to_caller=DirectionOverrides(voice_timbre_detection=True, voice_id="v2"),
            )
        )
        c2o = build_set_task(config, C2O)["pipeline"]["translations"][0]
        o2c = build_set_task(config, Direction.OPERATOR_TO_CALLER)["pipeline"]["translations"][0]
        assert c2o["speech_generation"] == {"voice_id": "default_low", "voice_cloning": True}
        assert o2c["speech_generation"] == {
            "voice_id": "v2",
            "voice_timbre_detection": {
                "enabled": True,
                "high_timbre_voices": ["hi_1", "hi_2"],
                "low_timbre_voices": ["lo_1"],
            },
        }

    def test_direction_may_turn_off_what_palabra_section_turns_on(self) -> None:
        config = Config(
            palabra=PalabraConfig(
                voice_cloning=True,
                operator_to_caller=DirectionOverrides(voice_cloning=False),
            )
        )
        o2c = build_set_task(config, Direction.OPERATOR_TO_CALLER)["pipeline"]["translations"][0]
        assert o2c["speech_generation"] == {"voice_id": "default_low"}

    def test_with_languages_changes_only_the_pair(self) -> None:
        settings = TaskSettings.resolve(Config(), C2O)
        switched = settings.with_languages("ru", "es")
        assert (switched.source_language, switched.target_language) == ("ru", "es")
        assert switched.detectable_languages == ()
        assert attrs.evolve(switched, source_language="en") == settings
        auto = settings.with_languages("auto", "es", ("en", "ru"))
        assert auto.detectable_languages == ("en", "ru")


class TestDetectedLanguage:
    def settings(self, source: str) -> TaskSettings:
        return TaskSettings.resolve(Config(languages=LanguagesConfig(caller=source)), C2O)

    @pytest.mark.parametrize("kind", ["partial", "final"])
    def test_source_transcript_of_an_auto_task_tells_the_language(self, kind: str) -> None:
        transcript = Transcript(kind, "t1", "привет", "RU", 5.0)  # type: ignore[arg-type]
        assert detected_language(self.settings("auto"), transcript) == LanguageDetected(
            "ru", "t1", 5.0
        )

    @pytest.mark.parametrize(
        ("source", "kind", "language"),
        [
            ("en", "partial", "en"),
            ("auto", "translation", "es"),
            ("auto", "partial_translation", "es"),
            ("auto", "final", ""),
            ("auto", "final", "auto"),
        ],
    )
    def test_nothing_detected(self, source: str, kind: str, language: str) -> None:
        transcript = Transcript(kind, "t1", "x", language, 5.0)  # type: ignore[arg-type]
        assert detected_language(self.settings(source), transcript) is None

    def test_a_frame_without_language_in_an_auto_task_is_no_detection(self) -> None:
        body = {"transcription": {"transcription_id": "t", "text": "x"}}
        item = parse(frame("partial_transcription", body), received_at=1.0, source_language="auto")
        assert isinstance(item, Transcript)
        assert detected_language(self.settings("auto"), item) is None


def build_set_task_for(config: Config, direction: Direction, **languages: str) -> dict[str, Any]:
    from callbridge.palabra.protocol import task_data

    return task_data(TaskSettings.resolve(config, direction, **languages))
