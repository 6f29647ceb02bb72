"""``TranscriptStore``: calls and final utterances, written by one thread off the event loop.

The database is a ``StoreBackend``: SQLite under ``server.state_dir`` by default
(``sqlite_store.py``), or PostgreSQL shared by a cluster (``postgres_store.py``). Build one with
``open_store_for(config)``, ``TranscriptStore.at(state_dir)`` or ``TranscriptStore.postgres(url)``.

Writes go through a bounded ``queue.Queue`` to a single writer thread that owns the only write
connection. The writer takes whatever is queued (up to ``_BATCH_MAX`` operations), applies it in one
transaction and commits straight away, so a write is durable a few milliseconds after it was
queued: a SIGKILL loses at most what was queued in that instant. Bursts batch themselves, since the
queue fills while a commit runs.

Reads run in trio worker threads (at most ``_READERS``), after ``flush()``, so a read sees every
write queued before it.

Resource handling: ``start()`` migrates the schema and starts the writer; ``close()`` queues a stop
after everything already queued and joins the thread, so a clean shutdown loses nothing.

Error handling: a full queue drops the write (logged, counted in ``stats``) instead of blocking the
caller, who may be on the audio path. A batch with a bad row is rolled back and retried one write
at a time, so only the bad write is lost (logged, counted). A batch that failed because the
database is away (PostgreSQL down) is retried every ``_RETRY_S`` until it goes through. A writer
thread that died, or has made no progress for ``timeout_s`` (wedged), is noticed: reads and
``flush`` raise ``StoreUnavailable`` saying which, writes are dropped and counted, and ``close``
gives up after ``timeout_s`` with an error log instead of hanging the shutdown.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import trio

from callbridge.log import get_logger
from callbridge.transcripts.sqlite_store import DB_NAME, SqliteBackend
from callbridge.transcripts.store_ops import (
    CALL_COLUMNS,
    UTTERANCE_COLUMNS,
    Barrier,
    CallRow,
    Op,
    Prune,
    Stop,
    StoreBackend,
    StoreWriteError,
    UtteranceRow,
    Write,
    WriterConnection,
)

__all__ = [
    "CALL_COLUMNS",
    "DB_NAME",
    "UTTERANCE_COLUMNS",
    "StoreStats",
    "StoreUnavailable",
    "TranscriptStore",
]

log = get_logger("callbridge.transcripts.store")

T = TypeVar("T")

# Operations the queue holds before writes are dropped. At a few events per second per call this
# is minutes of backlog; a writer that far behind has a disk problem no buffer would fix.
_QUEUE_MAX: Final = 20_000
# Operations applied per transaction; bounds how long one commit holds the write lock.
_BATCH_MAX: Final = 500
# Concurrent read threads.
_READERS: Final = 4
# Wait between tries of a batch while the database is away.
_RETRY_S: Final = 1.0
_DAY_S: Final = 86_400.0

# Kept under their old names for importers of this module.
_Barrier = Barrier


class StoreUnavailable(Exception):
    """The store's writer thread is dead or wedged; the message says which and since when."""


@attrs.define
class StoreStats:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    pruned_calls: int = 0
    retried_batches: int = 0


