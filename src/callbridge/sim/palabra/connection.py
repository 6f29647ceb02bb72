"""One simulated S2S WebSocket connection: the task lifecycle of the current Palabra service.

Phases: ``waiting`` (no task) -> ``starting`` (``set_task`` accepted, pipeline warming up for
``ready_delay_s``) -> ``running`` <-> ``paused`` -> ``ending`` (after ``end_task``) -> closed.

Resource handling: ``run`` owns a nursery with the reader, a watchdog (idle timeout, stall
warnings, wall-clock end of utterances), the queue-status ticker and the output worker. Whoever
ends the connection (client close, ``end_task``, idle timeout, a dropped socket) cancels that
nursery; nothing outlives ``run``.

Error handling: bad client input becomes an ``error`` message or is counted in the report; a
closed socket ends the connection quietly. Nothing here raises into the server.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

import attrs
import numpy as np
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from callbridge.log import get_logger
from callbridge.sim.palabra import speech, wire
from callbridge.sim.palabra.faults import Faults
from callbridge.sim.palabra.options import SimOptions
from callbridge.sim.palabra.output import OutputJob, TargetOutput, run_job
from callbridge.sim.palabra.pacing import AudioTimeline, PacingMonitor
from callbridge.sim.palabra.report import ConnectionReport, Notice, UtteranceReport
from callbridge.sim.palabra.script import ScriptTurn
from callbridge.sim.palabra.state import SimState
from callbridge.sim.palabra.task import (
    DEFAULT_ALLOWED_TYPES,
    FieldError,
    TaskConfig,
    parse_task,
    validation_desc,
)
from callbridge.sim.palabra.vad import (
    Closed,
    EnergyVad,
    Opened,
    Segmenter,
    SegmentEvent,
    dbfs_to_rms,
)

__all__ = ["PalabraConnection"]

log = get_logger("callbridge.sim.palabra")

# Message types that allowed_message_types filters; everything else is always delivered.
_FILTERED = frozenset(
    {
        "partial_transcription",
        "validated_transcription",
        "translated_transcription",
        "partial_translated_transcription",
        "pipeline_timings",
        "tts_buffer_stats",
        "tts_text",
    }
)
_WATCHDOG_TICK_S = 0.05
_CLOSE_TIMEOUT_S = 2.0
_TTS_MAX_CHARS = 2048
_JOB_QUEUE = 256


@attrs.define
class PalabraConnection:
    state: SimState
    ws: WebSocketConnection
    raw_stream: trio.abc.Stream  # the TCP stream under the WebSocket, for abrupt drops
    report: ConnectionReport
    phase: str = "waiting"
    task: TaskConfig | None = None
    _nursery: trio.Nursery | None = None
    _idle_since: float = 0.0
    _last_audio_at: float | None = None  # trio clock
    _last_chunk_s: float = 0.0
    _audio_s: float = 0.0  # processed audio, seconds since the stream started
    _epoch: float | None = None  # wall time of audio time 0
    _vad: EnergyVad | None = None
    _segmenter: Segmenter | None = None
    _open: UtteranceReport | None = None
    _pacing: PacingMonitor | None = None
    _timeline: AudioTimeline = attrs.Factory(AudioTimeline)
    _pending: list[OutputJob] = attrs.Factory(list)
    _queue_levels: dict[str, int] = attrs.Factory(dict)
    _jobs_send: trio.MemorySendChannel[OutputJob] | None = None
    _drained: trio.Event = attrs.Factory(trio.Event)
    _closing: bool = False

    @property
    def options(self) -> SimOptions:
        return self.state.options

    # ---- lifetime -------------------------------------------------------------------------

    async def run(self) -> None:
        jobs_send, jobs_recv = trio.open_memory_channel[OutputJob](_JOB_QUEUE)
        self._jobs_send = jobs_send
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._output_worker, jobs_recv)
            nursery.start_soon(self._watchdog)
            nursery.start_soon(self._queue_status_loop)
            await self._read_loop()
            nursery.cancel_scope.cancel()
        if self.report.closed_at is None:
            self.report.closed_at = time.time()
        log.info(
            "sim_connection_closed",
            connection=self.report.id,
            closed_by=self.report.closed_by,
            close_code=self.report.close_code,
        )

    def _stop(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    @property
    def faults(self) -> Faults:
        """The simulator's faults, or those aimed at this connection alone."""
        return self.state.faults_for(self.report.id)

    def _stalled(self) -> bool:
        return bool(self.faults.stall_output)

    async def _close(self, code: int, reason: str | None = None) -> None:
        if self._stalled():
            await trio.sleep_forever()  # a hung server neither talks nor closes
        if self._closing:
            return
        self._closing = True  # from now on other tasks send nothing
        if self.report.closed_by is None:
            self.report.closed_by = "server"
            self.report.close_code = code
            self.report.closed_at = time.time()
        # Shielded: cancelling mid-handshake would close TCP with the client's close reply
        # unread, i.e. a reset, and the client would see 1006 instead of our code.
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT_S):
            await self.ws.aclose(code, reason)
        self._stop()

    async def _drop(self, after_s: float, *, mid_speech: bool = False) -> None:
        await trio.sleep(after_s)
        self._closing = True
        self.report.closed_by = "dropped"
        self.report.closed_at = time.time()
        log.info("sim_connection_dropped", connection=self.report.id, mid_speech=mid_speech)
        await trio.aclose_forcefully(self.raw_stream)
        self._stop()

    async def drop_mid_speech(self, chunks_sent: int) -> bool:
        """The ``drop_mid_speech`` fault: drop now, ``chunks_sent`` chunks into a sentence."""
        if not self.faults.take_drop_mid_speech(chunks_sent):
            return False
        await self._drop(0.0, mid_speech=True)
        return True

    # ---- sending --------------------------------------------------------------------------

    def _allowed(self, message_type: str) -> bool:
        if message_type not in _FILTERED:
            return True
        allowed = self.task.allowed_types if self.task is not None else DEFAULT_ALLOWED_TYPES
        return message_type in allowed

    async def send(self, message_type: str, data: dict[str, Any]) -> bool:
        """Send one message (if allowed); False when the connection is gone."""
        if not self._allowed(message_type):
            return True
        now = time.time()
        if message_type == "warning":
            self.report.warnings.append(Notice(str(data["code"]), now))
        elif message_type == "error":
            self.report.errors.append(Notice(str(data["code"]), now))
        elif message_type == "task_status":
            self.report.task_status_sent.append(f"{data['command']}:{data['event']}")
        return await self._send_text(
            wire.frame(message_type, data, double_encode=self.options.double_encode)
        )

    async def _send_text(self, text: str) -> bool:
        if self._closing:
            return False
        if self._stalled():
            self.report.suppressed_messages += 1
            return True
        try:
            await self.ws.send_message(text)
        except ConnectionClosed:
            self._stop()
            return False
        return True

    async def _error(self, code: str, desc: str) -> None:
        await self.send("error", wire.error(code, desc))

    def _status(self) -> str:
        return "paused" if self.phase == "paused" else "running"

    async def _ack(self, command: str, event: str, transcription_id: str | None = None) -> None:
        if not self.options.legacy_readiness:
            await self.send(
                "task_status", wire.task_status(command, event, self._status(), transcription_id)
            )

    # ---- reading --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed as exc:
                if self.report.closed_by is None:
                    self.report.closed_by = "client"
                    self.report.close_code = (
                        int(exc.reason.code) if exc.reason is not None else None
                    )
                    self.report.closed_at = time.time()
                return
            await self._dispatch(raw)

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
            data = message.get("data") if isinstance(message, dict) else None
            if isinstance(data, str):  # a client may double-encode too
                data = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.report.count_command("<invalid>")
            return
        message_type = message.get("message_type") if isinstance(message, dict) else None
        if not isinstance(message_type, str):
            self.report.count_command("<invalid>")
            return
        self.report.count_command(message_type)
        handler = self._handlers().get(message_type)
        if handler is None:
            log.info("sim_unknown_message", connection=self.report.id, message_type=message_type)
            return
        await handler(message_type, data if isinstance(data, dict) else {})

    def _handlers(self) -> dict[str, Any]:
        return {
            "input_audio_data": self._on_audio,
            "set_task": self._on_set_task,
            "get_task": self._on_get_task,
            "pause_task": self._on_pause,
            "interrupt_task": self._on_interrupt,
            "flush_task": self._on_interrupt,
            "tts_task": self._on_tts,
            "end_task": self._on_end,
        }

    # ---- task lifecycle -------------------------------------------------------------------

    async def _on_set_task(self, _: str, data: dict[str, Any]) -> None:
        self.report.set_task_count += 1
        if self.phase == "ending":
            return
        if self.faults.take_reject_task():
            self.report.task_rejected += 1
            fault = FieldError(("__root__",), "task rejected (simulated fault)", "value_error")
            await self._error("VALIDATION_ERROR", validation_desc([fault]))
            return
        parsed = parse_task(data)
        if isinstance(parsed, list):
            self.report.task_rejected += 1
            log.info("sim_task_rejected", connection=self.report.id, errors=len(parsed))
            await self._error("VALIDATION_ERROR", validation_desc(parsed))
            return
        self.report.source_language = parsed.source_language
        self.report.target_languages = parsed.target_languages
        previous, self.task = self.task, parsed
        if self.phase == "waiting":
            self.phase = "starting"
            self._record_task(parsed, "started")
            assert self._nursery is not None
            self._nursery.start_soon(self._become_ready)
        elif self.phase == "running":
            unchanged = previous is not None and previous.raw == parsed.raw
            self._record_task(parsed, "unchanged" if unchanged else "updated")
            self._apply_task(parsed)
            await self._ack("set_task", "unchanged" if unchanged else "updated")
        elif self.phase == "paused":
            self.phase = "running"
            self._record_task(parsed, "resumed")
            self._apply_task(parsed)
            self._restart_clocks()
            await self._ack("set_task", "resumed")

    def _record_task(self, task: TaskConfig, event: str) -> None:
        self.report.tasks.append(
            {
                "at": time.time(),
                "event": event,
                "source_language": task.source_language,
                "detectable_languages": list(task.detectable_languages),
                "target_languages": task.target_languages,
                "task": task.raw,
            }
        )
        log.info(
            "sim_task_set",
            connection=self.report.id,
            set_task_event=event,
            source=task.source_language,
            targets=task.target_languages,
        )

    def _spoken_language(self) -> str:
        """The language the speaker is heard in: the task's source, or for ``auto`` the one
        the simulator "detects" (``SimOptions.detect_language`` if the task allows it)."""
        assert self.task is not None
        task = self.task
        if task.source_language != "auto":
            return task.source_language
        wanted = self.options.detect_language.lower()
        allowed = task.detectable_languages
        return wanted if not allowed or wanted in allowed else allowed[0]

    async def _become_ready(self) -> None:
        await trio.sleep(self.options.ready_delay_s)
        if self.phase != "starting" or self.task is None:
            return
        self.phase = "running"
        self.report.ready_at = time.time()
        self._apply_task(self.task)
        self._restart_clocks()
        log.info(
            "sim_task_running",
            connection=self.report.id,
            source=self.task.source_language,
            targets=self.task.target_languages,
        )
        await self._ack("set_task", "started")
        drop_after = self.faults.take_drop()
        if drop_after is not None and self._nursery is not None:
            self._nursery.start_soon(self._drop, drop_after)

    def _apply_task(self, task: TaskConfig) -> None:
        options = self.options
        if self._vad is None or self._vad.sample_rate != task.sample_rate:
            self._vad = EnergyVad(
                task.sample_rate, dbfs_to_rms(options.vad_threshold_dbfs), start_s=self._audio_s
            )
        if self._segmenter is None:
            self._segmenter = Segmenter(
                task.silence_threshold_s, options.min_speech_s, options.partial_interval_s
            )
        self._segmenter.hangover_s = task.silence_threshold_s

    def _restart_clocks(self) -> None:
        self._idle_since = trio.current_time()
        if self._pacing is None:
            options = self.options
            self._pacing = PacingMonitor(
                options.too_fast_lead_s, options.too_slow_lag_s, options.stall_after_s
            )
        self._pacing.reset()

    async def _on_get_task(self, _: str, data: dict[str, Any]) -> None:
        if self.task is None or self.phase not in ("running", "paused"):
            await self._error("NOT_FOUND", "No active task found")
            return
        await self.send("current_task", wire.current_task(self.task.raw, self._status()))

    async def _on_pause(self, command: str, data: dict[str, Any]) -> None:
        if self.phase not in ("running", "paused"):
            await self._error("NOT_FOUND", "No active task found")
            return
        await self._pause()
        await self._ack(command, "paused")

    async def _pause(self) -> None:
        if self.phase == "running":
            await self._handle_events(self._segmenter.flush() if self._segmenter else [])
        self.phase = "paused"
        if self._pacing is not None:
            self._pacing.reset()

    async def _on_interrupt(self, command: str, data: dict[str, Any]) -> None:
        if self.phase not in ("running", "paused"):
            await self._error("NOT_FOUND", "No active task found")
            return
        languages = data.get("languages") or ["global"]
        dropped = {str(lang) for lang in languages} if isinstance(languages, list) else {"global"}
        if self._segmenter is not None and ("global" in dropped or self._all_targets(dropped)):
            self._segmenter.reset()
            if self._open is not None:
                self._open.interrupted = True
                self._open = None
        for job in self._pending:
            job.dropped |= dropped
            job.utterance.interrupted = True
        if data.get("pause_task") is True:
            await self._pause()
        await self._ack(command, "interrupted")

    def _all_targets(self, languages: set[str]) -> bool:
        return self.task is not None and set(self.task.target_languages) <= languages

    async def _on_tts(self, command: str, data: dict[str, Any]) -> None:
        task = self.task
        if task is None or self.phase not in ("running", "paused"):
            await self._error("NOT_FOUND", "No active task found")
            return
        text, language = data.get("text"), data.get("language")
        translate = bool(data.get("translate_text", False))
        problem = _tts_problem(text, language, translate, task.target_languages)
        if problem is not None:
            await self._error("VALIDATION_ERROR", problem)
            return
        assert isinstance(text, str) and isinstance(language, str)
        tid = secrets.token_hex(8)
        utterance = UtteranceReport(
            len(self.report.utterances) + 1, tid, language, None, kind="tts", source_text=text
        )
        self.report.utterances.append(utterance)
        await self._ack(command, "queued", tid)
        outputs = [
            TargetOutput(lang, out_text, pcm if task.output_audio else None)
            for lang, out_text, pcm in speech.tts_outputs(
                text, language, task.target_languages, translate=translate
            )
        ]
        await self._enqueue(OutputJob(utterance, outputs, self._audio_s, self._audio_s))

    async def _on_end(self, command: str, data: dict[str, Any]) -> None:
        if self.phase == "ending":
            return
        self.phase = "ending"
        self.report.end_task_at = time.time()
        self.report.end_task_force = data.get("force") is True
        log.info("sim_end_task", connection=self.report.id, force=self.report.end_task_force)
        if data.get("force") is True:
            await self._close(1000)
            return
        assert self._nursery is not None
        self._nursery.start_soon(self._finish)

    async def _finish(self) -> None:
        """Deliver the tail, then ``end_of_stream``, then close 1000."""
        await self._handle_events(self._segmenter.flush() if self._segmenter else [])
        if self._jobs_send is not None:
            await self._jobs_send.aclose()
        await self._drained.wait()
        if await self.send("end_of_stream", {}):
            self.report.eos_sent_at = time.time()
        await self._close(1000)

    # ---- audio in -------------------------------------------------------------------------

    async def _on_audio(self, _: str, data: dict[str, Any]) -> None:
        task = self.task
        if self.phase != "running" or task is None or task.input_format is None:
            self.report.ignored_audio_chunks += 1
            return
        try:
            payload = base64.b64decode(str(data.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            await self._error("VALIDATION_ERROR", "input_audio_data.data is not valid base64")
            return
        samples = _decode_pcm(payload, task)
        now, wall = trio.current_time(), time.time()
        duration = samples.size / task.sample_rate if samples is not None else 0.0
        self._account_audio(now, wall, duration)
        if self._pacing is not None:
            code = self._pacing.on_chunk(now, duration)
            if code is not None:
                await self.send("warning", wire.warning(code, _PACING_TEXT[code]))
        if samples is None or self._vad is None or self._segmenter is None:
            return
        events: list[SegmentEvent] = []
        for start, voiced in self._vad.feed(samples):
            events += self._segmenter.push(start, self._vad.frame_s, voiced)
        await self._handle_events(events)

    def _account_audio(self, now: float, wall: float, duration: float) -> None:
        report = self.report
        if report.first_audio_at is None:
            report.first_audio_at = wall
            self._epoch = wall - duration
        report.last_audio_at = wall
        report.audio_chunks += 1
        report.audio_s = round(report.audio_s + duration, 6)
        self._audio_s += duration
        self._timeline.add(self._audio_s, wall)
        self._idle_since = now
        self._last_audio_at = now
        self._last_chunk_s = duration

    # ---- recognition ----------------------------------------------------------------------

    async def _handle_events(self, events: list[SegmentEvent]) -> None:
        for event in events:
            if isinstance(event, Opened):
                self._open_utterance(event.number, event.start_s)
            if self._open is None:
                continue
            if isinstance(event, Closed):
                await self._validate(self._open, event.start_s, event.end_s)
                self._open = None
            else:
                await self._partial(self._open, event.start_s, event.end_s)

    def _open_utterance(self, number: int, start_s: float) -> None:
        assert self.task is not None
        language = self._spoken_language()
        if self.task.source_language == "auto" and self.report.detected_language != language:
            self.report.detected_language = language
            log.info("sim_language_detected", connection=self.report.id, language=language)
        utterance = UtteranceReport(
            len(self.report.utterances) + 1,
            secrets.token_hex(8),
            language,
            self._timeline.wall_at(start_s),
            speech_start_s=round(start_s, 3),
        )
        turn = self._turn(number)
        utterance.script_turn = turn.index if turn is not None else None
        utterance.speech_number = number
        self.report.utterances.append(utterance)
        self._open = utterance

    def _turn(self, number: int) -> ScriptTurn | None:
        if self.state.script is None or self.task is None:
            return None
        return self.state.script.turn_for(self._spoken_language(), number)

    def _speech_number(self, utterance: UtteranceReport) -> int:
        return utterance.speech_number or utterance.number

    async def _partial(self, utterance: UtteranceReport, start_s: float, end_s: float) -> None:
        task = self.task
        assert task is not None
        number = self._speech_number(utterance)
        turn, speech_s = self._turn(number), end_s - start_s
        text = speech.source_text(turn, utterance.source_language, number, speech_s, final=False)
        await self._transcript(
            "partial_transcription", utterance, utterance.source_language, text, start_s, end_s
        )
        for target in task.targets:
            if target.translate_partials:
                translated = speech.translated_text(
                    turn, utterance.source_language, target.language, number, speech_s, partial=True
                )
                await self._transcript(
                    "partial_translated_transcription",
                    utterance,
                    target.language,
                    translated,
                    start_s,
                    end_s,
                    part=0,
                )

    async def _validate(self, utterance: UtteranceReport, start_s: float, end_s: float) -> None:
        task = self.task
        assert task is not None
        number = self._speech_number(utterance)
        turn, speech_s = self._turn(number), end_s - start_s
        text = speech.source_text(turn, utterance.source_language, number, speech_s, final=True)
        utterance.source_text = text
        utterance.speech_end_s = round(end_s, 3)
        utterance.speech_end_at = self._timeline.wall_at(end_s)
        utterance.validated_at = time.time()
        await self._transcript(
            "validated_transcription", utterance, utterance.source_language, text, start_s, end_s
        )
        outputs = [
            TargetOutput(
                target,
                speech.translated_text(turn, utterance.source_language, target, number, speech_s),
                speech.translated_pcm(turn, target, speech_s) if task.output_audio else None,
            )
            for target in task.target_languages
        ]
        log.info(
            "sim_utterance_validated",
            connection=self.report.id,
            number=number,
            speech_s=round(speech_s, 2),
        )
        await self._enqueue(OutputJob(utterance, outputs, start_s, end_s))

    async def _transcript(
        self,
        message_type: str,
        utterance: UtteranceReport,
        language: str,
        text: str,
        start_s: float,
        end_s: float,
        *,
        part: int | None = None,
    ) -> None:
        segments = [wire.segment(text, start_s, end_s, self.epoch_or_now())]
        body = wire.transcription(
            utterance.transcription_id, language, text, segments, translation_part_id=part
        )
        await self.send(message_type, body)

    # ---- output ---------------------------------------------------------------------------

    def epoch_or_now(self) -> float:
        """Wall time of audio time 0 (segment timestamps are relative to it)."""
        return self._epoch if self._epoch is not None else time.time()

    async def _enqueue(self, job: OutputJob) -> None:
        if self._jobs_send is None:
            return
        self._pending.append(job)
        try:
            self._jobs_send.send_nowait(job)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self._pending.remove(job)
            log.warning("sim_output_queue_full", connection=self.report.id)

    async def _output_worker(self, jobs: trio.MemoryReceiveChannel[OutputJob]) -> None:
        async with jobs:
            async for job in jobs:
                await run_job(self, job)
                self._pending.remove(job)
        self._drained.set()

    def set_queue_level(self, language: str, level_ms: int | None) -> None:
        if level_ms is None:
            self._queue_levels.pop(language, None)
        else:
            self._queue_levels[language] = level_ms

    async def _queue_status_loop(self) -> None:
        while True:
            await trio.sleep(self.options.queue_status_interval_s)
            if self.task is None:
                continue
            maximum = self.task.max_queue_level_ms
            levels = {lang: (level, maximum) for lang, level in self._queue_levels.items()}
            if not await self._send_text(wire.queue_status(levels)):
                return

    # ---- watchdog -------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        while True:
            await trio.sleep(_WATCHDOG_TICK_S)
            if self.phase != "running":
                continue
            now = trio.current_time()
            if now - self._idle_since >= self.options.idle_timeout_s and not self._stalled():
                await self._service_timeout()
                return
            if self._pacing is not None:
                code = self._pacing.check_stall(now)
                if code is not None:
                    await self.send("warning", wire.warning(code, _PACING_TEXT[code]))
            await self._end_utterance_on_silence(now)

    async def _end_utterance_on_silence(self, now: float) -> None:
        """No audio at all for a chunk plus the hangover: what was heard is a whole utterance."""
        segmenter = self._segmenter
        if segmenter is None or not segmenter.active or self._last_audio_at is None:
            return
        if now - self._last_audio_at >= self._last_chunk_s + segmenter.hangover_s:
            await self._handle_events(segmenter.flush())

    async def _service_timeout(self) -> None:
        idle = self.options.idle_timeout_s
        log.info("sim_service_timeout", connection=self.report.id, idle_s=idle)
        desc = f"No input audio received for {idle:g}s. Use the pause_task command for intentional pauses."
        await self._error("SERVICE_TIMEOUT", desc)
        await self._close(1008, "SERVICE_TIMEOUT")


_PACING_TEXT = {
    "AUDIO_STREAM_TOO_FAST": "Input audio arrives faster than real time",
    "AUDIO_STREAM_TOO_SLOW": "Input audio arrives slower than real time",
    "AUDIO_STREAM_STALLED": "Input audio stream stalled",
}


def _decode_pcm(payload: bytes, task: TaskConfig) -> np.ndarray | None:
    """Mono int16 samples, or None for a format the simulator cannot decode (opus)."""
    if task.input_format == "opus":
        return None
    if task.input_format == "wav" and payload[:4] == b"RIFF":
        at = payload.find(b"data", 12)
        payload = payload[at + 8 :] if at >= 0 else b""
    usable = len(payload) - len(payload) % (2 * task.channels)
    samples = np.frombuffer(payload[:usable], dtype="<i2")
    if task.channels > 1:
        samples = samples.reshape(-1, task.channels).mean(axis=1).astype(np.int16)
    return samples


def _tts_problem(text: Any, language: Any, translate: bool, targets: list[str]) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return "tts_task.text: field required"
    if len(text) > _TTS_MAX_CHARS:
        return f"tts_task.text: ensure this value has at most {_TTS_MAX_CHARS} characters"
    if not isinstance(language, str) or not language:
        return "tts_task.language: field required"
    if not translate and language not in targets:
        return f"tts_task.language: {language!r} is not a target language of the task"
    return None
