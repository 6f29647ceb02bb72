"""Transcript exports: JSON, plain text and WebVTT, all built from the stored call and utterances.

Times in the text and VTT forms are offsets from the call's start (``answered_at``, else
``received_at``), so a transcript reads the same whatever timezone opens it.

Transcript text comes from speech recognition and call fields from Twilio, so neither is trusted
to be one line: in the text and VTT forms every line break (``\r``, ``\n``, ``\v``, ``\f``, NEL,
U+2028/U+2029, the separators ``str.splitlines`` knows) and every other control character becomes a
space. A transcript line cannot then forge another ``[00:00:01] Operator`` line, and a cue cannot
end early and forge a timing line (WebVTT ends a cue at a blank line and treats CR, LF and CRLF as
line breaks: https://www.w3.org/TR/webvtt1/#file-structure).
"""

from __future__ import annotations

import unicodedata
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


def _one_line(value: object) -> str:
    """``value`` as text on one line: controls and line or paragraph separators become spaces."""
    text = str(value)
    if text.isprintable():  # the common case: nothing to replace
        return text
    return "".join(" " if _breaks_lines(ch) else ch for ch in text)


def _breaks_lines(ch: str) -> bool:
    # Cc: C0/C1 controls (CR, LF, VT, FF, NEL, NUL, ESC...); Zl/Zp: U+2028, U+2029.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


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
        lines.append(_one_line(_call_header(call)))
        lines.append("")
    for u in utterances:
        stamp = _clock(_start(u) - origin, millis=False)
        speaker = _one_line(str(u.get("speaker", "?")).capitalize())
        source = _one_line(u.get("source_language") or "?")
        lines.append(f"[{stamp}] {speaker} ({source}): {_one_line(u.get('source_text') or '')}")
        if u.get("translation") is not None:
            target = _one_line(u.get("target_language") or "?")
            lines.append(f"{' ' * (len(stamp) + 3)}-> ({target}): {_one_line(u['translation'])}")
    return "\n".join(lines) + "\n"


def _language(call: Mapping[str, Any], side: str) -> str:
    """``ru``, or ``ru by prefix`` when the call records how it was chosen (not for defaults)."""
    language = str(call.get(f"{side}_language"))
    source = call.get(f"{side}_language_source")
    if not source or source == "default":
        return language
    return f"{language} by {source}" if source != "operator_speaks" else f"{language}, untranslated"


def _call_header(call: Mapping[str, Any]) -> str:
    return (
        f"Call {call['id']}: caller ({_language(call, 'caller')}) <-> "
        f"operator ({_language(call, 'operator')}), status {call.get('status')}"
        + (f", ended: {call['end_reason']}" if call.get("end_reason") else "")
    )


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: these three must be character references.
    # "-->" cannot then appear either, since ">" is escaped. One line: see the module docstring.
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
