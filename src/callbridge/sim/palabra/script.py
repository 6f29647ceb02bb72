"""Script mode: the shared demo conversation (``sim/assets/demo/script.json``).

The k-th utterance the VAD finds on a connection whose task's source language is L maps to the
k-th turn whose speaker speaks L (caller turns speak ``caller_language``, operator turns
``operator_language``). The turn supplies the source text, the translated text and the translated
audio (24 kHz mono 16-bit WAV, loaded once at start-up).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import orjson

__all__ = ["DEFAULT_SCRIPT", "DemoScript", "ScriptError", "ScriptTurn", "base_language"]

DEFAULT_SCRIPT = Path(__file__).resolve().parent.parent / "assets" / "demo" / "script.json"
_OUTPUT_RATE = 24000


class ScriptError(ValueError):
    """The script file is missing, malformed, or names unusable audio."""


def base_language(code: str) -> str:
    return code.lower().replace("_", "-").split("-")[0]


@attrs.frozen
class ScriptTurn:
    index: int  # position in the script, from 0
    speaker: str
    language: str
    listener_language: str
    source_text: str
    translated_text: str
    source_duration_s: float
    translated_pcm: bytes = attrs.field(repr=False)


@attrs.frozen
class DemoScript:
    caller_language: str
    operator_language: str
    turns: tuple[ScriptTurn, ...]

    @classmethod
    def load(cls, path: Path) -> DemoScript:
        try:
            raw = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            msg = f"cannot read script {path}: {exc}"
            raise ScriptError(msg) from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
            msg = f"{path}: expected an object with a 'turns' list"
            raise ScriptError(msg)
        caller = str(raw.get("caller_language", "en"))
        operator = str(raw.get("operator_language", "es"))
        turns = tuple(
            _turn(path.parent, i, item, caller, operator) for i, item in enumerate(raw["turns"])
        )
        return cls(caller, operator, turns)

    def turn_for(self, source_language: str, number: int) -> ScriptTurn | None:
        """The ``number``-th (from 1) turn spoken in ``source_language``, if the script has it."""
        spoken = [
            t for t in self.turns if base_language(t.language) == base_language(source_language)
        ]
        return spoken[number - 1] if 0 < number <= len(spoken) else None


def _turn(folder: Path, index: int, item: Any, caller: str, operator: str) -> ScriptTurn:
    if not isinstance(item, dict) or item.get("speaker") not in ("caller", "operator"):
        msg = f"turn {index}: expected an object with speaker 'caller' or 'operator'"
        raise ScriptError(msg)
    speaker = str(item["speaker"])
    language, listener = (caller, operator) if speaker == "caller" else (operator, caller)
    try:
        source_text = str(item["source_text"])
        translated_text = str(item["translated_text"])
        source_s = _wav_duration(folder / str(item["source_audio"]))
        pcm = _read_translated(folder / str(item["translated_audio"]))
    except KeyError as exc:
        msg = f"turn {index}: missing {exc}"
        raise ScriptError(msg) from exc
    return ScriptTurn(
        index, speaker, language, listener, source_text, translated_text, source_s, pcm
    )


def _wav_duration(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, wave.Error) as exc:
        msg = f"cannot read {path}: {exc}"
        raise ScriptError(msg) from exc


def _read_translated(path: Path) -> bytes:
    """PCM s16le 24 kHz mono; other rates/channel counts are converted (linear, good enough)."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                msg = f"{path}: expected 16-bit PCM"
                raise ScriptError(msg)
            rate, channels = wav.getframerate(), wav.getnchannels()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    except (OSError, wave.Error) as exc:
        msg = f"cannot read {path}: {exc}"
        raise ScriptError(msg) from exc
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    if rate != _OUTPUT_RATE and samples.size:
        count = round(samples.size * _OUTPUT_RATE / rate)
        positions = np.linspace(0, samples.size - 1, count)
        samples = np.interp(positions, np.arange(samples.size), samples).astype("<i2")
    return samples.astype("<i2").tobytes()