@attrs.define
class TranscriptStore:
    """See the module docstring. ``owner`` is this instance's id, stored with every call."""

    backend: StoreBackend
    owner: str = ""
    timeout_s: float = 10.0
    stats: StoreStats = attrs.Factory(StoreStats)
    _queue: queue.Queue[Op] = attrs.field(factory=lambda: queue.Queue(_QUEUE_MAX))
    _thread: threading.Thread | None = None
    _readers: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(_READERS))
    # Why the writer thread died (repr of the exception), once it has.
    _died: str | None = None

    @classmethod
    def at(cls, state_dir: str | Path, **kwargs: Any) -> TranscriptStore:
        """SQLite in ``state_dir/transcripts.sqlite3`` (the directory is created)."""
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(SqliteBackend(directory / DB_NAME), **kwargs)

    @classmethod
    def postgres(cls, url: str, **kwargs: Any) -> TranscriptStore:
        """PostgreSQL at ``url`` (``postgresql://user@host:5432/db``), shared by a cluster."""
        from callbridge.transcripts.postgres_store import PostgresBackend

        return cls(PostgresBackend(url, timeout_s=kwargs.get("timeout_s", 10.0)), **kwargs)

    @property
    def path(self) -> Path:
        """The SQLite file (SQLite stores only)."""
        if not isinstance(self.backend, SqliteBackend):
            msg = f"a {self.backend.dialect} store has no file"
            raise AttributeError(msg)
        return self.backend.path

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, *, interrupted_reason: str | None = "interrupted") -> None:
        """Migrate the schema, close out calls a previous process left open, start the writer.

        Blocking: run it in a worker thread from trio. Calls still "ringing"/"connected" belong to
        a process that died (no call survives its daemon), so they are marked ended with
        ``interrupted_reason``: all of them on SQLite, on a shared store only this ``owner``'s.
        ``interrupted_reason=None`` leaves them for restart recovery (``own_live_calls``).
        """
        close_owner = self.owner if self.backend.shared else None
        applied, closed = self.backend.prepare(close_owner=close_owner, reason=interrupted_reason)
        if applied:
            log.info("store_migrated", versions=applied, store=self.backend.dialect)
        if closed:
            log.warning("store_closed_interrupted_calls", calls=closed, where=self.backend.where)
        writer = self.backend.open_writer()
        self._thread = threading.Thread(
            target=self._writer, args=(writer,), name="transcript-store", daemon=True
        )
        self._thread.start()
        log.info("store_open", store=self.backend.dialect, where=self.backend.where)

    async def close(self) -> None:
        """Write everything queued so far, then stop the writer. Shielded: always completes, in
        at most about twice ``timeout_s`` even when the writer is dead or wedged."""
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        with trio.CancelScope(shield=True):
            joined = await trio.to_thread.run_sync(self._stop_and_join, thread)
            await trio.to_thread.run_sync(self.backend.close)
        if joined:
            log.info("store_closed", **attrs.asdict(self.stats))
        else:
            log.error(
                "store_close_timed_out",
                error=self._problem(),
                unwritten=self._queue.qsize(),
                timeout_s=self.timeout_s,
                **attrs.asdict(self.stats),
            )

    def _stop_and_join(self, thread: threading.Thread) -> bool:
        try:
            # Blocking: the stop must not be dropped even when the queue is full.
            self._queue.put(Stop(), timeout=self.timeout_s)
        except queue.Full:
            return False
        thread.join(self.timeout_s)
        return not thread.is_alive()

    # --- writes (non-blocking, any thread) -------------------------------------------------------

    def save_call(self, snapshot: Mapping[str, Any]) -> None:
        """Upsert a call (``CallRecord.snapshot()``); an ``owner`` in it wins over ours."""
        row = {c: snapshot.get(c) for c in CALL_COLUMNS}
        row["updated_at"] = time.time()
        row["owner"] = snapshot.get("owner") or self.owner or None
        self._put(CallRow(row))

    def save_utterance(self, row: Mapping[str, Any]) -> None:
        self._put(UtteranceRow({c: row.get(c) for c in UTTERANCE_COLUMNS}))

    def prune(self, retention_days: float, *, now: float | None = None) -> None:
        """Queue deletion of calls (and their utterances) older than ``retention_days``."""
        cutoff = (time.time() if now is None else now) - retention_days * _DAY_S
        self._put(Prune(cutoff))

    def _put(self, op: Op) -> None:
        if self._thread is None:
            msg = "transcript store is not running"
            raise RuntimeError(msg)
        if self._died is not None:
            self._drop(op, reason="writer_dead")
            return
        try:
            self._queue.put_nowait(op)
        except queue.Full:
            self._drop(op, reason="queue_full")
            return
        self.stats.queued += 1

    def _drop(self, op: Op, *, reason: str) -> None:
        self.stats.dropped += 1
        # First drop and then every 100th: a stuck disk must not flood the log too.
        if self.stats.dropped % 100 == 1:
            log.error(
                "store_queue_full" if reason == "queue_full" else "store_write_dropped",
                reason=reason,
                dropped=self.stats.dropped,
                op=type(op).__name__,
            )

    async def flush(self) -> None:
        """Return once every write queued before this call is committed.

        Raises ``StoreUnavailable`` when the writer is dead, or commits nothing for ``timeout_s``.
        """
        if self._thread is None:
            return
        if self._died is not None:
            raise StoreUnavailable(self._problem())
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        barrier = Barrier(lambda: token.run_sync_soon(done.set))
        with trio.move_on_after(self.timeout_s):
            try:
                self._queue.put_nowait(barrier)
            except queue.Full:
                await trio.to_thread.run_sync(self._queue.put, barrier, abandon_on_cancel=True)
            await done.wait()
            return
        raise StoreUnavailable(self._problem())

    def health(self) -> str | None:
        """``None`` while the writer thread runs, else why not (for readiness checks)."""
        if self._thread is None:
            return "transcript store is not running"
        return self._problem() if self._died is not None else None

    def _problem(self) -> str:
        if self._died is not None:
            return f"transcript store writer died: {self._died}"
        return (
            f"transcript store writer ({self.backend.dialect}) committed nothing for "
            f"{self.timeout_s:g} s: wedged, or the database is away"
        )

    # --- reads -----------------------------------------------------------------------------------

    async def _read(self, query: Callable[[], T]) -> T:
        await self.flush()
        with trio.move_on_after(self.timeout_s):
            return await trio.to_thread.run_sync(
                query, limiter=self._readers, abandon_on_cancel=True
            )
        msg = f"transcript store read ({self.backend.dialect}) took over {self.timeout_s:g} s"
        raise StoreUnavailable(msg)

    async def list_calls(self, recent: int) -> list[dict[str, Any]]:
        """Calls not yet ended, then the ``recent`` latest ended ones; newest first in each."""
        return await self._read(lambda: self.backend.list_calls(recent))

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        """``{"call": ..., "utterances": [...]}`` or ``None`` when the id is unknown."""
        return await self._read(lambda: self.backend.get_call(call_id))

    async def live_calls(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Calls not ended (of ``owner``, or every instance's), oldest first: ``CALL_COLUMNS``
        plus ``owner``. Restart recovery ends them at Twilio, then marks them ended."""
        return await self._read(lambda: self.backend.live_calls(owner))

    async def own_live_calls(self) -> list[dict[str, Any]]:
        """This instance's calls not ended: every one on SQLite (one instance by definition),
        those with our ``owner`` on a shared store."""
        return await self.live_calls(self.owner if self.backend.shared else None)

    # --- the writer thread -----------------------------------------------------------------------

    def _writer(self, conn: WriterConnection) -> None:
        try:
            while True:
                batch = self._next_batch()
                self._apply(conn, batch)
                if isinstance(batch[-1], Stop):
                    return
        except BaseException as exc:  # noticed by flush/reads/close, and logged right away
            self._died = repr(exc)
            log.exception("store_writer_died", error=repr(exc))
        finally:
            conn.close()

    def _next_batch(self) -> list[Op]:
        """Block for one operation, then take what else is queued, up to a barrier or stop."""
        batch = [self._queue.get()]
        while len(batch) < _BATCH_MAX and not isinstance(batch[-1], Barrier | Stop):
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _apply(self, conn: WriterConnection, batch: list[Op]) -> None:
        writes: list[Write] = [op for op in batch if isinstance(op, CallRow | UtteranceRow | Prune)]
        if writes and not self._commit(conn, writes):
            # One bad row must not cost its neighbours: retry the batch one write at a time.
            for op in writes:
                if not self._commit(conn, [op]):
                    self.stats.failed_writes += 1
        for marker in batch:
            if isinstance(marker, Barrier):
                # Whoever waited for it may have gone with their trio run.
                with contextlib.suppress(trio.RunFinishedError):
                    marker.done()

    def _commit(self, conn: WriterConnection, writes: Sequence[Write]) -> bool:
        while True:
            try:
                pruned = conn.apply(writes)
            except StoreWriteError as exc:
                if exc.retryable:
                    # The database is away: this batch waits for it (the queue absorbs new
                    # writes meanwhile; flush() reports the stall after timeout_s).
                    self.stats.retried_batches += 1
                    if self.stats.retried_batches % 30 == 1:
                        log.error("store_unreachable", error=str(exc), retry_s=_RETRY_S)
                    time.sleep(_RETRY_S)
                    continue
                if len(writes) == 1:
                    log.error("store_write_failed", error=str(exc), op=type(writes[0]).__name__)
                return False
            break
        self.stats.written += len(writes)
        if pruned:
            self.stats.pruned_calls += pruned
            log.info("store_pruned", calls=pruned)
        return True
