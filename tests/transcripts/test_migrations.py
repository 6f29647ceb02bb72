"""Schema migrations: each version applied once, reruns apply nothing, concurrent migrators agree."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from callbridge.transcripts.migrations import MIGRATIONS, migrate_postgresql, migrate_sqlite

ALL = [m.version for m in MIGRATIONS]


def sqlite_conn(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)


def run_concurrently(migrate: Callable[[], list[int]], n: int = 4) -> list[list[int]]:
    results: list[list[int]] = []
    barrier = threading.Barrier(n)

    def one() -> None:
        barrier.wait()
        results.append(migrate())

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


class TestSqlite:
    def test_applied_once_then_nothing(self, tmp_path: Path) -> None:
        conn = sqlite_conn(tmp_path / "t.sqlite3")
        assert migrate_sqlite(conn) == ALL
        assert migrate_sqlite(conn) == []
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [v for (v,) in versions] == ALL
        columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
        assert "owner" in columns

    def test_a_file_from_before_migrations_is_adopted_with_its_data(self, tmp_path: Path) -> None:
        conn = sqlite_conn(tmp_path / "old.sqlite3")
        conn.execute(
            "CREATE TABLE calls (id TEXT PRIMARY KEY, caller_sid TEXT, operator_sid TEXT,"
            " caller_number TEXT, operator_number TEXT, caller_language TEXT,"
            " operator_language TEXT, status TEXT NOT NULL, received_at REAL NOT NULL,"
            " answered_at REAL, ended_at REAL, end_reason TEXT, updated_at REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO calls (id, status, received_at, updated_at) VALUES ('c', 'ended', 1, 1)"
        )
        conn.execute("PRAGMA user_version = 1")
        assert migrate_sqlite(conn) == ALL
        assert conn.execute("SELECT id, owner FROM calls").fetchall() == [("c", None)]

    def test_concurrent_migrators_apply_each_version_once(self, tmp_path: Path) -> None:
        path = tmp_path / "t.sqlite3"
        results = run_concurrently(lambda: migrate_sqlite(sqlite_conn(path)))
        assert sorted(v for r in results for v in r) == ALL
        count = sqlite_conn(path).execute("SELECT COUNT(*) FROM schema_version").fetchone()
        assert count == (len(ALL),)


class TestPostgres:
    def test_applied_once_then_nothing_and_concurrently(
        self, pg_database: Callable[[], str]
    ) -> None:
        url = pg_database()
        with psycopg.connect(url, autocommit=True) as conn:
            assert migrate_postgresql(conn) == ALL
            assert migrate_postgresql(conn) == []

        fresh = pg_database()

        def migrate() -> list[int]:
            with psycopg.connect(fresh, autocommit=True) as conn:
                return migrate_postgresql(conn)

        results = run_concurrently(migrate)
        assert len(results) == 4
        assert sorted(v for r in results for v in r) == ALL
        with psycopg.connect(fresh, autocommit=True) as conn:
            rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [v for (v,) in rows] == ALL

    def test_a_failing_version_is_rolled_back_whole(
        self, pg_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from callbridge.transcripts import migrations

        broken = migrations.Migration(
            99, "broken", sqlite=(), postgresql=("CREATE TABLE half (x int)", "SELEC nonsense")
        )
        monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.SyntaxError):
                migrations.migrate_postgresql(conn)
            tables = conn.execute("SELECT to_regclass('half')").fetchone()
            versions = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        assert tables == (None,)
        assert versions == (max(ALL),)
