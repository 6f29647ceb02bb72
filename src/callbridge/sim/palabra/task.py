"""``set_task`` validation and the parsed task the simulator runs.

Errors mimic the live service's ``VALIDATION_ERROR``: ``desc`` is a pydantic (v1) style repr,
``"ValidationError(model='SetTaskRequestMessage', errors=[{'loc': (...), 'msg': ..., 'type': ...,
'ctx': {...}}])"`` (as recorded from the live service
by public clients), so a client that shows ``desc`` to a human works
the same against the simulator. Only the rules the simulator can check are enforced: input source
type/format/sample rate/channels, output target format, source language, at least one target,
``segment_confirmation_silence_threshold >= 0.3``, ``max_queue_level_ms > desired_queue_level_ms``
and known ``allowed_message_types``.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = [
    "DEFAULT_ALLOWED_TYPES",
    "FieldError",
    "TargetConfig",
    "TaskConfig",
    "parse_task",
    "validation_desc",
]

DEFAULT_ALLOWED_TYPES = frozenset(
    {"translated_transcription", "partial_transcription", "validated_transcription"}
)
KNOWN_MESSAGE_TYPES = frozenset(
    {
        *DEFAULT_ALLOWED_TYPES,
        "partial_translated_transcription",
        "pipeline_timings",
        "tts_buffer_stats",
        "tts_text",
        "transcription",
    }
)
INPUT_FORMATS = ("opus", "pcm_s16le", "wav")
OUTPUT_FORMATS = ("pcm_s16le", "zlib_pcm_s16le")
TRANSPORTS = ("webrtc", "ws")
DEFAULT_SILENCE_S = 0.7
MIN_SILENCE_S = 0.3
DEFAULT_DESIRED_QUEUE_MS = 8000
DEFAULT_MAX_QUEUE_MS = 24000

Loc = tuple[str | int, ...]


@attrs.frozen
class FieldError:
    loc: Loc
    msg: str
    type: str
    ctx: dict[str, Any] | None = None

    def as_pydantic(self) -> dict[str, Any]:
        item: dict[str, Any] = {"loc": self.loc, "msg": self.msg, "type": self.type}
        if self.ctx is not None:
            item["ctx"] = self.ctx
        return item


def validation_desc(errors: list[FieldError]) -> str:
    items = [e.as_pydantic() for e in errors]
    return f"ValidationError(model='SetTaskRequestMessage', errors={items!r})"


@attrs.frozen
class TargetConfig:
    language: str
    translate_partials: bool = False


@attrs.frozen
class TaskConfig:
    raw: dict[str, Any]
    source_language: str  # "auto": the simulator detects it (SimOptions.detect_language)
    targets: tuple[TargetConfig, ...]
    input_format: str | None  # None: input_stream is null (a TTS-only task)
    sample_rate: int
    channels: int
    output_audio: bool
    output_zlib: bool
    silence_threshold_s: float
    max_queue_level_ms: int
    allowed_types: frozenset[str]
    detectable_languages: tuple[str, ...] = ()  # transcription.detectable_languages

    @property
    def target_languages(self) -> list[str]:
        return [t.language for t in self.targets]


def parse_task(data: Any) -> TaskConfig | list[FieldError]:
    """A runnable task, or every validation error found."""
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        return [FieldError((), "value is not a valid dict", "type_error.dict")]
    source = _input_source(data, errors)
    output_audio, output_zlib = _output_target(data, errors)
    pipeline = data.get("pipeline")
    if not isinstance(pipeline, dict):
        errors.append(_missing(("pipeline",)) if pipeline is None else _not_dict(("pipeline",)))
        pipeline = {}
    source_language, silence = _transcription(pipeline, errors)
    targets = _translations(pipeline, errors)
    max_queue = _queue_configs(data, pipeline, errors)
    allowed = _allowed_types(pipeline, errors)
    if errors:
        return errors
    fmt, rate, channels = source
    return TaskConfig(
        raw=data,
        source_language=source_language,
        targets=targets,
        input_format=fmt,
        sample_rate=rate,
        channels=channels,
        output_audio=output_audio,
        output_zlib=output_zlib,
        silence_threshold_s=silence,
        max_queue_level_ms=max_queue,
        allowed_types=allowed,
        detectable_languages=_detectable(pipeline),
    )


def _detectable(pipeline: dict[str, Any]) -> tuple[str, ...]:
    transcription = pipeline.get("transcription")
    listed = transcription.get("detectable_languages") if isinstance(transcription, dict) else None
    if not isinstance(listed, list):
        return ()
    return tuple(str(code).lower() for code in listed if isinstance(code, str) and code)


def _missing(loc: Loc) -> FieldError:
    return FieldError(loc, "field required", "value_error.missing")


def _not_dict(loc: Loc) -> FieldError:
    return FieldError(loc, "value is not a valid dict", "type_error.dict")


def _enum(loc: Loc, value: Any, permitted: tuple[str, ...]) -> FieldError | None:
    if value in permitted:
        return None
    listed = ", ".join(repr(p) for p in permitted)
    return FieldError(
        loc,
        f"value is not a valid enumeration member; permitted: {listed}",
        "type_error.enum",
        {"enum_values": list(permitted)},
    )


def _int_range(loc: Loc, value: Any, low: int, high: int) -> FieldError | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return FieldError(loc, "value is not a valid integer", "type_error.integer")
    if value < low:
        return FieldError(
            loc,
            f"ensure this value is greater than or equal to {low}",
            "value_error.number.not_ge",
            {"limit_value": low},
        )
    if value > high:
        return FieldError(
            loc,
            f"ensure this value is less than or equal to {high}",
            "value_error.number.not_le",
            {"limit_value": high},
        )
    return None


def _add(errors: list[FieldError], error: FieldError | None) -> None:
    if error is not None:
        errors.append(error)


def _input_source(data: dict[str, Any], errors: list[FieldError]) -> tuple[str | None, int, int]:
    if "input_stream" not in data:
        errors.append(_missing(("input_stream",)))
        return None, 24000, 1
    stream = data["input_stream"]
    if stream is None:
        return None, 24000, 1
    if not isinstance(stream, dict) or not isinstance(stream.get("source"), dict):
        errors.append(_missing(("input_stream", "source")))
        return None, 24000, 1
    source: dict[str, Any] = stream["source"]
    loc: Loc = ("input_stream", "source")
    _add(errors, _enum((*loc, "type"), source.get("type"), TRANSPORTS))
    if source.get("type") == "webrtc":
        # The simulator only speaks the WebSocket transport.
        errors.append(
            FieldError((*loc, "type"), "webrtc is not supported by the simulator", "value_error")
        )
        return None, 24000, 1
    fmt = source.get("format", "pcm_s16le")
    rate = source.get("sample_rate", 24000)
    channels = source.get("channels", 1)
    _add(errors, _enum((*loc, "format"), fmt, INPUT_FORMATS))
    _add(errors, _int_range((*loc, "sample_rate"), rate, 16000, 48000))
    _add(errors, _int_range((*loc, "channels"), channels, 1, 2))
    return (
        str(fmt),
        rate if isinstance(rate, int) else 24000,
        channels if isinstance(channels, int) else 1,
    )


def _output_target(data: dict[str, Any], errors: list[FieldError]) -> tuple[bool, bool]:
    stream = data.get("output_stream")
    if stream is None:
        return False, False  # "output_stream": null -> text only, no audio
    if not isinstance(stream, dict) or not isinstance(stream.get("target"), dict):
        errors.append(_missing(("output_stream", "target")))
        return False, False
    target: dict[str, Any] = stream["target"]
    loc: Loc = ("output_stream", "target")
    _add(errors, _enum((*loc, "type"), target.get("type"), TRANSPORTS))
    if target.get("type") == "webrtc":
        errors.append(
            FieldError((*loc, "type"), "webrtc is not supported by the simulator", "value_error")
        )
    fmt = target.get("format", "pcm_s16le")
    _add(errors, _enum((*loc, "format"), fmt, OUTPUT_FORMATS))
    return True, fmt == "zlib_pcm_s16le"


def _transcription(pipeline: dict[str, Any], errors: list[FieldError]) -> tuple[str, float]:
    loc: Loc = ("pipeline", "transcription")
    transcription = pipeline.get("transcription")
    if not isinstance(transcription, dict):
        errors.append(_missing(loc) if transcription is None else _not_dict(loc))
        return "", DEFAULT_SILENCE_S
    language = transcription.get("source_language")
    if not isinstance(language, str) or not language:
        errors.append(_missing((*loc, "source_language")))
        language = ""
    silence = transcription.get("segment_confirmation_silence_threshold", DEFAULT_SILENCE_S)
    silence_loc = (*loc, "segment_confirmation_silence_threshold")
    if isinstance(silence, bool) or not isinstance(silence, int | float):
        errors.append(FieldError(silence_loc, "value is not a valid float", "type_error.float"))
        silence = DEFAULT_SILENCE_S
    elif silence < MIN_SILENCE_S:
        errors.append(
            FieldError(
                silence_loc,
                f"ensure this value is greater than or equal to {MIN_SILENCE_S}",
                "value_error.number.not_ge",
                {"limit_value": MIN_SILENCE_S},
            )
        )
    return language, float(silence)


def _translations(pipeline: dict[str, Any], errors: list[FieldError]) -> tuple[TargetConfig, ...]:
    loc: Loc = ("pipeline", "translations")
    translations = pipeline.get("translations")
    if not isinstance(translations, list):
        errors.append(
            _missing(loc)
            if translations is None
            else FieldError(loc, "value is not a valid list", "type_error.list")
        )
        return ()
    if not translations:
        errors.append(
            FieldError(
                loc,
                "ensure this value has at least 1 items",
                "value_error.list.min_items",
                {"limit_value": 1},
            )
        )
    targets = []
    for i, item in enumerate(translations):
        language = item.get("target_language") if isinstance(item, dict) else None
        if not isinstance(language, str) or not language:
            errors.append(_missing((*loc, i, "target_language")))
            continue
        partials = bool(item.get("translate_partial_transcriptions", False))
        targets.append(TargetConfig(language, partials))
    return tuple(targets)


def _queue_configs(data: dict[str, Any], pipeline: dict[str, Any], errors: list[FieldError]) -> int:
    """Checks ``translation_queue_configs`` wherever it is (inside ``pipeline`` or top level)."""
    max_queue = DEFAULT_MAX_QUEUE_MS
    for base in (("pipeline",), ()):
        holder = pipeline if base else data
        configs = holder.get("translation_queue_configs")
        if not isinstance(configs, dict):
            continue
        for key, config in configs.items():
            if not isinstance(config, dict):
                continue
            desired = config.get("desired_queue_level_ms", DEFAULT_DESIRED_QUEUE_MS)
            maximum = config.get("max_queue_level_ms", DEFAULT_MAX_QUEUE_MS)
            if isinstance(desired, int | float) and isinstance(maximum, int | float):
                if maximum <= desired:
                    errors.append(
                        FieldError(
                            (*base, "translation_queue_configs", key, "__root__"),
                            "`max_queue_level_ms` must be greater than `desired_queue_level_ms`",
                            "value_error",
                        )
                    )
                max_queue = int(maximum)
    return max_queue


def _allowed_types(pipeline: dict[str, Any], errors: list[FieldError]) -> frozenset[str]:
    loc: Loc = ("pipeline", "allowed_message_types")
    allowed = pipeline.get("allowed_message_types")
    if allowed is None:
        return DEFAULT_ALLOWED_TYPES
    if not isinstance(allowed, list):
        errors.append(FieldError(loc, "value is not a valid list", "type_error.list"))
        return DEFAULT_ALLOWED_TYPES
    permitted = tuple(sorted(KNOWN_MESSAGE_TYPES))
    for i, name in enumerate(allowed):
        _add(errors, _enum((*loc, i), name, permitted))
    return frozenset(str(name) for name in allowed)
