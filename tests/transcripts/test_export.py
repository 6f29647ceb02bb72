"""Exports: JSON, text and WebVTT from the same stored rows."""

from __future__ import annotations

import orjson

from callbridge.transcripts.events import utterance_wire
from callbridge.transcripts.export import export_json, export_text, export_vtt, render_export

CALL = {
    "id": "c1",
    "caller_language": "en",
    "operator_language": "es",
    "status": "ended",
    "received_at": 1000.0,
    "answered_at": 1010.0,
    "end_reason": "caller_hangup",
}
ROWS = [
    utterance_wire(
        {
            "utterance_id": "u1",
            "speaker": "caller",
            "source_language": "en",
            "source_text": "Hello <b>there</b> & welcome",
            "target_language": "es",
            "translation": "Hola",
            "first_seen_at": 1011.0,
            "speech_end_at": 1012.25,
            "translated_at": 1013.0,
            "played_at": 1014.5,
        }
    ),
    utterance_wire(
        {
            "utterance_id": "u2",
            "speaker": "operator",
            "source_language": "es",
            "source_text": "¿Cómo está?",
            "target_language": None,
            "translation": None,
            "first_seen_at": 3700.0,
            "speech_end_at": 3710.0,
            "translated_at": None,
            "played_at": None,
        }
    ),
]


def test_json_holds_the_call_and_every_row() -> None:
    data = orjson.loads(export_json(CALL, ROWS))
    assert data["call"] == CALL
    assert data["utterances"] == ROWS
    assert data["utterances"][0]["latency_ms"] == 750


def test_text_lists_speaker_language_and_offsets() -> None:
    text = export_text(CALL, ROWS)
    assert "[00:00:02] Caller (en): Hello <b>there</b> & welcome" in text
    assert "-> (es): Hola" in text
    assert "[00:45:00] Operator (es): ¿Cómo está?" in text
    assert "caller_hangup" in text.splitlines()[0]


def test_vtt_cues_are_timed_and_escaped() -> None:
    vtt = export_vtt(CALL, ROWS)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:02.250 --> 00:00:04.500\n")
    assert "<v Caller>Hello &lt;b&gt;there&lt;/b&gt; &amp; welcome" in vtt
    # No translation and no later timestamp: a default-length cue.
    assert "2\n00:45:00.000 --> 00:45:03.000\n<v Operator>¿Cómo está?" in vtt


def test_render_export_dispatches_by_format() -> None:
    found = {"call": CALL, "utterances": ROWS}
    assert render_export("txt", found) == export_text(CALL, ROWS).encode()
    assert render_export("vtt", found) == export_vtt(CALL, ROWS).encode()
    assert render_export("json", found) == export_json(CALL, ROWS)


FORGED = "ok\n[00:00:09] Operator (es): forged\r\n\n2\n00:00:01.000 --> 00:00:09.000\nforged\x0bcue\x0c\x1c\x85\u2028\u2029\x00end"


def forged_rows() -> list[dict[str, object]]:
    return [
        utterance_wire(
            {
                "utterance_id": "u1",
                "speaker": "caller\nOperator",
                "source_language": "en\n",
                "source_text": FORGED,
                "target_language": "es\r",
                "translation": FORGED,
                "first_seen_at": 1011.0,
                "speech_end_at": 1012.0,
                "translated_at": 1013.0,
                "played_at": 1014.0,
            }
        )
    ]


def test_line_breaks_in_text_cannot_forge_transcript_lines() -> None:
    call = {**CALL, "end_reason": "x\n[00:00:00] Caller (en): forged"}
    text = export_text(call, forged_rows())
    lines = text.splitlines()
    # A header, a blank line, one source line and one translation line: nothing more.
    assert len(lines) == 4, lines
    assert lines[2].startswith("[00:00:02] Caller operator (en ): ok [00:00:09] Operator")
    assert lines[3].lstrip().startswith("-> (es ): ok ")
    assert sum(line.startswith("[") for line in lines) == 1


def test_line_breaks_in_text_cannot_forge_vtt_cues() -> None:
    vtt = export_vtt(CALL, forged_rows())
    blocks = vtt.rstrip("\n").split("\n\n")
    assert len(blocks) == 2  # the header and exactly one cue
    cue = blocks[1].splitlines()
    assert cue[0] == "1" and cue[1] == "00:00:02.000 --> 00:00:04.000"
    assert len(cue) == 4  # id, timing, source, translation
    assert sum("-->" in line for line in vtt.splitlines()) == 1
    assert "\x00" not in vtt


def test_ordinary_unicode_text_is_kept_as_is() -> None:
    rows = [utterance_wire({**ROWS[1], "source_text": "Здравствуйте 👋🏽 — ça va\tbien"})]
    assert "Здравствуйте 👋🏽 — ça va bien" in export_text(CALL, rows)
