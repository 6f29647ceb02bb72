"""Tone mode end to end: speech in, partial/validated/translated transcripts and tone audio out."""

from __future__ import annotations

import base64

import orjson
import trio

from callbridge.sim.palabra.script import DEFAULT_SCRIPT
from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import Client, dominant_hz, open_client, silence, task, tone


async def test_tone_mode_utterance_round_trip(start_sim: StartSim) -> None:
    """One utterance yields partials, one validated, one translated and 9600-byte tone chunks."""
    sim = await start_sim()
    with trio.fail_after(10):
        async with open_client(sim) as client:
            status = await client.ready(task("en", "es", silence=0.3))
            assert status["data"] == {
                "command": "set_task",
                "event": "started",
                "task_status": "running",
            }
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


async def _collect(client: Client, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while True:
            await client.receive()


async def _audio_of(client: Client, tid: str) -> list[dict[str, object]]:
    chunks = []
    while True:
        audio = await client.until("output_audio_data")
        if audio["data"]["transcription_id"] == tid:
            chunks.append(audio["data"])
            if audio["data"]["last_chunk"]:
                return chunks


async def test_script_mode_maps_utterances_to_turns(start_sim: StartSim) -> None:
    """The k-th utterance in language L is the k-th script turn spoken in L."""
    sim = await start_sim(script_path=DEFAULT_SCRIPT)
    script = sim.state.script
    assert script is not None
    caller_turns = [t for t in script.turns if t.speaker == "caller"]
    operator_turns = [t for t in script.turns if t.speaker == "operator"]
    with trio.fail_after(10):
        async with open_client(sim) as caller:
            await caller.ready(task("en", "ru"))
            await caller.stream((tone(500, 0.3) + silence(0.4)) * 2)
            first = await caller.until("translated_transcription")
            second = await caller.until("translated_transcription")
            # Jobs run in order: all of the first utterance's speech came before this.
            first_id = first["data"]["transcription"]["transcription_id"]
            chunks = [
                m["data"]
                for m in caller.of_type("output_audio_data")
                if m["data"]["transcription_id"] == first_id
            ]
            assert chunks[-1]["last_chunk"] is True
        async with open_client(sim) as operator:
            await operator.ready(task("ru", "en"))
            await operator.stream(tone(800, 0.3) + silence(0.4))
            answer = await operator.until("translated_transcription")
    validated = [
        m["data"]["transcription"]["text"] for m in caller.of_type("validated_transcription")
    ]
    assert validated == [caller_turns[0].source_text, caller_turns[1].source_text]
    assert first["data"]["transcription"]["text"] == caller_turns[0].translated_text
    assert first["data"]["transcription"]["language"] == "ru"
    assert second["data"]["transcription"]["text"] == caller_turns[1].translated_text
    pcm = b"".join(base64.b64decode(str(c["data"])) for c in chunks)
    assert pcm[: len(caller_turns[0].translated_pcm)] == caller_turns[0].translated_pcm
    assert answer["data"]["transcription"]["text"] == operator_turns[0].translated_text
    assert [u.script_turn for u in sim.state.connections[0].utterances] == [0, 2]


async def test_text_only_task_with_filtered_message_types(start_sim: StartSim) -> None:
    """output_stream null -> no audio; allowed_message_types drops partial/validated."""
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task(output=False, allowed=["translated_transcription"]))
            await client.stream(tone(500, 0.3) + silence(0.4))
            await client.until("translated_transcription")
            await _collect(client, 0.3)
    types = {m.get("message_type") for m in client.seen}
    assert "output_audio_data" not in types
    assert "partial_transcription" not in types
    assert "validated_transcription" not in types
    # Queue-status frames have no message_type: clients must ignore them.
    assert {} in client.seen


async def test_partial_translations_and_double_encoding(start_sim: StartSim) -> None:
    sim = await start_sim(double_encode=True)
    allowed = [
        "partial_transcription",
        "validated_transcription",
        "translated_transcription",
        "partial_translated_transcription",
    ]
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.send("set_task", task(partials=True, allowed=allowed))
            raw: dict[str, object] = {}
            while "message_type" not in raw:  # skip queue-status frames
                raw = orjson.loads(await client.receive_raw())
            assert raw["message_type"] == "task_status"
            assert isinstance(raw["data"], str)  # double-encoded
            await client.stream(tone(500, 0.5) + silence(0.4))
            await client.until("translated_transcription")
    partial = client.of_type("partial_translated_transcription")
    assert partial
    assert partial[0]["data"]["transcription"]["language"] == "es"
    assert partial[0]["data"]["transcription"]["translation_part_id"] == 0
    assert partial[0]["data"]["transcription"]["text"].endswith("(partial)")


async def test_interrupt_stops_the_speech_being_sent(start_sim: StartSim) -> None:
    sim = await start_sim(output_speedup=1.0, output_burst_chunks=1)
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            await client.stream(tone(500, 0.7) + silence(0.4))
            first = await client.until("output_audio_data")
            await client.send("interrupt_task", {"languages": ["global"], "pause_task": False})
            status = await client.until("task_status")
            await _collect(client, 0.4)
    assert status["data"] == {
        "command": "interrupt_task",
        "event": "interrupted",
        "task_status": "running",
    }
    chunks = client.of_type("output_audio_data")
    assert first["data"]["last_chunk"] is False
    assert len(chunks) <= 2  # at most the one already in flight
    assert not any(c["data"]["last_chunk"] for c in chunks)
    assert sim.state.connections[0].utterances[0].interrupted is True


async def test_tts_task_is_queued_then_spoken(start_sim: StartSim) -> None:
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task("en", "es"))
            await client.send("tts_task", {"text": "Hola, un momento por favor", "language": "es"})
            queued = await client.until("task_status")
            tid = queued["data"]["transcription_id"]
            translated = await client.until("translated_transcription")
            chunks = await _audio_of(client, tid)
            await client.send("tts_task", {"text": "x", "language": "de"})
            error = await client.until("error")
    assert queued["data"]["command"] == "tts_task"
    assert queued["data"]["event"] == "queued"
    assert translated["data"]["transcription"]["transcription_id"] == tid
    assert translated["data"]["transcription"]["text"] == "Hola, un momento por favor"
    pcm = b"".join(base64.b64decode(str(c["data"])) for c in chunks)
    assert abs(dominant_hz(pcm) - 1300) < 10
    assert error["data"]["code"] == "VALIDATION_ERROR"
