"""The reader and the outlet (``reader.py``, ``outlet.py``): frames into events, the full-queue
policy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from callbridge.palabra import (
    LanguageDetected,
    ServerError,
    ServerWarning,
    SpeechChunk,
    SpeechLost,
    Transcript,
)
from tests.palabra.fake_server import FakePalabra
from tests.palabra.helpers import (
    GUARD_S,
    make_config,
    open_link,
)


class TestEvents:
    async def test_transcripts_speech_warnings_errors(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_transcript("partial_transcription", "t1", "hel", "en")
                await conn.send_transcript("validated_transcription", "t1", "hello", "en")
                await conn.send_transcript("partial_translated_transcription", "t1", "ho", "es")
                await conn.send_transcript("translated_transcription", "t1", "hola", "es")
                await conn.send_speech("t1", "es", np.arange(4800, dtype=np.int16), last=False)
                await conn.send_speech("t1", "es", np.arange(4800, dtype=np.int16), last=True)
                await conn.send("warning", {"code": "VOICE_NOT_FOUND", "message": "using default"})
                await conn.send("error", {"code": "SOMETHING", "desc": "non-fatal", "param": None})
                events = [await link.events.receive() for _ in range(8)]
        kinds = [(e.kind, e.text, e.language) for e in events[:4] if isinstance(e, Transcript)]
        assert kinds == [
            ("partial", "hel", "en"),
            ("final", "hello", "en"),
            ("translation_partial", "ho", "es"),
            ("translation", "hola", "es"),
        ]
        chunks = [e for e in events if isinstance(e, SpeechChunk)]
        assert [c.last_chunk for c in chunks] == [False, True]
        assert chunks[0].language == "es" and chunks[0].transcription_id == "t1"
        assert np.array_equal(chunks[0].pcm, np.arange(4800, dtype=np.int16))
        assert events[6] == ServerWarning("VOICE_NOT_FOUND", "using default")
        assert events[7] == ServerError("SOMETHING", "non-fatal")

    async def test_noise_is_counted_never_fatal(self, autojump_clock: Any) -> None:
        """No message_type: ignored. Unknown types: counted per type. Bad JSON: an error event
        naming the size; the link carries on."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_raw("{}")
                await conn.send_raw('{"es": {"current_queue_level_ms": 320}}')
                await conn.send("pipeline_timings", {"timings": {}})
                await conn.send("pipeline_timings", {"timings": {}})
                await conn.send("tts_buffer_stats", {})
                await conn.send_raw("{not json")
                await conn.send_transcript("validated_transcription", "t2", "still alive", "en")
                first = await link.events.receive()
                second = await link.events.receive()
        assert first == ServerError("MALFORMED_MESSAGE", "invalid JSON (9 bytes)")
        assert isinstance(second, Transcript) and second.text == "still alive"
        assert link.stats.unknown_types == {"pipeline_timings": 2, "tts_buffer_stats": 1}
        assert link.stats.ignored_frames == 2
        assert link.stats.malformed == 1

    async def test_auto_source_language_travels_with_transcripts(self, autojump_clock: Any) -> None:
        from callbridge.config import LanguagesConfig

        fake = FakePalabra()
        languages = LanguagesConfig(caller="auto", operator="es", caller_detectable=["en", "de"])
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                open_link(fake, make_config(fake, languages=languages)) as link,
            ):
                transcription = fake.connections[0].tasks[0]["pipeline"]["transcription"]
                assert transcription["source_language"] == "auto"
                assert transcription["detectable_languages"] == ["en", "de"]
                await fake.connections[0].send_transcript(
                    "validated_transcription", "t", "hallo", "de"
                )
                detected = await link.events.receive()
                event = await link.events.receive()
        assert isinstance(event, Transcript) and event.language == "de"
        assert detected == LanguageDetected("de", "t", event.received_at)

    async def test_events_channel_ends_with_the_link(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running():
                async with open_link(fake, make_config(fake)) as link:
                    pass
                with pytest.raises(trio.EndOfChannel):
                    await link.events.receive()

    async def test_stuck_consumer_drops_and_counts(self, autojump_clock: Any) -> None:
        """Nobody reads events: transcripts are dropped at once, speech after waiting; both
        counted; the link stays alive (no reconnect, pings answered)."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                for i in range(300):
                    await conn.send_transcript("partial_transcription", f"t{i}", "x", "en")
                for _ in range(3):
                    await conn.send_speech("t", "es", np.zeros(4800, dtype=np.int16), last=False)
                await trio.sleep(30)
                stats = link.stats
        # 300 - 256 transcripts, and the SpeechLost that could not get in either.
        assert stats.events_dropped == 300 - 256 + 1
        assert stats.speech_dropped == 3  # the first after waiting, the rest as cut at once
        assert stats.speech_cut == 1
        assert stats.reconnects == 0


def chunk(value: int = 1) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.full(4800, value, dtype=np.int16)  # 200 ms, as Palabra sends


class TestSpeechParts:
    async def test_part_ids_travel_with_text_and_speech(self, autojump_clock: Any) -> None:
        """A number on transcripts, a string on audio: both arrive as the part number."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_transcript("translated_transcription", "t1", "uno,", "es", part=0)
                await conn.send_transcript("translated_transcription", "t1", "dos", "es", part=1)
                await conn.send_speech("t1", "es", chunk(), last=True, part=0)
                await conn.send_speech("t1", "es", chunk(), last=True, part=1)
                events = [await link.events.receive() for _ in range(4)]
        assert [(type(e).__name__, getattr(e, "translation_part_id", None)) for e in events] == [
            ("Transcript", 0),
            ("Transcript", 1),
            ("SpeechChunk", 0),
            ("SpeechChunk", 1),
        ]


class TestLostSpeech:
    async def test_a_chunk_lost_to_a_stuck_consumer_cuts_its_part(
        self, autojump_clock: Any
    ) -> None:
        """The consumer falls 2 s behind: the dropped chunk's part is cut (its later chunks
        dropped at once) and the consumer is told with SpeechLost; the next utterance passes."""
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                for i in range(256):  # the queue is full
                    await conn.send_transcript("partial_transcription", f"p{i}", "x", "en")
                await conn.send_speech("a", "es", chunk(1), last=False)  # waits 2 s, dropped
                await conn.send_speech("a", "es", chunk(2), last=False)
                await conn.send_speech("a", "es", chunk(3), last=True)
                await conn.send_speech("b", "es", chunk(4), last=True)
                await trio.sleep(3.0)  # SpeechLost is waiting for room
                for _ in range(256):
                    await link.events.receive()
                rest = [await link.events.receive() for _ in range(2)]
                stats = link.stats
        assert rest[0] == SpeechLost("a", 0, "the consumer fell behind")
        assert isinstance(rest[1], SpeechChunk) and rest[1].transcription_id == "b"
        assert stats.speech_dropped == 3
        assert stats.speech_cut == 1

    async def test_an_undecodable_chunk_cuts_its_part(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with fake.running(), open_link(fake, make_config(fake)) as link:
                conn = fake.connections[0]
                await conn.send_speech("a", "es", chunk(1), last=False)
                bad = {"transcription_id": "a", "translation_part_id": "0", "data": "!!"}
                await conn.send("output_audio_data", bad)
                await conn.send_speech("a", "es", chunk(3), last=True)
                await conn.send_speech("b", "es", chunk(4), last=True)
                events = [await link.events.receive() for _ in range(4)]
        first, error, lost, next_one = events
        assert isinstance(first, SpeechChunk) and first.transcription_id == "a"
        assert isinstance(error, ServerError) and error.code == "MALFORMED_MESSAGE"
        assert "not base64" in error.desc
        assert lost == SpeechLost("a", 0, "undecodable audio")
        assert isinstance(next_one, SpeechChunk) and next_one.transcription_id == "b"
        assert link.stats.speech_dropped == 1  # the chunk after the hole
