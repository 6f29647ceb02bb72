"""The connection supervisor of a Palabra link: connect, make ready, reconnect, say goodbye.

One supervisor task per link owns the current ``Connection`` and, per connection, a nursery with
the reader (``reader.py``), the paced sender (``sender.py``) and a pinger (a WebSocket ping every
``ping_interval_s``, the connection declared dead after ``ping_timeout_s`` without a pong:
trio-websocket has no ping loop of its own).

Readiness: ``set_task`` right after the socket opens, then wait for the acknowledgement; when none
comes within ``ready_poll_interval_s`` (older servers) poll ``get_task`` at that interval, until
``ready_timeout_s`` (reference: https://github.com/PalabraAI/palabra-ai-python README, "Session
control").

Reconnects: an unexpected close, a failed send, a ping or readiness timeout drops the connection
(``failures.Dropped``); the supervisor reconnects (fresh random path or fresh legacy session,
``set_task`` again, readiness again) with backoff 0.5, 1, 2, 4 s, within the link's
``ReconnectBudget`` of ``reconnect_attempts`` and ``reconnect_budget_s``, then raises
``PalabraUnavailable``. Every drop of a ready connection is announced to the consumer, before
the backoff, as a ``ConnectionLost`` event: speech in flight on it will not continue.

Stalls: a connection that takes ``output_stall_s`` of speech (RMS above -40 dBFS) without
sending back a transcript or translated speech is replaced at once (``palabra_output_stalled``,
then the reconnect): the socket may stay open and answer pings while the service behind it has
stopped translating. A stall spends no reconnect attempt (noise or music Palabra does not
transcribe looks the same, and must not fail the call); stalls in a row double the allowance.

Goodbye: when the link closes, the sender sends what is buffered, then ``end_task``; the
supervisor waits up to ``end_timeout_s`` for ``end_of_stream`` (or the server's close).
"""

from __future__ import annotations

import math
from typing import Final

import attrs
import httpx
import trio
from trio_websocket import ConnectionClosed

from callbridge.config import Config
from callbridge.errors import PalabraUnavailable
from callbridge.log import get_logger
from callbridge.palabra.auth import open_endpoint
from callbridge.palabra.connection import Connection, Connector
from callbridge.palabra.events import ConnectionLost
from callbridge.palabra.failures import CONNECTION_ENDINGS, Dropped, ReconnectBudget, classify
from callbridge.palabra.lifetime import LinkLifetime
from callbridge.palabra.outlet import EventOutlet
from callbridge.palabra.protocol import (
    TaskSettings,
    encode_end_task,
    encode_get_task,
    encode_set_task,
    task_data,
)
from callbridge.palabra.reader import LinkReader
from callbridge.palabra.sender import LinkInput
from callbridge.palabra.stats import LinkStats
from callbridge.roles import Direction

__all__ = ["ConnectionSupervisor"]

log = get_logger("callbridge.palabra")

# Reconnect backoff: 0.5 s, 1 s, 2 s, then 4 s, always within the remaining budget.
_BACKOFF_FIRST_S: Final = 0.5
_BACKOFF_MAX_S: Final = 4.0
# Palabra accepts one set_task per 2 s (docs.palabra.ai /docs/streaming_api/management); an
# update sent sooner would be refused with an error, so it waits for its turn instead.
_SET_TASK_INTERVAL_S: Final = 2.0
# How often the output watchdog looks at a connection's unanswered speech.
_STALL_CHECK_S: Final = 1.0
# Stalls in a row double the unanswered speech allowed, at most this many times (8 s -> 64 s).
_STALL_BACKOFF_MAX_DOUBLINGS: Final = 3


