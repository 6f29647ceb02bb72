"""The translation side of one utterance: translated transcripts, then speech in bursts.

Per job: wait ``translation_delay_s``, send ``translated_transcription`` for every target (and
``pipeline_timings`` if allowed), wait ``tts_delay_s``, then send each target's speech as 200 ms
``output_audio_data`` chunks, ``output_burst_chunks`` at a time, bursts spaced so the audio goes
out ``output_speedup`` times faster than real time; the last chunk has ``last_chunk: true``.
``interrupt_task`` marks languages dropped: their remaining messages are not sent.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import attrs
import trio

from callbridge.sim.palabra import wire
from callbridge.sim.palabra.options import SimOptions
from callbridge.sim.palabra.report import UtteranceReport
from callbridge.sim.palabra.task import TaskConfig
from callbridge.sim.palabra.tones import CHUNK_S, split_chunks

__all__ = ["OutputJob", "OutputSink", "TargetOutput", "run_job"]


class OutputSink(Protocol):
    task: TaskConfig | None

    @property
    def options(self) -> SimOptions: ...

    def epoch_or_now(self) -> float: ...

    async def send(self, message_type: str, data: dict[str, Any]) -> bool: ...

    def set_queue_level(self, language: str, level_ms: int | None) -> None: ...

    async def drop_mid_speech(self, chunks_sent: int) -> bool: ...


@attrs.define
class TargetOutput:
    language: str
    text: str
    pcm: bytes | None  # None: text only (output_stream is null)


@attrs.define
class OutputJob:
    utterance: UtteranceReport
    outputs: list[TargetOutput]
    start_s: float  # audio span of the utterance, for segments
    end_s: float
    dropped: set[str] = attrs.Factory(set)

    def is_dropped(self, language: str) -> bool:
        return "global" in self.dropped or language in self.dropped


async def run_job(sink: OutputSink, job: OutputJob) -> None:
    options = sink.options
    started = time.time()
    await trio.sleep(options.translation_delay_s)
    for output in job.outputs:
        if not job.is_dropped(output.language):
            await _send_translation(sink, job, output)
    await _send_timings(sink, job, started)
    if not any(o.pcm is not None for o in job.outputs):
        return
    await trio.sleep(options.tts_delay_s)
    for output in job.outputs:
        if output.pcm is not None and not job.is_dropped(output.language):
            await _send_speech(sink, job, output.language, output.pcm)


async def _send_translation(sink: OutputSink, job: OutputJob, output: TargetOutput) -> None:
    segment = wire.segment(output.text, job.start_s, job.end_s, sink.epoch_or_now())
    body = wire.transcription(
        job.utterance.transcription_id,
        output.language,
        output.text,
        [segment],
        translation_part_id=0,
    )
    await sink.send("translated_transcription", body)
    job.utterance.translated_texts[output.language] = output.text
    if job.utterance.translation_sent_at is None:
        job.utterance.translation_sent_at = time.time()


async def _send_timings(sink: OutputSink, job: OutputJob, started: float) -> None:
    elapsed = round(time.time() - started, 3)
    timings = {"translated_transcription": elapsed, "total": elapsed}
    await sink.send(
        "pipeline_timings", wire.pipeline_timings(job.utterance.transcription_id, timings)
    )


async def _send_speech(sink: OutputSink, job: OutputJob, language: str, pcm: bytes) -> None:
    options, utterance = sink.options, job.utterance
    compress = sink.task is not None and sink.task.output_zlib
    chunks = split_chunks(pcm)
    burst = max(1, options.output_burst_chunks)
    pause_s = burst * CHUNK_S / max(options.output_speedup, 0.01)
    try:
        for i, chunk in enumerate(chunks):
            if job.is_dropped(language):
                return
            sink.set_queue_level(language, round((len(chunks) - i) * CHUNK_S * 1000))
            last = i == len(chunks) - 1
            data = wire.output_audio(
                utterance.transcription_id, language, chunk, last_chunk=last, compress=compress
            )
            if not await sink.send("output_audio_data", data):
                return
            now = time.time()
            if utterance.first_audio_chunk_at is None:
                utterance.first_audio_chunk_at = now
            utterance.last_audio_chunk_at = now
            utterance.audio_chunks += 1
            utterance.audio_s = round(utterance.audio_s + CHUNK_S, 3)
            if not last and await sink.drop_mid_speech(i + 1):
                return
            if not last and (i + 1) % burst == 0:
                await trio.sleep(pause_s)
    finally:
        sink.set_queue_level(language, None)
