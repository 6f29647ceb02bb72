"""Versioned schema migrations for the transcript store, on SQLite and PostgreSQL alike.

Each ``Migration`` has a version, a name and its statements per dialect. A ``schema_version`` table
records what was applied. Every pending version runs in one transaction together with its
``schema_version`` row, under a lock that serialises migrators: SQLite's ``BEGIN IMMEDIATE``
(https://www.sqlite.org/lang_transaction.html), PostgreSQL's ``pg_advisory_xact_lock``
(https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS). So N
instances starting at once apply each version exactly once, and a rerun applies nothing.

Statements are kept apart (no splitting of SQL text on ``;``), and SQLite's ``executescript`` is
not used: it commits first (https://docs.python.org/3/library/sqlite3.html), which would break the
one-transaction-per-version rule.

Version 1 is the schema callbridge shipped before migrations existed, written with ``IF NOT
EXISTS``, so an older SQLite file adopts this scheme without a change.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    import psycopg

__all__ = ["MIGRATIONS", "Migration", "migrate_postgresql", "migrate_sqlite"]

# Any constant works; it only has to be the same in every instance (and unused by others).
_PG_LOCK_KEY: Final = 0x63616C6C  # "call"


@attrs.frozen
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]


_TIME_SQLITE: Final = "REAL"
_TIME_PG: Final = "DOUBLE PRECISION"


def _initial(time_type: str, row_order: str) -> tuple[str, ...]:
    return (
        "CREATE TABLE IF NOT EXISTS calls ("
        " id TEXT PRIMARY KEY,"
        " caller_sid TEXT, operator_sid TEXT, caller_number TEXT, operator_number TEXT,"
        " caller_language TEXT, operator_language TEXT,"
        " status TEXT NOT NULL,"
        f" received_at {time_type} NOT NULL, answered_at {time_type}, ended_at {time_type},"
        f" end_reason TEXT, updated_at {time_type} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS calls_received ON calls (received_at DESC)",
        "CREATE TABLE IF NOT EXISTS utterances ("
        f"{row_order}"
        " call_id TEXT NOT NULL, utterance_id TEXT NOT NULL,"
        f" direction TEXT NOT NULL, speaker TEXT NOT NULL, first_seen_at {time_type} NOT NULL,"
        " source_language TEXT, source_text TEXT, target_language TEXT, translation TEXT,"
        f" speech_end_at {time_type}, translated_at {time_type}, played_at {time_type},"
        " PRIMARY KEY (call_id, utterance_id))",
    )


_OWNER: Final = (
    # The instance running a live call: restart recovery and a dead instance's survivors find
    # its calls by it.
    "ALTER TABLE calls ADD COLUMN owner TEXT",
    "CREATE INDEX IF NOT EXISTS calls_live ON calls (status, owner)",
)

_LANGUAGE_SOURCES: Final = (
    # How each party's language was chosen (prefix, menu, detected, default, operator_speaks).
    "ALTER TABLE calls ADD COLUMN caller_language_source TEXT",
    "ALTER TABLE calls ADD COLUMN operator_language_source TEXT",
)

MIGRATIONS: Final = (
    Migration(
        1,
        "calls and utterances",
        # SQLite orders utterances of equal first_seen_at by rowid; PostgreSQL needs a column.
        sqlite=_initial(_TIME_SQLITE, ""),
        postgresql=_initial(_TIME_PG, " row_order BIGINT GENERATED ALWAYS AS IDENTITY,"),
    ),
    Migration(2, "calls.owner", sqlite=_OWNER, postgresql=_OWNER),
    Migration(3, "calls.*_language_source", sqlite=_LANGUAGE_SOURCES, postgresql=_LANGUAGE_SOURCES),
)

_VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {time} NOT NULL)"
)


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied (``[]`` when up to date).

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises ``sqlite3.Error`` (the
    failing version is rolled back; earlier ones stay applied).
    """
    applied: list[int] = []
    for migration in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_VERSION_TABLE.format(time=_TIME_SQLITE))
            done = conn.execute(
                "SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)
            ).fetchone()
            if done is None:
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
                applied.append(migration.version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied


def migrate_postgresql(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Apply pending migrations, each in its own transaction under an advisory lock.

    Raises ``psycopg.Error`` (the failing version is rolled back; earlier ones stay applied).
    """
    applied: list[int] = []
    for migration in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            conn.execute(_VERSION_TABLE.format(time=_TIME_PG))
            done = conn.execute(
                "SELECT 1 FROM schema_version WHERE version = %s", (migration.version,)
            ).fetchone()
            if done is not None:
                continue
            for statement in migration.postgresql:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )
            applied.append(migration.version)
    return applied