@attrs.define(eq=False)
class ConnectionSupervisor:
    """See the module docstring. ``settings`` is the task in force (``update_task`` changes it)."""

    direction: Direction
    settings: TaskSettings
    stats: LinkStats
    lifetime: LinkLifetime
    input: LinkInput
    reader: LinkReader
    outlet: EventOutlet
    _config: Config
    _http: httpx.AsyncClient
    _connect: Connector
    _budget: ReconnectBudget
    _conn: Connection | None = None
    _set_task_at: float = -math.inf
    _stalls_in_a_row: int = 0  # connections dropped as stalled with no answer in between
    _update_lock: trio.Lock = attrs.Factory(trio.Lock)

    # --- task changes -------------------------------------------------------------------------

    async def update_task(self, settings: TaskSettings) -> None:
        """Send ``settings`` on the live connection (see ``PalabraLink.update_task``)."""
        async with self._update_lock:
            self.settings = settings
            self.reader.forget_language()
            conn = self._conn
            if conn is None or not conn.ready.is_set():
                return  # (re)connecting: _await_ready sends self.settings
            await trio.sleep_until(self._set_task_at + _SET_TASK_INTERVAL_S)
            if conn is not self._conn or self.lifetime.is_closing:
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

    async def _send_set_task(self, conn: Connection) -> None:
        self._set_task_at = trio.current_time()
        await conn.ws.send_message(encode_set_task(task_data(self.settings)))

    # --- connections --------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        """Connections until the link closes; ``task_status.started()`` at the first readiness.
        Raises ``PalabraUnavailable`` past the budget, and the fatal errors as themselves."""
        budget = self._budget
        while True:
            with trio.CancelScope(deadline=budget.deadline()) as attempt:
                try:
                    await self._connection(attempt, task_status)
                    return
                except Dropped as exc:
                    if exc.stalled and not self.lifetime.is_closing:
                        self._reconnect_stalled(exc.reason)
                        continue
                    reason = exc.reason
            if attempt.cancelled_caught:
                reason = "reconnect budget spent while connecting"
            if self.lifetime.is_closing:
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
            await self._back_off(reason, now)

    def _reconnect_stalled(self, reason: str) -> None:
        """A stalled connection is replaced at once and spends no reconnect attempt: the service
        is reachable, and a call must not fail because its speech went unanswered (music or
        noise Palabra does not transcribe looks the same). Each stall in a row doubles the
        speech the next connection may leave unanswered (``_watch_output``)."""
        self.stats.reconnects += 1
        log.warning(
            "palabra_reconnecting",
            direction=self.direction.value,
            reason=reason,
            attempt=0,
            delay_s=0.0,
            buffered_ms=self.input.buffered_ms,
        )

    async def _back_off(self, reason: str, now: float) -> None:
        budget = self._budget
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
            buffered_ms=self.input.buffered_ms,
        )
        await trio.sleep(delay)

    async def _connection(
        self, attempt: trio.CancelScope, task_status: trio.TaskStatus[None]
    ) -> None:
        """One connection from endpoint to close; returns after a goodbye, raises ``Dropped``
        for anything worth a reconnect, and the fatal errors as themselves."""
        ready = False
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
                    conn = self._conn = Connection(ws)
                    self._set_task_at = -math.inf  # the rate limit counts per connection
                    nursery.start_soon(self.reader.read, conn)
                    await self._await_ready(conn)
                    ready = True
                    self._on_ready(attempt, task_status)
                    nursery.start_soon(self.input.send_paced, conn)
                    nursery.start_soon(self._ping, conn)
                    nursery.start_soon(self._watch_output, conn)
                    await self.lifetime.closing.wait()
                    await self._goodbye(conn)
                    nursery.cancel_scope.cancel()
        except CONNECTION_ENDINGS as exc:
            mapped = classify(exc)
            if mapped is exc:
                raise
            if ready and isinstance(mapped, Dropped) and not self.lifetime.is_closing:
                await self.outlet.emit(ConnectionLost(mapped.reason))
            raise mapped from None
        finally:
            self._conn = None
            self.lifetime.lost()

    async def _await_ready(self, conn: Connection) -> None:
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
        log.info(
            "palabra_ready",
            direction=self.direction.value,
            source=self.settings.source_language,
            target=self.settings.target_language,
            reconnects=self.stats.reconnects,
            polls=self.stats.ready_polls,
        )
        if self.lifetime.ready():
            task_status.started()

    async def _goodbye(self, conn: Connection) -> None:
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

    async def _watch_output(self, conn: Connection) -> None:
        """Drop a connection that takes speech and answers nothing (socket open, pongs coming,
        the task running, yet no transcript or speech back for ``output_stall_s`` of speech):
        the listener would hear no translation for the rest of the call."""
        base = self._config.palabra.output_stall_s
        if base is None:
            return
        while True:
            await trio.sleep(_STALL_CHECK_S)
            if conn.answered:
                self._stalls_in_a_row = 0
            limit = base * 2 ** min(self._stalls_in_a_row, _STALL_BACKOFF_MAX_DOUBLINGS)
            unanswered = conn.unanswered_speech_s
            if unanswered >= limit:
                self._stalls_in_a_row += 1
                self.stats.output_stalls += 1
                log.warning(
                    "palabra_output_stalled",
                    direction=self.direction.value,
                    unanswered_speech_s=round(unanswered, 2),
                    in_a_row=self._stalls_in_a_row,
                )
                msg = f"no transcript or speech back for {unanswered:.1f} s of speech"
                raise Dropped(msg, stalled=True)

    async def _ping(self, conn: Connection) -> None:
        palabra = self._config.palabra
        while True:
            await trio.sleep(palabra.ping_interval_s)
            try:
                with trio.fail_after(palabra.ping_timeout_s):
                    await conn.ws.ping()
            except trio.TooSlowError:
                msg = f"no pong within {palabra.ping_timeout_s} s"
                raise Dropped(msg) from None
