"""Tone mode end to end: speech in, partial/validated/translated transcripts and tone audio out."""

from __future__ import annotations

import base64

import trio

from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import dominant_hz, open_client, silence, task, tone


async def test_tone_mode_utterance_round_trip(start_sim: StartSim) -> None:
    """One utterance yields partials, one validated, one translated and 9600-byte tone chunks."""
    sim = await start_sim()
    with trio.fail_after(10):
        async with open_client(sim) as client:
            status = await client.ready(task("en", "es", silence=0.3))
            assert status["data"] == {"command": "set_task", "event": "started", "task_status": "running"}
            await client.stream(tone(500, 0.8) + silence(0.5))
            translated = await client.until("translated_transcription")
            chunks = []
            while True:
                audio = await client.until("output_audio_data")
                chunks.append(audio["data"])
                if audio["data"]["last_chunk"]:
                    break
    partials = client.of_type("partial_transcription")
    validated = client.of_type("validated_transcription")
    assert len(partials) >= 2
    assert len(validated) == 1
    tid = validated[0]["data"]["transcription"]["transcription_id"]
    assert len(tid) == 16
    assert {p["data"]["transcription"]["transcription_id"] for p in partials} == {tid}
    assert validated[0]["data"]["transcription"]["text"].startswith("[sim en #1] speech 0.")
    tr = translated["data"]["transcription"]
    assert tr["transcription_id"] == tid
    assert tr["translation_part_id"] == 0
    assert tr["language"] == "es"
    assert tr["text"].startswith("[sim en->es #1] translation")
    seg = tr["segments"][0]
    assert set(seg) >= {"text", "start", "end", "start_timestamp", "end_timestamp", "words"}
    assert all(c["translation_part_id"] == "0" and c["transcription_id"] == tid for c in chunks)
    assert [c["last_chunk"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    pcm = [base64.b64decode(c["data"]) for c in chunks]
    assert all(len(p) == 9600 for p in pcm)
    assert 3 <= len(pcm) <= 6  # about the 0.8 s utterance
    assert abs(dominant_hz(b"".join(pcm)) - 1300) < 10
