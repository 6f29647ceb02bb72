"""The ``set_task`` task of one translation direction, without I/O.

``TaskSettings.resolve(config, direction, caller_language=..., operator_language=...)`` gives the
effective per-direction settings (per-direction overrides applied, this call's languages in
place of ``[languages]``); ``task_data(settings)`` (or ``build_set_task(config, direction)``) the
``data`` object of ``set_task``, shaped as the Palabra protocol describes it
(https://docs.palabra.ai/docs/streaming_api/translation_settings_breakdown; the official SDK's
``task.py``: https://github.com/PalabraAI/palabra-ai-python).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import attrs

from callbridge.audio import PALABRA_RATE
from callbridge.config import Config, DirectionOverrides
from callbridge.roles import Direction, Role

__all__ = ["AUTO", "SAMPLE_RATE", "TaskSettings", "build_set_task", "task_data"]

_T = TypeVar("_T")

# Palabra's WebSocket audio, both ways: PCM s16le mono at 24 kHz (palabra-ai-python v2.0.2
# ``audio.py``: output "fixed by the server"; https://docs.palabra.ai).
SAMPLE_RATE: Final = PALABRA_RATE

# ``source_language`` value that asks Palabra to detect the language (https://docs.palabra.ai).
AUTO = "auto"
# The server's default list (palabra-ai-python v2.0.2 ``task.py``); partial translations are opt-in.
_BASE_MESSAGE_TYPES = (
    "partial_transcription",
    "validated_transcription",
    "translated_transcription",
)


@attrs.frozen
class TaskSettings:
    """Everything ``set_task`` needs for one direction, per-direction overrides applied."""

    source_language: str
    detectable_languages: tuple[str, ...]
    target_language: str
    speech: bool
    voice_id: str
    silence_threshold_s: float
    translate_partials: bool
    desired_queue_level_ms: int
    max_queue_level_ms: int
    auto_tempo: bool
    min_tempo: float
    max_tempo: float
    voice_cloning: bool = False
    voice_timbre_detection: bool = False
    high_timbre_voices: tuple[str, ...] = ()
    low_timbre_voices: tuple[str, ...] = ()

    @classmethod
    def resolve(
        cls,
        config: Config,
        direction: Direction,
        *,
        caller_language: str | None = None,
        operator_language: str | None = None,
    ) -> TaskSettings:
        """Source = the speaker's language (``auto`` keeps the speaker's detectable list); target =
        the listener's language, or the first of the listener's detectable languages when the
        listener is ``auto`` (a translation needs one concrete target).

        A party's language is ``languages.caller`` / ``languages.operator`` unless this call
        decided another (``caller_language``, ``operator_language``: e.g. a ``BridgePlan``'s)."""
        palabra = config.palabra
        over: DirectionOverrides = getattr(palabra, direction.value)
        chosen = {Role.CALLER: caller_language, Role.OPERATOR: operator_language}
        source, detectable = _side_language(config, direction.speaker, chosen)
        listener, listener_detectable = _side_language(config, direction.listener, chosen)
        target = listener_detectable[0] if listener == AUTO and listener_detectable else listener
        return cls(
            source_language=source,
            detectable_languages=detectable if source == AUTO else (),
            target_language=target,
            speech=config.media.mode(direction) != "captions",
            voice_id=_pick(over.voice_id, palabra.voice_id),
            silence_threshold_s=_pick(
                over.segment_confirmation_silence_threshold,
                palabra.segment_confirmation_silence_threshold,
            ),
            translate_partials=_pick(over.translate_partials, palabra.translate_partials),
            desired_queue_level_ms=_pick(
                over.desired_queue_level_ms, palabra.desired_queue_level_ms
            ),
            max_queue_level_ms=_pick(over.max_queue_level_ms, palabra.max_queue_level_ms),
            auto_tempo=_pick(over.auto_tempo, palabra.auto_tempo),
            min_tempo=palabra.min_tempo,
            max_tempo=palabra.max_tempo,
            voice_cloning=_pick(over.voice_cloning, palabra.voice_cloning),
            voice_timbre_detection=_pick(
                over.voice_timbre_detection, palabra.voice_timbre_detection
            ),
            high_timbre_voices=tuple(palabra.high_timbre_voices),
            low_timbre_voices=tuple(palabra.low_timbre_voices),
        )

    def with_languages(
        self, source: str, target: str, detectable: tuple[str, ...] = ()
    ) -> TaskSettings:
        """These settings for another language pair (a caller who switched mid-call, a detected
        language becoming the other direction's target). ``detectable`` applies when ``source``
        is ``auto``."""
        return attrs.evolve(
            self,
            source_language=source,
            detectable_languages=detectable if source == AUTO else (),
            target_language=target,
        )

    def speech_generation(self) -> dict[str, Any]:
        """``translations[].speech_generation`` (https://docs.palabra.ai, task breakdown):
        ``voice_id`` always (the voice
        used when cloning or timbre detection cannot decide), ``voice_cloning: true`` to speak in
        the speaker's own voice, ``voice_timbre_detection`` to pick a high or low voice by the
        speaker's timbre. Keys left at Palabra's defaults are not sent."""
        speech: dict[str, Any] = {"voice_id": self.voice_id}
        if self.voice_cloning:
            speech["voice_cloning"] = True
        if self.voice_timbre_detection:
            speech["voice_timbre_detection"] = {
                "enabled": True,
                "high_timbre_voices": list(self.high_timbre_voices),
                "low_timbre_voices": list(self.low_timbre_voices),
            }
        return speech

    def allowed_message_types(self) -> list[str]:
        types = list(_BASE_MESSAGE_TYPES)
        if self.translate_partials:
            types.append("partial_translated_transcription")
        return types


def _pick(override: _T | None, default: _T) -> _T:
    return default if override is None else override


def _side_language(
    config: Config, role: Role, chosen: dict[Role, str | None]
) -> tuple[str, tuple[str, ...]]:
    languages = config.languages
    if role is Role.CALLER:
        default, detectable = languages.caller, tuple(languages.caller_detectable)
    else:
        default, detectable = languages.operator, tuple(languages.operator_detectable)
    return chosen[role] or default, detectable


def build_set_task(config: Config, direction: Direction) -> dict[str, Any]:
    """The ``data`` of ``set_task`` for ``direction`` (https://docs.palabra.ai, task breakdown;
    palabra-ai-python v2.0.2 ``task.py``).

    ``output_stream`` is ``null`` in captions mode: the server then sends text only.
    ``translation_queue_configs`` sits inside ``pipeline`` as the current SDKs and the recommended
    preset place it (palabra-ai-javascript ``PipelineConfig.model.ts``, docs.palabra.ai
    recommended settings)."""
    return task_data(TaskSettings.resolve(config, direction))


def task_data(settings: TaskSettings) -> dict[str, Any]:
    transcription: dict[str, Any] = {
        "source_language": settings.source_language,
        "segment_confirmation_silence_threshold": settings.silence_threshold_s,
    }
    if settings.detectable_languages:
        transcription["detectable_languages"] = list(settings.detectable_languages)
    output: dict[str, Any] | None = None
    if settings.speech:
        output = {"content_type": "audio", "target": {"type": "ws", "format": "pcm_s16le"}}
    return {
        "input_stream": {
            "content_type": "audio",
            "source": {
                "type": "ws",
                "format": "pcm_s16le",
                "sample_rate": SAMPLE_RATE,
                "channels": 1,
            },
        },
        "output_stream": output,
        "pipeline": {
            "preprocessing": {},
            "transcription": transcription,
            "translations": [
                {
                    "target_language": settings.target_language,
                    "translate_partial_transcriptions": settings.translate_partials,
                    "speech_generation": settings.speech_generation(),
                }
            ],
            "translation_queue_configs": {
                "global": {
                    "desired_queue_level_ms": settings.desired_queue_level_ms,
                    "max_queue_level_ms": settings.max_queue_level_ms,
                    "auto_tempo": settings.auto_tempo,
                    "min_tempo": settings.min_tempo,
                    "max_tempo": settings.max_tempo,
                }
            },
            "allowed_message_types": settings.allowed_message_types(),
        },
    }
