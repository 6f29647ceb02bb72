"""What the fake recognizer hears and the fake translator says, in tone and script mode.

Tone mode texts are clearly marked placeholders: ``"[sim en #3] speech 1.4s"`` for the source and
``"[sim en->es #3] translation of 1.4s"`` for a translation; the translated speech is a tone at the
target language's frequency lasting about as long as the utterance. Script mode takes the texts
and the translated audio from the utterance's script turn; a target the turn was not translated
into, or an utterance past the end of the script, falls back to tone mode.
"""

from __future__ import annotations

import math

from callbridge.sim.palabra.script import ScriptTurn, base_language
from callbridge.sim.palabra.tones import tone_for, tone_pcm

__all__ = ["source_text", "translated_pcm", "translated_text", "tts_outputs"]

MIN_SPEECH_S = 0.2
_TTS_S_PER_CHAR = 0.06
_TTS_MIN_S, _TTS_MAX_S = 0.4, 8.0


def _prefix(text: str, fraction: float) -> str:
    words = text.split()
    count = max(1, math.ceil(len(words) * min(1.0, max(0.0, fraction))))
    return " ".join(words[:count])


def _fits(turn: ScriptTurn | None, target: str) -> bool:
    return turn is not None and base_language(turn.listener_language) == base_language(target)


def source_text(
    turn: ScriptTurn | None, language: str, number: int, speech_s: float, *, final: bool
) -> str:
    if turn is None:
        return f"[sim {language} #{number}] speech {speech_s:.1f}s"
    if final:
        return turn.source_text
    return _prefix(turn.source_text, speech_s / max(turn.source_duration_s, 0.1))


def translated_text(
    turn: ScriptTurn | None,
    source: str,
    target: str,
    number: int,
    speech_s: float,
    *,
    partial: bool = False,
) -> str:
    if turn is not None and _fits(turn, target):
        if partial:
            return _prefix(turn.translated_text, speech_s / max(turn.source_duration_s, 0.1))
        return turn.translated_text
    suffix = " (partial)" if partial else ""
    return f"[sim {source}->{target} #{number}] translation of {speech_s:.1f}s{suffix}"


def translated_pcm(turn: ScriptTurn | None, target: str, speech_s: float) -> bytes:
    if turn is not None and _fits(turn, target):
        return turn.translated_pcm
    return tone_pcm(tone_for(target), max(MIN_SPEECH_S, speech_s))


def tts_outputs(
    text: str, language: str, targets: list[str], *, translate: bool
) -> list[tuple[str, str, bytes]]:
    """(language, text, pcm) per output of a ``tts_task``."""
    duration = min(_TTS_MAX_S, max(_TTS_MIN_S, len(text) * _TTS_S_PER_CHAR))
    if not translate:
        return [(language, text, tone_pcm(tone_for(language), duration))]
    return [
        (target, f"[sim {language}->{target} tts] {text}", tone_pcm(tone_for(target), duration))
        for target in targets
    ]
