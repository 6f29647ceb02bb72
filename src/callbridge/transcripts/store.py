"""``TranscriptStore``: calls and final utterances in SQLite, written by one thread off the event loop.

Writes go through a bounded ``queue.Queue`` to a single writer thread that owns the only write
connection. The writer takes whatever is queued (up to ``_BATCH_MAX`` operations), applies it in one
transaction and commits straight away, so a write is on disk (WAL, ``synchronous=FULL``) a few
milliseconds after it was queued: a SIGKILL loses at most what was queued in that instant, far less
than the one second we promise. Bursts batch themselves, since the queue fills while a commit runs.

Reads run in trio worker threads, each on its own short-lived connection (WAL lets them run beside
the writer); ``flush()`` first, so a read sees every write queued before it.

Resource handling: ``start()`` opens the database and starts the writer; ``close()`` queues a stop
after everything already queued and joins the thread, so a clean shutdown loses nothing.

Error handling: a full queue drops the write (logged, counted in ``stats``) instead of blocking the
caller, who may be on the audio path. A failing batch is rolled back and retried one write at a
time, so only the bad write is lost (logged, counted); the writer carries on.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import trio

from callbridge.log import get_logger

__all__ = [
    "CALL_COLUMNS",
    "UTTERANCE_COLUMNS",
    "StoreStats",
    "TranscriptStore",
    "get_call_sync",
    "list_calls_sync",
]

log = get_logger("callbridge.transcripts.store")

T = TypeVar("T")

DB_NAME: Final = "transcripts.sqlite3"
# Operations the queue holds before writes are dropped. At a few events per second per call this
# is minutes of backlog; a writer that far behind has a disk problem no buffer would fix.
_QUEUE_MAX: Final = 20_000
# Operations applied per transaction; bounds how long one commit holds the write lock.
_BATCH_MAX: Final = 500
# Concurrent read threads (each opens its own connection).
_READERS: Final = 4
# 2: calls gained caller_language_source and operator_language_source (added to older files).
_SCHEMA_VERSION: Final = 2
_DAY_S: Final = 86_400.0

CALL_COLUMNS: Final = (
    "id",
    "caller_sid",
    "operator_sid",
    "caller_number",
    "operator_number",
    "caller_language",
    "operator_language",
    "status",
    "received_at",
    "answered_at",
    "ended_at",
    "end_reason",
    "caller_language_source",
    "operator_language_source",
)
UTTERANCE_COLUMNS: Final = (
    "call_id",
    "utterance_id",
    "direction",
    "speaker",
    "first_seen_at",
    "source_language",
    "source_text",
    "target_language",
    "translation",
    "speech_end_at",
    "translated_at",
    "played_at",
)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    caller_sid TEXT, operator_sid TEXT, caller_number TEXT, operator_number TEXT,
    caller_language TEXT, operator_language TEXT,
    status TEXT NOT NULL,
    received_at REAL NOT NULL, answered_at REAL, ended_at REAL, end_reason TEXT,
    updated_at REAL NOT NULL,
    caller_language_source TEXT, operator_language_source TEXT
);
CREATE INDEX IF NOT EXISTS calls_received ON calls (received_at DESC);
CREATE TABLE IF NOT EXISTS utterances (
    call_id TEXT NOT NULL, utterance_id TEXT NOT NULL,
    direction TEXT NOT NULL, speaker TEXT NOT NULL, first_seen_at REAL NOT NULL,
    source_language TEXT, source_text TEXT, target_language TEXT, translation TEXT,
    speech_end_at REAL, translated_at REAL, played_at REAL,
    PRIMARY KEY (call_id, utterance_id)
);
"""

# Later pieces of an utterance only fill in what they know; a NULL never erases an earlier value.
_UPSERT_UTTERANCE: Final = (
    f"INSERT INTO utterances ({', '.join(UTTERANCE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in UTTERANCE_COLUMNS)}) "
    "ON CONFLICT (call_id, utterance_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in UTTERANCE_COLUMNS[4:])
    + ", first_seen_at = MIN(first_seen_at, excluded.first_seen_at)"
)
_UPSERT_CALL: Final = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}, updated_at) "
    f"VALUES ({', '.join(':' + c for c in CALL_COLUMNS)}, :updated_at) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[1:])
    + ", updated_at = excluded.updated_at"
)


@attrs.frozen
class _Call:
    row: Mapping[str, Any]


