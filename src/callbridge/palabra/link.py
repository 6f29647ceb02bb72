"""One Palabra translation direction over one WebSocket at a time, on trio.

``open_palabra_link(config, direction, http)`` connects (API key or legacy session), sends
``set_task``, waits until the task runs, and yields a ``PalabraLink``: ``feed()`` 24 kHz PCM in,
``events`` (transcripts, translated speech, detected languages, warnings, errors) out, and
``update_task()`` to change the running task (a caller who switched language) without dropping it.

The link is assembled from parts with one job each:

- ``sender.py`` ``LinkInput``: the bounded input buffer and the paced sender (real-time chunks,
  real-time silence when nothing was fed, so Palabra's 10 s ``SERVICE_TIMEOUT`` never fires);
- ``reader.py`` ``LinkReader``: frames into events, readiness and end of stream noticed;
- ``outlet.py`` ``EventOutlet``: the bounded ``events`` channel and its full-queue policy;
- ``supervisor.py`` ``ConnectionSupervisor``: connections, readiness, pings, reconnects within
  ``palabra.reconnect_attempts`` and ``palabra.reconnect_budget_s``, the goodbye;
- ``lifetime.py`` ``LinkLifetime``: the link's one cancel scope and its transitions.

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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import httpx
import numpy as np
import trio
from numpy.typing import NDArray

from callbridge.config import Config
from callbridge.palabra.connection import Connector
from callbridge.palabra.events import PalabraEvent
from callbridge.palabra.failures import ReconnectBudget, sole_leaf
from callbridge.palabra.lifetime import LinkLifetime
from callbridge.palabra.outlet import EventOutlet
from callbridge.palabra.protocol import TaskSettings
from callbridge.palabra.reader import LinkReader
from callbridge.palabra.sender import LinkInput
from callbridge.palabra.stats import LinkStats
from callbridge.palabra.supervisor import ConnectionSupervisor
from callbridge.palabra.transport import CLOSE_GRACE_S, websocket_connector
from callbridge.roles import Direction

__all__ = ["Connector", "LinkStats", "PalabraLink", "open_palabra_link", "websocket_connector"]


@attrs.define(eq=False)
class PalabraLink:
    """A ready translation link for one direction (see the module docstring).

    ``feed`` never blocks. ``events`` is bounded (256); the consumer should read it promptly.
    Full-queue policy: transcripts, warnings and errors are dropped and counted
    (``stats.events_dropped``) at once; a speech chunk waits up to 2 s for room and is then
    dropped, counted (``stats.speech_dropped``) and logged at warning level, never silently.
    ``events`` ends (``EndOfChannel``) when the link ends."""

    direction: Direction
    events: trio.MemoryReceiveChannel[PalabraEvent]
    stats: LinkStats
    _config: Config
    _input: LinkInput
    _outlet: EventOutlet
    _lifetime: LinkLifetime
    _supervisor: ConnectionSupervisor

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
        stats, lifetime = LinkStats(), LinkLifetime()
        outlet, events = EventOutlet.open(direction, stats)
        feeder = LinkInput.create(
            direction, stats, chunk_ms=palabra.chunk_ms, buffer_ms=palabra.input_buffer_ms
        )
        supervisor = ConnectionSupervisor(
            direction=direction,
            settings=settings or TaskSettings.resolve(config, direction),
            stats=stats,
            lifetime=lifetime,
            input=feeder,
            outlet=outlet,
            reader=LinkReader(
                direction, stats, outlet, lambda: supervisor.settings, lambda: lifetime.is_closing
            ),
            config=config,
            http=http,
            connect=connect,
            budget=ReconnectBudget(palabra.reconnect_attempts, palabra.reconnect_budget_s),
        )
        return cls(direction, events, stats, config, feeder, outlet, lifetime, supervisor)

    @property
    def settings(self) -> TaskSettings:
        """The task in force (what ``update_task`` last set)."""
        return self._supervisor.settings

    @property
    def buffered_ms(self) -> float:
        """Audio fed and not yet sent, in ms."""
        return self._input.buffered_ms

    def feed(self, pcm24: NDArray[np.int16]) -> bool:
        """Queue 24 kHz mono PCM of any length for sending. Never blocks. Returns False (and
        counts a drop) when the buffer is full or the link is closing."""
        return self._input.feed(pcm24)

    async def update_task(self, settings: TaskSettings) -> None:
        """Run ``settings`` from now on without dropping the link: e.g. the caller pressed ``*3``
        and speaks another language (``settings.with_languages(...)``).

        Sends ``set_task`` again on the live connection, which Palabra applies "without
        interrupting the stream" (https://docs.palabra.ai, task breakdown) and acknowledges
        with ``task_status`` event
        ``updated`` (or ``unchanged``). Audio fed meanwhile keeps flowing. Waits, if needed,
        until 2 s after the previous ``set_task`` (Palabra's rate limit). While the link is
        reconnecting the new settings simply become the task the next connection sends.

        Error handling: a connection that drops during the send is left to the reconnect, which
        sends the new task; a task Palabra refuses arrives as a ``ServerError`` event
        (``VALIDATION_ERROR``) and the previous task keeps running. ``trio.ClosedResourceError``
        once the link is closing.
        """
        if self._lifetime.is_closing:
            msg = f"Palabra link {self.direction.value} is closing"
            raise trio.ClosedResourceError(msg)
        await self._supervisor.update_task(settings)

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._lifetime.run(lambda: self._supervisor.run(task_status))
        finally:
            self._outlet.close()

    def end_by(self, deadline: float) -> None:
        """Cut the goodbye at ``deadline`` (trio time) at the latest, whatever
        ``palabra.end_timeout_s`` says. May be called before or during the goodbye."""
        self._lifetime.end_by(deadline)

    async def _shutdown(self) -> None:
        self._input.close()
        await self._lifetime.close(self._config.palabra.end_timeout_s + CLOSE_GRACE_S)


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
