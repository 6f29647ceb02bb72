"""``PostgresBackend``: the transcript store in PostgreSQL, shared by every instance of a cluster.

psycopg 3's async API needs asyncio (https://www.psycopg.org/psycopg3/docs/advanced/async.html;
trio support is psycopg/psycopg#29, open), so the sync API runs in threads: the store's writer
thread owns one connection and writes each batch in one transaction, consecutive writes of one kind
as one ``executemany`` (pipelined since psycopg 3.1,
https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html). Reads borrow a connection from a
``psycopg_pool.ConnectionPool`` of at most ``read_pool`` connections, in trio worker threads.

Bounded everywhere: ``connect_timeout`` on every connection, ``statement_timeout`` on reads, a
pool wait of ``timeout_s``. A write on a broken connection reconnects first; a failed connect is a
retryable ``StoreWriteError`` (the store waits and tries the batch again).

Same tables and answers as SQLite (``migrations.py``); times are epoch seconds in ``DOUBLE
PRECISION``, so exports are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import attrs
import psycopg
from psycopg_pool import ConnectionPool

from callbridge.transcripts.migrations import migrate_postgresql
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

__all__ = ["PostgresBackend", "redact_url"]

_ALL_CALL_COLUMNS: Final = CALL_COLUMNS + CALL_EXTRA_COLUMNS
_UPSERT_UTTERANCE: Final = (
    f"INSERT INTO utterances ({', '.join(UTTERANCE_COLUMNS)}) "
    f"VALUES ({', '.join(f'%({c})s' for c in UTTERANCE_COLUMNS)}) "
    "ON CONFLICT (call_id, utterance_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, utterances.{c})" for c in UTTERANCE_COLUMNS[5:])
    + ", first_seen_at = LEAST(utterances.first_seen_at, EXCLUDED.first_seen_at)"
)
_UPSERT_CALL: Final = (
    f"INSERT INTO calls ({', '.join(_ALL_CALL_COLUMNS)}) "
    f"VALUES ({', '.join(f'%({c})s' for c in _ALL_CALL_COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _ALL_CALL_COLUMNS[1:])
)
_OLD_ENDED: Final = (
    "SELECT id FROM calls WHERE status = 'ended' AND COALESCE(ended_at, received_at) < %(cutoff)s"
)
_PRUNE: Final = (
    f"DELETE FROM utterances WHERE call_id IN ({_OLD_ENDED})",
    # Utterances whose call was never recorded (events without call_updated) age out too.
    "DELETE FROM utterances WHERE first_seen_at < %(cutoff)s "
    "AND call_id NOT IN (SELECT id FROM calls)",
)
_PRUNE_CALLS: Final = (
    "DELETE FROM calls WHERE status = 'ended' AND COALESCE(ended_at, received_at) < %(cutoff)s"
)


def redact_url(url: str) -> str:
    """``url`` without a password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


@attrs.define
class _PgWriter:
    url: str
    connect_timeout_s: int
    conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                self.conn.close()
            self.conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=self.connect_timeout_s
            )
        return self.conn

    def apply(self, writes: Sequence[Write]) -> int:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                return _apply(cur, writes)
        except psycopg.Error as exc:
            broken = self.conn is None or self.conn.closed or self.conn.broken
            retryable = broken or isinstance(exc, psycopg.OperationalError)
            raise StoreWriteError(str(exc), retryable=retryable) from exc

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _apply(cur: psycopg.Cursor[tuple[Any, ...]], writes: Sequence[Write]) -> int:
    pruned = 0
    for kind, run in groupby(writes, key=type):
        ops = list(run)
        if kind is CallRow:
            cur.executemany(_UPSERT_CALL, [dict(op.row) for op in ops if isinstance(op, CallRow)])
        elif kind is UtteranceRow:
            rows = [dict(op.row) for op in ops if isinstance(op, UtteranceRow)]
            cur.executemany(_UPSERT_UTTERANCE, rows)
        else:
            for op in ops:
                assert isinstance(op, Prune)
                args = {"cutoff": op.cutoff}
                for statement in _PRUNE:
                    cur.execute(statement, args)
                cur.execute(_PRUNE_CALLS, args)
                pruned += max(cur.rowcount, 0)
    return pruned


@attrs.define
class PostgresBackend:
    """See the module docstring. ``url``: a ``postgresql://`` URL or libpq conninfo string."""

    url: str
    timeout_s: float = 10.0
    read_pool: int = 4
    dialect: str = "postgresql"
    shared: bool = True
    _pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None

    @property
    def where(self) -> str:
        return redact_url(self.url)

    @property
    def _connect_timeout(self) -> int:
        # libpq takes whole seconds, and treats 1 as 2.
        return max(2, round(self.timeout_s))

    def prepare(self, *, close_owner: str | None, reason: str | None) -> tuple[list[int], int]:
        with psycopg.connect(
            self.url, autocommit=True, connect_timeout=self._connect_timeout
        ) as conn:
            applied = migrate_postgresql(conn)
            closed = 0
            if reason is not None:
                query = (
                    "UPDATE calls SET status = 'ended', end_reason = COALESCE(end_reason, %s), "
                    "ended_at = COALESCE(ended_at, updated_at) WHERE status != 'ended'"
                )
                args: tuple[Any, ...] = (reason,)
                if close_owner is not None:
                    query, args = query + " AND COALESCE(owner, '') = %s", (reason, close_owner)
                closed = max(conn.execute(query, args).rowcount, 0)
        self._open_pool()
        return applied, closed

    def _open_pool(self) -> None:
        timeout_ms = round(self.timeout_s * 1000)
        pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.read_pool,
            open=False,
            timeout=self.timeout_s,
            check=ConnectionPool.check_connection,
            name="transcripts-read",
            kwargs={
                "autocommit": True,
                "connect_timeout": self._connect_timeout,
                "options": f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
            },
        )
        pool.open(wait=True, timeout=self.timeout_s)
        self._pool = pool

    def open_writer(self) -> _PgWriter:
        writer = _PgWriter(self.url, self._connect_timeout)
        writer._connection()
        return writer

    def _read(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._pool is None:
            msg = "the PostgreSQL store is not open"
            raise RuntimeError(msg)
        with self._pool.connection() as conn:
            return conn.execute(query, args).fetchall()

    def list_calls(self, recent: int) -> list[dict[str, Any]]:
        columns = ", ".join(CALL_COLUMNS)
        active = self._read(
            f"SELECT {columns} FROM calls WHERE status != 'ended' ORDER BY received_at DESC"
        )
        ended = self._read(
            f"SELECT {columns} FROM calls WHERE status = 'ended' "
            "ORDER BY received_at DESC LIMIT %s",
            (recent,),
        )
        return [call_dict(r) for r in active] + [call_dict(r) for r in ended]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        calls = self._read(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE id = %s", (call_id,))
        rows = self._read(
            f"SELECT {', '.join(UTTERANCE_COLUMNS)} FROM utterances WHERE call_id = %s "
            "ORDER BY first_seen_at, row_order",
            (call_id,),
        )
        return call_result(calls[0] if calls else None, rows)

    def live_calls(self, owner: str | None) -> list[dict[str, Any]]:
        select = f"SELECT {', '.join(CALL_COLUMNS)}, owner FROM calls WHERE status != 'ended'"
        if owner is None:
            rows = self._read(select + " ORDER BY received_at")
        else:
            rows = self._read(
                select + " AND COALESCE(owner, '') = %s ORDER BY received_at", (owner,)
            )
        return [call_dict(r, with_owner=True) for r in rows]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
