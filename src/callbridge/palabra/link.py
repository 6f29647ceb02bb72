"""One Palabra translation direction over one WebSocket at a time, on trio.

``open_palabra_link(config, direction, http)`` connects (API key or legacy session), sends
``set_task``, waits until the task runs, and yields a ``PalabraLink``: ``feed()`` 24 kHz PCM in,
``events`` (transcripts, translated speech, detected languages, warnings, errors) out, and
``update_task()`` to change the running task (a caller who switched language) without dropping it.

Inside, one supervisor task owns the connection and, per connection, a nursery of three tasks:

- the **reader** turns frames into events (``protocol.parse``) and notices acknowledgements;
- the **sender** sends ``palabra.chunk_ms`` chunks on an absolute real-time schedule and sends
  real-time silence when nothing was fed, so Palabra's 10 s ``SERVICE_TIMEOUT`` never fires while
  the operator's phone rings or Twilio pauses;
- the **pinger** pings every ``ping_interval_s`` and declares the connection dead after
  ``ping_timeout_s`` without a pong (trio-websocket has no ping loop of its own).

An unexpected close or failure ends that connection's nursery; the supervisor reconnects (fresh
random path or fresh legacy session, ``set_task`` again, readiness again) within the budget of
``palabra.reconnect_attempts`` and ``palabra.reconnect_budget_s``, while ``feed()`` keeps
buffering up to ``palabra.input_buffer_ms``. Past the budget it raises ``PalabraUnavailable``.

Resource handling: everything lives in the link's own nursery inside ``open_palabra_link``. On
exit the link sends the buffered tail, ``end_task``, waits up to ``palabra.end_timeout_s`` for
``end_of_stream`` (or ``eos``), closes the socket and, in legacy mode, deletes the session; the
goodbye is shielded from cancellation and bounded, so a cancelled call still says goodbye.

Error handling: ``PalabraAuthError`` (credentials refused: REST 401/403/404 or an upgrade refused
with one of those), ``PalabraTaskRejected`` (an ``error`` other than ``NOT_FOUND`` before the task
runs), ``PalabraUnavailable`` (budget spent) propagate out of the ``async with`` as themselves, not
wrapped in an exception group, into the caller's nursery. Errors after readiness are events.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

import attrs
import httpx
import numpy as np
import trio
from numpy.typing import NDArray
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
)

from callbridge.config import Config
from callbridge.errors import PalabraTaskRejected, PalabraUnavailable
from callbridge.log import get_logger
from callbridge.palabra.auth import open_endpoint
from callbridge.palabra.events import (
    LanguageDetected,
    PalabraEvent,
    ServerError,
    SpeechChunk,
    Transcript,
)
from callbridge.palabra.failures import (
    CONNECTION_ENDINGS,
    Dropped,
    ReconnectBudget,
    classify,
    close_code,
    sole_leaf,
)
from callbridge.palabra.pacing import AudioBuffer, Pacer
from callbridge.palabra.protocol import (
    SAMPLE_RATE,
    CurrentTask,
    EndOfStream,
    Ignored,
    Incoming,
    Malformed,
    TaskSettings,
    TaskStatus,
    Unknown,
    detected_language,
    encode_end_task,
    encode_get_task,
    encode_input_audio,
    encode_set_task,
    parse,
    task_data,
)
from callbridge.palabra.transport import CLOSE_GRACE_S, websocket_connector
from callbridge.roles import Direction

__all__ = ["Connector", "LinkStats", "PalabraLink", "open_palabra_link", "websocket_connector"]

log = get_logger("callbridge.palabra")

# Opens one WebSocket to a URL (the URL carries the token). Tests inject an in-memory one.
Connector: TypeAlias = Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]

# Events queued for the consumer: ~50 s of 200 ms speech chunks, far beyond a healthy lag.
_EVENTS_QUEUE = 256
# How long the reader waits for a stuck consumer before dropping (and counting) a speech chunk.
# Longer would stall the reader, and trio-websocket stops answering pings behind a stalled reader.
_SPEECH_SEND_TIMEOUT_S = 2.0
# Reconnect backoff: 0.5 s, 1 s, 2 s, then 4 s, always within the remaining budget.
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 4.0
# A rate-limited log line for repeated drops: the first, then every Nth.
_LOG_EVERY = 50
# Palabra accepts one set_task per 2 s (docs.palabra.ai /docs/streaming_api/management); an
# update sent sooner would be refused with an error, so it waits for its turn instead.
_SET_TASK_INTERVAL_S = 2.0


@attrs.define
class LinkStats:
    """Counters for logs and tests. ``audio_ms_sent`` includes silence."""

    chunks_sent: int = 0
    silence_chunks_sent: int = 0
    audio_ms_sent: float = 0.0
    max_behind_ms: float = 0.0
    feed_drops: int = 0
    feed_dropped_ms: float = 0.0
    transcripts: int = 0
    speech_chunks: int = 0
    warnings: int = 0
    errors: int = 0
    events_dropped: int = 0
    speech_dropped: int = 0
    malformed: int = 0
    ignored_frames: int = 0
    unknown_types: dict[str, int] = attrs.Factory(dict)
    connects: int = 0
    reconnects: int = 0
    ready_polls: int = 0
    eos_received: int = 0
    task_updates: int = 0
    languages_detected: int = 0

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define(eq=False)
class _Connection:
    ws: WebSocketConnection
    ready: trio.Event = attrs.Factory(trio.Event)
    ended: trio.Event = attrs.Factory(trio.Event)  # end_of_stream, or closed while closing
    sender_done: trio.Event = attrs.Factory(trio.Event)


@attrs.define(eq=False)
class PalabraLink:
    """A ready translation link for one direction (see the module docstring).

    ``feed`` never blocks. ``events`` is bounded (256); the consumer should read it promptly.
    Full-queue policy: transcripts, warnings and errors are dropped and counted
    (``stats.events_dropped``) at once; a speech chunk waits up to 2 s for room and is then
    dropped, counted (``stats.speech_dropped``) and logged at warning level, never silently.
    ``events`` ends (``EndOfChannel``) when the link ends."""

    direction: Direction
    settings: TaskSettings
    events: trio.MemoryReceiveChannel[PalabraEvent]
    stats: LinkStats
    _config: Config
    _http: httpx.AsyncClient
    _connect: Connector
    _events_out: trio.MemorySendChannel[PalabraEvent]
    _buffer: AudioBuffer
    _budget: ReconnectBudget
    _chunk_samples: int
    _closing: trio.Event = attrs.Factory(trio.Event)
    _finished: trio.Event = attrs.Factory(trio.Event)
    _fed: trio.Event = attrs.Factory(trio.Event)
    _last_feed_at: float = -math.inf
    _scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    _started: bool = False
    _streaming: bool = False
    _conn: _Connection | None = None
    _set_task_at: float = -math.inf
    _update_lock: trio.Lock = attrs.Factory(trio.Lock)
    _detected: str | None = None
    _end_by: float = math.inf
    _goodbye_scope: trio.CancelScope | None = None

    @classmethod
    def create(
        cls,
        config: Config,
        direction: Direction,
        http: httpx.AsyncClient,
        connect: Connector,
        settings: TaskSettings | None = None,
    ) -> PalabraLink:
        palabra = config.palabra
        send, receive = trio.open_memory_channel[PalabraEvent](_EVENTS_QUEUE)
        return cls(
            direction=direction,
            settings=settings or TaskSettings.resolve(config, direction),
            events=receive,
            stats=LinkStats(),
            config=config,
            http=http,
            connect=connect,
            events_out=send,
            buffer=AudioBuffer(SAMPLE_RATE * palabra.input_buffer_ms // 1000),
            budget=ReconnectBudget(palabra.reconnect_attempts, palabra.reconnect_budget_s),
            chunk_samples=SAMPLE_RATE * palabra.chunk_ms // 1000,
        )

    # --- input --------------------------------------------------------------------------------

    def feed(self, pcm24: NDArray[np.int16]) -> bool:
        """Queue 24 kHz mono PCM of any length for sending. Never blocks. Returns False (and
        counts a drop) when the buffer is full or the link is closing."""
        samples = np.array(pcm24, dtype=np.int16, copy=True).reshape(-1)
        if self._closing.is_set() or not self._buffer.push(samples):
            self.stats.feed_drops += 1
            self.stats.feed_dropped_ms += len(samples) * 1000 / SAMPLE_RATE
            if self.stats.feed_drops % _LOG_EVERY == 1:
                log.warning(
                    "palabra_feed_dropped",
                    direction=self.direction.value,
                    drops=self.stats.feed_drops,
                    buffered_ms=self.buffered_ms,
                    closing=self._closing.is_set(),
                )
            return False
        self._last_feed_at = trio.current_time()
        self._fed.set()
        return True

    @property
    def buffered_ms(self) -> float:
        return len(self._buffer) * 1000 / SAMPLE_RATE

    # --- task changes -------------------------------------------------------------------------

    async def update_task(self, settings: TaskSettings) -> None:
        """Run ``settings`` from now on without dropping the link: e.g. the caller pressed ``*3``
        and speaks another language (``settings.with_languages(...)``).

        Sends ``set_task`` again on the live connection, which Palabra applies "without
        interrupting the stream" (reference §3.2) and acknowledges with ``task_status`` event
        ``updated`` (or ``unchanged``). Audio fed meanwhile keeps flowing. Waits, if needed,
        until 2 s after the previous ``set_task`` (Palabra's rate limit). While the link is
        reconnecting the new settings simply become the task the next connection sends.

        Error handling: a connection that drops during the send is left to the reconnect, which
        sends the new task; a task Palabra refuses arrives as a ``ServerError`` event
        (``VALIDATION_ERROR``) and the previous task keeps running. ``trio.ClosedResourceError``
        once the link is closing.
        """
        if self._closing.is_set():
            msg = f"Palabra link {self.direction.value} is closing"
            raise trio.ClosedResourceError(msg)
        async with self._update_lock:
            self.settings = settings
            self._detected = None
            conn = self._conn
            if conn is None or not conn.ready.is_set():
                return  # (re)connecting: _await_ready sends self.settings
            await trio.sleep_until(self._set_task_at + _SET_TASK_INTERVAL_S)
            if conn is not self._conn or self._closing.is_set():
                return
            try:
                await self._send_set_task(conn)
            except ConnectionClosed:
                return  # the reconnect sends the new task
            self.stats.task_updates += 1
            log.info(
                "palabra_task_update_sent",
                direction=self.direction.value,
                source=settings.source_language,
                target=settings.target_language,
            )

    async def _send_set_task(self, conn: _Connection) -> None:
        self._set_task_at = trio.current_time()
        await conn.ws.send_message(encode_set_task(task_data(self.settings)))

    # --- supervisor ---------------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                await self._connect_loop(task_status)
        finally:
            self._finished.set()
            self._events_out.close()

    async def _connect_loop(self, task_status: trio.TaskStatus[None]) -> None:
        budget = self._budget
        while True:
            with trio.CancelScope(deadline=budget.deadline()) as attempt:
                try:
                    await self._connection(attempt, task_status)
                    return
                except Dropped as exc:
                    reason = exc.reason
                finally:
                    self._streaming = False
            if attempt.cancelled_caught:
                reason = "reconnect budget spent while connecting"
            if self._closing.is_set():
                return
            now = trio.current_time()
            budget.lost(now)
            if budget.exhausted(now):
                msg = (
                    f"Palabra link {self.direction.value} lost: {reason}; gave up after "
                    f"{budget.used_attempts} reconnects in {budget.used_s(now):.1f} s"
                )
                log.error("palabra_link_failed", direction=self.direction.value, reason=reason)
                raise PalabraUnavailable(msg)
            budget.used_attempts += 1
            self.stats.reconnects += 1
            delay = min(_BACKOFF_FIRST_S * 2 ** (budget.used_attempts - 1), _BACKOFF_MAX_S)
            delay = min(delay, max(0.0, budget.deadline() - now))
            log.warning(
                "palabra_reconnecting",
                direction=self.direction.value,
                reason=reason,
                attempt=budget.used_attempts,
                delay_s=delay,
                buffered_ms=self.buffered_ms,
            )
            await trio.sleep(delay)

    async def _connection(
        self, attempt: trio.CancelScope, task_status: trio.TaskStatus[None]
    ) -> None:
        """One connection from endpoint to close; returns after a goodbye, raises ``Dropped``
        for anything worth a reconnect, and the fatal errors as themselves."""
        try:
            async with open_endpoint(self._config, self._http) as endpoint:
                log.info(
                    "palabra_connecting",
                    direction=self.direction.value,
                    url=endpoint.log_url,
                    mode=endpoint.mode,
                )
                async with self._connect(endpoint.url) as ws, trio.open_nursery() as nursery:
                    self.stats.connects += 1
                    conn = self._conn = _Connection(ws)
                    self._set_task_at = -math.inf  # the rate limit counts per connection
                    nursery.start_soon(self._read, conn)
                    await self._await_ready(conn)
                    self._on_ready(attempt, task_status)
                    nursery.start_soon(self._send_audio, conn)
                    nursery.start_soon(self._ping, conn)
                    await self._closing.wait()
                    await self._goodbye(conn)
                    nursery.cancel_scope.cancel()
        except CONNECTION_ENDINGS as exc:
            mapped = classify(exc)
            if mapped is exc:
                raise
            raise mapped from None
        finally:
            self._conn = None

    async def _await_ready(self, conn: _Connection) -> None:
        """``set_task``, then wait for the acknowledgement; when none comes within
        ``ready_poll_interval_s`` (an older server), poll ``get_task`` at that interval."""
        palabra = self._config.palabra
        try:
            with trio.fail_after(palabra.ready_timeout_s):
                async with self._update_lock:  # an update_task racing the connect waits
                    await trio.sleep_until(self._set_task_at + _SET_TASK_INTERVAL_S)
                    await self._send_set_task(conn)
                while not conn.ready.is_set():
                    with trio.move_on_after(palabra.ready_poll_interval_s):
                        await conn.ready.wait()
                    if not conn.ready.is_set():
                        self.stats.ready_polls += 1
                        await conn.ws.send_message(encode_get_task())
        except trio.TooSlowError:
            msg = f"task not running after {palabra.ready_timeout_s} s"
            raise Dropped(msg) from None

    def _on_ready(self, attempt: trio.CancelScope, task_status: trio.TaskStatus[None]) -> None:
        self._budget.recovered(trio.current_time())
        attempt.deadline = math.inf
        self._streaming = True
        log.info(
            "palabra_ready",
            direction=self.direction.value,
            source=self.settings.source_language,
            target=self.settings.target_language,
            reconnects=self.stats.reconnects,
            polls=self.stats.ready_polls,
        )
        if not self._started:
            self._started = True
            # From here on the goodbye must survive the caller's cancellation; _shutdown bounds
            # it and then cancels this scope itself.
            self._scope.shield = True
            task_status.started()

    async def _goodbye(self, conn: _Connection) -> None:
        palabra = self._config.palabra
        with trio.move_on_after(palabra.end_timeout_s):
            await conn.sender_done.wait()
            try:
                await conn.ws.send_message(encode_end_task())
            except ConnectionClosed:
                return
            await conn.ended.wait()
        log.info(
            "palabra_link_ended",
            direction=self.direction.value,
            end_of_stream=self.stats.eos_received > 0,
            **self.stats.as_dict(),
        )

    def end_by(self, deadline: float) -> None:
        """Cut the goodbye at ``deadline`` (trio time) at the latest, whatever
        ``palabra.end_timeout_s`` says: a daemon told to stop cannot wait on a slow Palabra.
        May be called before or during the goodbye."""
        self._end_by = min(self._end_by, deadline)
        if self._goodbye_scope is not None:
            self._goodbye_scope.deadline = min(self._goodbye_scope.deadline, deadline)

    async def _shutdown(self) -> None:
        self._closing.set()
        self._fed.set()
        if self._streaming:
            bound = trio.current_time() + self._config.palabra.end_timeout_s + CLOSE_GRACE_S
            with trio.CancelScope(shield=True, deadline=min(bound, self._end_by)) as scope:
                self._goodbye_scope = scope
                await self._finished.wait()
        self._scope.cancel()

    # --- per-connection tasks -----------------------------------------------------------------

    async def _send_audio(self, conn: _Connection) -> None:
        chunk = self._chunk_samples
        pacer = Pacer(chunk / SAMPLE_RATE)
        try:
            while True:
                due = pacer.due()
                if due is not None:
                    await trio.sleep_until(due)
                now = trio.current_time()
                if len(self._buffer) < chunk and self._speech_pending(now, pacer.chunk_s):
                    await self._wait_for_chunk(now + pacer.chunk_s)
                if self._closing.is_set() and not len(self._buffer):
                    return
                pcm = self._buffer.take(chunk)
                if len(pcm) < chunk:
                    pcm = np.concatenate((pcm, np.zeros(chunk - len(pcm), dtype=np.int16)))
                await conn.ws.send_message(encode_input_audio(pcm))
                self._count_sent(pcm, pacer.behind_s(now))
                pacer.mark_sent(trio.current_time())
        finally:
            conn.sender_done.set()

    def _speech_pending(self, now: float, chunk_s: float) -> bool:
        """Speech is flowing (buffered, or fed within the last chunk): give the feeder up to one
        chunk to complete the chunk rather than pad the middle of speech with silence."""
        if self._closing.is_set():
            return False
        return len(self._buffer) > 0 or now - self._last_feed_at < chunk_s

    async def _wait_for_chunk(self, deadline: float) -> None:
        with trio.move_on_at(deadline):
            while len(self._buffer) < self._chunk_samples and not self._closing.is_set():
                self._fed = trio.Event()
                await self._fed.wait()

    def _count_sent(self, pcm: NDArray[np.int16], behind_s: float) -> None:
        stats = self.stats
        stats.chunks_sent += 1
        stats.audio_ms_sent += len(pcm) * 1000 / SAMPLE_RATE
        stats.max_behind_ms = max(stats.max_behind_ms, behind_s * 1000)
        if not pcm.any():
            stats.silence_chunks_sent += 1

    async def _ping(self, conn: _Connection) -> None:
        palabra = self._config.palabra
        while True:
            await trio.sleep(palabra.ping_interval_s)
            try:
                with trio.fail_after(palabra.ping_timeout_s):
                    await conn.ws.ping()
            except trio.TooSlowError:
                msg = f"no pong within {palabra.ping_timeout_s} s"
                raise Dropped(msg) from None

    async def _read(self, conn: _Connection) -> None:
        while True:
            try:
                frame = await conn.ws.get_message()
            except ConnectionClosed as exc:
                if self._closing.is_set():
                    conn.ended.set()
                    return
                msg = f"connection closed ({close_code(exc)})"
                raise Dropped(msg) from None
            settings = self.settings  # update_task may have changed it
            item = parse(
                frame,
                received_at=time.time(),
                source_language=settings.source_language,
                target_language=settings.target_language,
            )
            await self._handle(item, conn)

    async def _handle(self, item: Incoming, conn: _Connection) -> None:
        if isinstance(item, TaskStatus | CurrentTask):
            self._on_status(item, conn)
        elif isinstance(item, EndOfStream):
            self.stats.eos_received += 1
            conn.ended.set()
        elif isinstance(item, ServerError):
            if self._on_error(item, conn):
                await self._emit(item)
        elif isinstance(item, Ignored):
            self.stats.ignored_frames += 1
        elif isinstance(item, Unknown):
            self._on_unknown(item)
        elif isinstance(item, Malformed):
            self.stats.malformed += 1
            log.warning(
                "palabra_malformed_frame",
                direction=self.direction.value,
                size=item.size,
                reason=item.reason,
            )
            await self._emit(item.as_error())
        else:
            if isinstance(item, Transcript):
                await self._on_transcript(item)
            await self._emit(item)

    async def _on_transcript(self, transcript: Transcript) -> None:
        """With an ``auto`` source, announce the detected language once, and again on a change,
        before the transcript that shows it."""
        detected = detected_language(self.settings, transcript)
        if detected is None or detected.language == self._detected:
            return
        self._detected = detected.language
        self.stats.languages_detected += 1
        log.info(
            "palabra_language_detected", direction=self.direction.value, language=detected.language
        )
        await self._emit(detected)

    def _on_status(self, item: TaskStatus | CurrentTask, conn: _Connection) -> None:
        if isinstance(item, TaskStatus) and item.command != "set_task":
            log.info(
                "palabra_task_status", command=item.command, ack=item.event, status=item.status
            )
            return
        if isinstance(item, TaskStatus) and conn.ready.is_set():
            # The answer to update_task: updated, unchanged (or resumed).
            log.info("palabra_task_updated", direction=self.direction.value, ack=item.event)
            return
        if item.status == "running":
            conn.ready.set()
        elif not conn.ready.is_set():
            log.info("palabra_task_not_running", status=item.status)

    def _on_error(self, error: ServerError, conn: _Connection) -> bool:
        """True when the error is for the consumer (after readiness)."""
        if not conn.ready.is_set():
            if error.code == "NOT_FOUND":  # older servers: the task is not running yet
                return False
            log.error(
                "palabra_task_rejected",
                direction=self.direction.value,
                code=error.code,
                desc=error.desc,
            )
            raise PalabraTaskRejected(error.code, error.desc)
        self.stats.errors += 1
        log.warning(
            "palabra_server_error", direction=self.direction.value, code=error.code, desc=error.desc
        )
        return True

    def _on_unknown(self, item: Unknown) -> None:
        seen = self.stats.unknown_types
        if item.message_type not in seen:
            log.info("palabra_unknown_message_type", message_type=item.message_type)
        seen[item.message_type] = seen.get(item.message_type, 0) + 1

    async def _emit(self, event: PalabraEvent) -> None:
        stats = self.stats
        if isinstance(event, Transcript):
            stats.transcripts += 1
        elif isinstance(event, SpeechChunk):
            stats.speech_chunks += 1
        elif not isinstance(event, ServerError | LanguageDetected):
            stats.warnings += 1
        try:
            self._events_out.send_nowait(event)
            return
        except trio.WouldBlock:
            if isinstance(event, SpeechChunk):
                with trio.move_on_after(_SPEECH_SEND_TIMEOUT_S):
                    await self._events_out.send(event)
                    return
        except trio.BrokenResourceError:
            pass  # the consumer closed its end: it wants no more events
        self._count_dropped(event)

    def _count_dropped(self, event: PalabraEvent) -> None:
        stats = self.stats
        if isinstance(event, SpeechChunk):
            stats.speech_dropped += 1
            log.warning(
                "palabra_speech_dropped",
                direction=self.direction.value,
                transcription_id=event.transcription_id,
                dropped=stats.speech_dropped,
            )
            return
        stats.events_dropped += 1
        if stats.events_dropped % _LOG_EVERY == 1:
            log.warning(
                "palabra_events_dropped",
                direction=self.direction.value,
                dropped=stats.events_dropped,
            )


@asynccontextmanager
async def open_palabra_link(
    config: Config,
    direction: Direction,
    http: httpx.AsyncClient,
    *,
    connect: Connector | None = None,
    settings: TaskSettings | None = None,
) -> AsyncIterator[PalabraLink]:
    """Connect, send ``set_task`` for ``direction``, wait until the task runs, and yield the link
    (see the module docstring for resource and error handling). ``connect`` replaces the
    WebSocket opener (tests); the default is trio-websocket's ``open_websocket_url``.
    ``settings`` is this call's task (its languages: ``TaskSettings.resolve(config, direction,
    caller_language=..., operator_language=...)``); the default resolves ``config`` alone.

    Speech output follows ``config.media.<direction>``: ``captions`` asks for text only
    (``output_stream: null``); ``passthrough`` directions need no link and are refused."""
    mode = config.media.mode(direction)
    if mode == "passthrough":
        msg = f"{direction.value} is passthrough: it needs no Palabra link"
        raise ValueError(msg)
    link = PalabraLink.create(
        config, direction, http, connect or websocket_connector(config), settings
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(link._run)
            try:
                yield link
            finally:
                await link._shutdown()
    except BaseExceptionGroup as group:
        sole = sole_leaf(group)
        if sole is None:
            raise
        raise sole from None
