"""Transcript exports: JSON, plain text and WebVTT, all built from the stored call and utterances.

Times in the text and VTT forms are offsets from the call's start (``answered_at``, else
``received_at``), so a transcript reads the same whatever timezone opens it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

__all__ = ["EXPORT_FORMATS", "export_json", "export_text", "export_vtt", "render_export"]

EXPORT_FORMATS: Final = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
# A cue with no later timestamp to end it stays this long on screen.
_DEFAULT_CUE_S: Final = 3.0
_MIN_CUE_S: Final = 1.0


def _origin(call: Mapping[str, Any] | None, utterances: Sequence[Mapping[str, Any]]) -> float:
    if call is not None:
        for key in ("answered_at", "received_at"):
            if isinstance(call.get(key), int | float):
                return float(call[key])
    times = [float(u["first_seen_at"]) for u in utterances if u.get("first_seen_at") is not None]
    return min(times, default=0.0)


def _clock(seconds: float, *, millis: bool) -> str:
    seconds = max(seconds, 0.0)
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if millis:
        ms = round((seconds - whole) * 1000)
        if ms == 1000:  # rounding up carries into the seconds
            return _clock(whole + 1.0, millis=True)
        return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _start(utterance: Mapping[str, Any]) -> float:
    for key in ("speech_end_at", "translated_at", "first_seen_at"):
        if isinstance(utterance.get(key), int | float):
            return float(utterance[key])
    return 0.0


def export_json(call: Mapping[str, Any] | None, utterances: Sequence[Mapping[str, Any]]) -> bytes:
    return orjson.dumps({"call": call, "utterances": list(utterances)}, option=orjson.OPT_INDENT_2)


def export_text(call: Mapping[str, Any] | None, utterances: Sequence[Mapping[str, Any]]) -> str:
    origin = _origin(call, utterances)
    lines: list[str] = []
    if call is not None:
        lines.append(
            f"Call {call['id']}: caller ({_language(call, 'caller')}) <-> "
            f"operator ({_language(call, 'operator')}), status {call.get('status')}"
            + (f", ended: {call['end_reason']}" if call.get("end_reason") else "")
        )
        lines.append("")
    for u in utterances:
        stamp = _clock(_start(u) - origin, millis=False)
        speaker = str(u.get("speaker", "?")).capitalize()
        lines.append(
            f"[{stamp}] {speaker} ({u.get('source_language') or '?'}): {u.get('source_text') or ''}"
        )
        if u.get("translation") is not None:
            lines.append(
                f"{' ' * (len(stamp) + 3)}-> ({u.get('target_language') or '?'}): {u['translation']}"
            )
    return "\n".join(lines) + "\n"


def _language(call: Mapping[str, Any], side: str) -> str:
    """``ru``, or ``ru by prefix`` when the call records how it was chosen (not for defaults)."""
    language = str(call.get(f"{side}_language"))
    source = call.get(f"{side}_language_source")
    if not source or source == "default":
        return language
    return f"{language} by {source}" if source != "operator_speaks" else f"{language}, untranslated"


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: these three must be character references.
    # "-->" cannot then appear either, since ">" is escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cue_end(u: Mapping[str, Any], start: float) -> float:
    later = [
        float(u[k]) for k in ("played_at", "translated_at") if isinstance(u.get(k), int | float)
    ]
    end = max(later, default=start + _DEFAULT_CUE_S)
    return max(end, start + _MIN_CUE_S)


def export_vtt(call: Mapping[str, Any] | None, utterances: Sequence[Mapping[str, Any]]) -> str:
    origin = _origin(call, utterances)
    blocks = ["WEBVTT"]
    for index, u in enumerate(utterances, start=1):
        start = _start(u)
        end = _cue_end(u, start)
        speaker = _vtt_escape(str(u.get("speaker", "speaker")).capitalize())
        text = [f"<v {speaker}>{_vtt_escape(u.get('source_text') or '')}"]
        if u.get("translation") is not None:
            text.append(f"<v {speaker}>{_vtt_escape(u['translation'])}")
        timing = f"{_clock(start - origin, millis=True)} --> {_clock(end - origin, millis=True)}"
        blocks.append(f"{index}\n{timing}\n" + "\n".join(text))
    return "\n\n".join(blocks) + "\n"


def render_export(fmt: str, found: Mapping[str, Any]) -> bytes:
    """``found`` is ``TranscriptHub.get_call`` output; ``fmt`` one of ``EXPORT_FORMATS``."""
    call, utterances = found.get("call"), found.get("utterances", [])
    if fmt == "json":
        return export_json(call, utterances)
    if fmt == "txt":
        return export_text(call, utterances).encode()
    if fmt == "vtt":
        return export_vtt(call, utterances).encode()
    msg = f"unknown export format {fmt!r}"
    raise ValueError(msg)