@attrs.frozen
class _Utterance:
    row: Mapping[str, Any]


@attrs.frozen
class _Prune:
    cutoff: float


@attrs.frozen
class _Barrier:
    """Committed-up-to-here marker; ``done`` runs on the writer thread after the commit."""

    done: Callable[[], None]


@attrs.frozen
class _Stop:
    pass


_Op = _Call | _Utterance | _Prune | _Barrier | _Stop


@attrs.define
class StoreStats:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    pruned_calls: int = 0


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@attrs.define
class TranscriptStore:
    """See the module docstring. Build with ``TranscriptStore.at(state_dir)``."""

    path: Path
    stats: StoreStats = attrs.Factory(StoreStats)
    _queue: queue.Queue[_Op] = attrs.field(factory=lambda: queue.Queue(_QUEUE_MAX))
    _thread: threading.Thread | None = None
    _readers: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(_READERS))

    @classmethod
    def at(cls, state_dir: str | Path) -> TranscriptStore:
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(path=directory / DB_NAME)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, *, interrupted_reason: str = "interrupted") -> None:
        """Create the schema, close out calls a previous process left open, start the writer.

        Calls still "ringing"/"connected" in the file belong to a process that died: no call
        survives its daemon, so they are marked ended with ``interrupted_reason``.
        """
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            closed = conn.execute(
                "UPDATE calls SET status = 'ended', end_reason = COALESCE(end_reason, ?), "
                "ended_at = COALESCE(ended_at, updated_at) WHERE status != 'ended'",
                (interrupted_reason,),
            ).rowcount
        finally:
            conn.close()
        if closed:
            log.warning("store_closed_interrupted_calls", calls=closed, path=str(self.path))
        self._thread = threading.Thread(target=self._writer, name="transcript-store", daemon=True)
        self._thread.start()
        log.info("store_open", path=str(self.path))

    async def close(self) -> None:
        """Write everything queued so far, then stop the writer. Shielded: always completes."""
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        with trio.CancelScope(shield=True):
            # A blocking put: the stop must not be dropped even when the queue is full.
            await trio.to_thread.run_sync(self._queue.put, _Stop())
            await trio.to_thread.run_sync(thread.join)
        log.info("store_closed", **attrs.asdict(self.stats))

    # --- writes (non-blocking, any thread) -------------------------------------------------------

    def save_call(self, snapshot: Mapping[str, Any]) -> None:
        row = {c: snapshot.get(c) for c in CALL_COLUMNS}
        row["updated_at"] = time.time()
        self._put(_Call(row))

    def save_utterance(self, row: Mapping[str, Any]) -> None:
        self._put(_Utterance({c: row.get(c) for c in UTTERANCE_COLUMNS}))

    def prune(self, retention_days: float, *, now: float | None = None) -> None:
        """Queue deletion of calls (and their utterances) older than ``retention_days``."""
        cutoff = (time.time() if now is None else now) - retention_days * _DAY_S
        self._put(_Prune(cutoff))

    def _put(self, op: _Op) -> None:
        if self._thread is None:
            msg = "transcript store is not running"
            raise RuntimeError(msg)
        try:
            self._queue.put_nowait(op)
        except queue.Full:
            self.stats.dropped += 1
            # First drop and then every 100th: a stuck disk must not flood the log too.
            if self.stats.dropped % 100 == 1:
                log.error("store_queue_full", dropped=self.stats.dropped, op=type(op).__name__)
            return
        self.stats.queued += 1

    async def flush(self) -> None:
        """Return once every write queued before this call is committed."""
        if self._thread is None:
            return
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        barrier = _Barrier(lambda: token.run_sync_soon(done.set))
        try:
            self._queue.put_nowait(barrier)
        except queue.Full:
            await trio.to_thread.run_sync(self._queue.put, barrier, abandon_on_cancel=True)
        await done.wait()

    # --- reads -----------------------------------------------------------------------------------

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``query`` on a fresh connection in a worker thread, after a ``flush``."""
        await self.flush()
        return await trio.to_thread.run_sync(self._read_sync, query, limiter=self._readers)

    def _read_sync(self, query: Callable[[sqlite3.Connection], T]) -> T:
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA query_only = ON")
            return query(conn)
        finally:
            conn.close()

    async def list_calls(self, recent: int) -> list[dict[str, Any]]:
        """Calls not yet ended, then the ``recent`` latest ended ones; newest first in each."""
        return await self.read(lambda conn: list_calls_sync(conn, recent))

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        """``{"call": ..., "utterances": [...]}`` or ``None`` when the id is unknown."""
        return await self.read(lambda conn: get_call_sync(conn, call_id))

    # --- the writer thread -----------------------------------------------------------------------

    def _writer(self) -> None:
        conn = _connect(self.path)
        conn.execute("PRAGMA synchronous = FULL")
        try:
            while True:
                batch = self._next_batch()
                self._apply(conn, batch)
                if isinstance(batch[-1], _Stop):
                    return
        finally:
            conn.close()

    def _next_batch(self) -> list[_Op]:
        """Block for one operation, then take what else is queued, up to a barrier or stop."""
        batch = [self._queue.get()]
        while len(batch) < _BATCH_MAX and not isinstance(batch[-1], _Barrier | _Stop):
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _apply(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        writes = [op for op in batch if not isinstance(op, _Barrier | _Stop)]
        if writes and not self._commit(conn, writes):
            # One bad row must not cost its neighbours: retry the batch one write at a time.
            for op in writes:
                if not self._commit(conn, [op]):
                    self.stats.failed_writes += 1
        for marker in batch:
            if isinstance(marker, _Barrier):
                marker.done()

    def _commit(self, conn: sqlite3.Connection, writes: Sequence[_Op]) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in writes:
                self._execute(conn, op)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(writes) == 1:
                log.error("store_write_failed", error=str(exc), op=type(writes[0]).__name__)
            return False
        self.stats.written += len(writes)
        return True

    def _execute(self, conn: sqlite3.Connection, op: _Op) -> None:
        if isinstance(op, _Call):
            conn.execute(_UPSERT_CALL, dict(op.row))
        elif isinstance(op, _Utterance):
            conn.execute(_UPSERT_UTTERANCE, dict(op.row))
        elif isinstance(op, _Prune):
            self._prune(conn, op.cutoff)

    def _prune(self, conn: sqlite3.Connection, cutoff: float) -> None:
        old = "SELECT id FROM calls WHERE status = 'ended' AND COALESCE(ended_at, received_at) < ?"
        conn.execute(f"DELETE FROM utterances WHERE call_id IN ({old})", (cutoff,))
        # Utterances whose call was never recorded (events without call_updated) age out too.
        conn.execute(
            "DELETE FROM utterances WHERE first_seen_at < ? "
            "AND call_id NOT IN (SELECT id FROM calls)",
            (cutoff,),
        )
        removed = conn.execute(
            "DELETE FROM calls WHERE status = 'ended' AND COALESCE(ended_at, received_at) < ?",
            (cutoff,),
        ).rowcount
        if removed:
            self.stats.pruned_calls += removed
            log.info("store_pruned", calls=removed, cutoff=cutoff)


# Columns later schema versions added to ``calls``; a file from before gets them (NULL in old rows).
_ADDED_CALL_COLUMNS: Final = ("caller_language_source", "operator_language_source")


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    for column in _ADDED_CALL_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE calls ADD COLUMN {column} TEXT")
            log.info("store_column_added", table="calls", column=column)


def _call_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {c: row[c] for c in CALL_COLUMNS}


def list_calls_sync(conn: sqlite3.Connection, recent: int) -> list[dict[str, Any]]:
    columns = ", ".join(CALL_COLUMNS)
    active = conn.execute(
        f"SELECT {columns} FROM calls WHERE status != 'ended' ORDER BY received_at DESC"
    ).fetchall()
    ended = conn.execute(
        f"SELECT {columns} FROM calls WHERE status = 'ended' ORDER BY received_at DESC LIMIT ?",
        (recent,),
    ).fetchall()
    return [_call_dict(r) for r in active] + [_call_dict(r) for r in ended]


def get_call_sync(conn: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    columns = ", ".join(CALL_COLUMNS)
    call = conn.execute(f"SELECT {columns} FROM calls WHERE id = ?", (call_id,)).fetchone()
    rows = conn.execute(
        f"SELECT {', '.join(UTTERANCE_COLUMNS)} FROM utterances WHERE call_id = ? "
        "ORDER BY first_seen_at, rowid",
        (call_id,),
    ).fetchall()
    if call is None and not rows:
        return None
    return {
        "call": _call_dict(call) if call is not None else None,
        "utterances": [dict(zip(UTTERANCE_COLUMNS, tuple(r), strict=True)) for r in rows],
    }
