"""Throwaway PostgreSQL and Redis servers for the tests (a pytest plugin, see tests/conftest.py).

Both come from Debian's packages (``postgresql``, ``redis-server``; ``.ci/run`` installs them),
listen on 127.0.0.1 on free ports, live for the test session and are stopped by their own PIDs
(``pg_ctl stop``; ``terminate`` on redis-server). Tests that need one skip with a reason when the
binaries are missing, so the SQLite-only suite still runs.

``initdb`` and ``pg_ctl`` refuse to run as root (https://www.postgresql.org/docs/15/app-initdb.html),
so as root they run as ``postgres`` through ``runuser``, in a directory that user can reach
(pytest's ``tmp_path`` base is 0700 root). The throwaway cluster uses the documented non-durable
settings (https://www.postgresql.org/docs/15/non-durability.html).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pg_bindir() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return os.path.dirname(found[-1]) if found else None


def _wait_for_redis(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"redis-server exited with {proc.returncode}"
            raise RuntimeError(msg)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.01)
    msg = f"redis-server did not answer PING within {timeout} s"
    raise RuntimeError(msg)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a private redis-server (no persistence)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    directory, port = tempfile.mkdtemp(prefix="cb-redis-"), free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_redis(port, proc, timeout=10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: tests share one server, never each other's keys."""
    return f"t{secrets.token_hex(4)}"


class PgCluster:
    def __init__(self, port: int) -> None:
        self.port = port

    def admin(self, sql: str) -> None:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type,unused-ignore]

    def url(self, database: str) -> str:
        return f"postgresql://callbridge@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster with a ``callbridge`` role (trust auth on loopback)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    base = tempfile.mkdtemp(prefix="cb-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(base, "data"), free_port()
    initdb = [f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    subprocess.run(
        [*run_as, *initdb, "--locale=C.UTF-8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [f"{bindir}/pg_ctl", "-D", data, "-l", f"{base}/log", "-w", "-t", "30"]
    subprocess.run(
        [*run_as, *pg_ctl, "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    try:
        cluster = PgCluster(port)
        cluster.admin("CREATE ROLE callbridge LOGIN")
        yield cluster
    finally:
        subprocess.run(
            [*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_database(pg_cluster: PgCluster) -> Iterator[Callable[[], str]]:
    """Makes empty databases owned by ``callbridge`` (dropped after the test); returns URLs."""
    made: list[str] = []

    def make() -> str:
        name = f"t_{secrets.token_hex(6)}"
        pg_cluster.admin(f"CREATE DATABASE {name} OWNER callbridge")
        made.append(name)
        return pg_cluster.url(name)

    yield make
    for name in made:
        pg_cluster.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url(pg_database: Callable[[], str]) -> str:
    """One empty database for this test."""
    return pg_database()


__all__ = ["PgCluster", "free_port"]
