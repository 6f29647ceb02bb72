"""``SqliteBackend``: the transcript store in one SQLite file (stdlib ``sqlite3``), WAL mode.

The single-instance default. The writer commits with ``synchronous=FULL``; readers open their own
short-lived connections, which WAL lets run beside the writer
(https://www.sqlite.org/wal.html).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from callbridge.transcripts.migrations import migrate_sqlite
from callbridge.transcripts.store_ops import (
    CALL_COLUMNS,
    CALL_EXTRA_COLUMNS,
    UTTERANCE_COLUMNS,
    CallRow,
    Prune,
    StoreWriteError,
    UtteranceRow,
    Write,
    call_dict,
    call_result,
)

__all__ = ["DB_NAME", "SqliteBackend"]

DB_NAME: Final = "transcripts.sqlite3"

_ALL_CALL_COLUMNS: Final = CALL_COLUMNS + CALL_EXTRA_COLUMNS
# Later pieces of an utterance only fill in what they know; a NULL never erases an earlier value.
_UPSERT_UTTERANCE: Final = (
    f"INSERT INTO utterances ({', '.join(UTTERANCE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in UTTERANCE_COLUMNS)}) "
    "ON CONFLICT (call_id, utterance_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in UTTERANCE_COLUMNS[4:])
    + ", first_seen_at = MIN(first_seen_at, excluded.first_seen_at)"
)
_UPSERT_CALL: Final = (
    f"INSERT INTO calls ({', '.join(_ALL_CALL_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _ALL_CALL_COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ALL_CALL_COLUMNS[1:])
)
_OLD_ENDED: Final = (
    "SELECT id FROM calls WHERE status = 'ended' AND COALESCE(ended_at, received_at) < ?"
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@attrs.define
class _SqliteWriter:
    conn: sqlite3.Connection

    def apply(self, writes: Sequence[Write]) -> int:
        conn = self.conn
        pruned = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in writes:
                if isinstance(op, CallRow):
                    conn.execute(_UPSERT_CALL, dict(op.row))
                elif isinstance(op, UtteranceRow):
                    conn.execute(_UPSERT_UTTERANCE, dict(op.row))
                else:
                    pruned += _prune(conn, op)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Never retried whole: a file locked past busy_timeout costs this batch, as before.
            raise StoreWriteError(str(exc), retryable=False) from exc
        return pruned

    def close(self) -> None:
        self.conn.close()


def _prune(conn: sqlite3.Connection, op: Prune) -> int:
    conn.execute(f"DELETE FROM utterances WHERE call_id IN ({_OLD_ENDED})", (op.cutoff,))
    # Utterances whose call was never recorded (events without call_updated) age out too.
    conn.execute(
        "DELETE FROM utterances WHERE first_seen_at < ? AND call_id NOT IN (SELECT id FROM calls)",
        (op.cutoff,),
    )
    return conn.execute(
        "DELETE FROM calls WHERE status = 'ended' AND COALESCE(ended_at, received_at) < ?",
        (op.cutoff,),
    ).rowcount


@attrs.define
class SqliteBackend:
    """See the module docstring. ``path`` is the database file."""

    path: Path
    dialect: str = "sqlite"
    shared: bool = False

    @property
    def where(self) -> str:
        return str(self.path)

    def prepare(self, *, close_owner: str | None, reason: str | None) -> tuple[list[int], int]:
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            applied = migrate_sqlite(conn)
            closed = 0
            if reason is not None:
                owner_clause = "" if close_owner is None else " AND COALESCE(owner, '') = ?"
                args: tuple[Any, ...] = (reason,) if close_owner is None else (reason, close_owner)
                closed = conn.execute(
                    "UPDATE calls SET status = 'ended', end_reason = COALESCE(end_reason, ?), "
                    "ended_at = COALESCE(ended_at, updated_at) WHERE status != 'ended'"
                    + owner_clause,
                    args,
                ).rowcount
        finally:
            conn.close()
        return applied, closed

    def open_writer(self) -> _SqliteWriter:
        conn = _connect(self.path)
        conn.execute("PRAGMA synchronous = FULL")
        return _SqliteWriter(conn)

    def _reader(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def list_calls(self, recent: int) -> list[dict[str, Any]]:
        columns = ", ".join(CALL_COLUMNS)
        conn = self._reader()
        try:
            active = conn.execute(
                f"SELECT {columns} FROM calls WHERE status != 'ended' ORDER BY received_at DESC"
            ).fetchall()
            ended = conn.execute(
                f"SELECT {columns} FROM calls WHERE status = 'ended' "
                "ORDER BY received_at DESC LIMIT ?",
                (recent,),
            ).fetchall()
        finally:
            conn.close()
        return [call_dict(r) for r in active] + [call_dict(r) for r in ended]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        conn = self._reader()
        try:
            call = conn.execute(
                f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE id = ?", (call_id,)
            ).fetchone()
            rows = conn.execute(
                f"SELECT {', '.join(UTTERANCE_COLUMNS)} FROM utterances WHERE call_id = ? "
                "ORDER BY first_seen_at, rowid",
                (call_id,),
            ).fetchall()
        finally:
            conn.close()
        return call_result(call, rows)

    def live_calls(self, owner: str | None) -> list[dict[str, Any]]:
        select = f"SELECT {', '.join(CALL_COLUMNS)}, owner FROM calls WHERE status != 'ended'"
        conn = self._reader()
        try:
            if owner is None:
                rows = conn.execute(select + " ORDER BY received_at").fetchall()
            else:
                rows = conn.execute(
                    select + " AND COALESCE(owner, '') = ? ORDER BY received_at", (owner,)
                ).fetchall()
        finally:
            conn.close()
        return [call_dict(r, with_owner=True) for r in rows]

    def close(self) -> None:
        """Nothing held between calls."""
