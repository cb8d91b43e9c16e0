"""Servers of the tests' own for fault injection: a PostgreSQL cluster and a redis-server.

Each is started in a temporary directory on a free port and stopped by its PID, never
the shared servers (they may be restarted, made read-only, have grants revoked, or be
killed). PostgreSQL refuses to run as root, so as root the cluster runs as `postgres`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import unavailable


def _bin(name: str) -> str:
    """The full path of a server binary."""
    found = shutil.which(name)
    assert found is not None, name
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that run a PostgreSQL binary as `postgres` when we are root."""
    if os.geteuid() != 0:
        return {}
    import pwd

    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class PgCluster:
    """`initdb` in a temp dir, `postgres` on a free port; stopped by PID."""

    def __init__(self) -> None:
        if shutil.which("initdb") is None or shutil.which("postgres") is None:
            unavailable("initdb/postgres (to start a PostgreSQL of the test's own)", OSError())
        self.dir = Path(tempfile.mkdtemp(prefix="copilot-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            [_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
             "-E", "UTF8"],
            check=True, capture_output=True, **_as_postgres(),
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        """The libpq DSN of its `postgres` database."""
        return f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        with (self.dir / "server.log").open("ab") as log:
            self.proc = self._spawn(log)
        self.wait_ready()

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=60",
             "-c", "full_page_writes=off"],
            stdout=log, stderr=log, **_as_postgres(),
        )  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server accepts connections."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def sql(self, statement: str, *, db: str = "postgres") -> None:
        """Run one statement as the superuser, in autocommit, in database `db`."""
        import psycopg

        dsn = self.dsn.replace("dbname=postgres", f"dbname={db}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT), then remove the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A `redis-server` of the test's own on a free port (no persistence); stopped by PID."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            unavailable("redis-server (to start a Redis of the test's own)", OSError())
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="copilot-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        import redis

        self.proc = subprocess.Popen(
            [_bin("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL by PID: the broker is gone, with everything it held."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def messages(self, queue: str) -> int:
        """How many messages wait in a Celery queue (a Redis list), delayed ones included."""
        import redis

        r = redis.Redis(port=self.port, socket_timeout=2)
        return int(r.llen(queue)) + int(r.hlen("unacked"))

    def stop(self) -> None:
        """Stop by PID and remove the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def own_pg() -> Any:
    """A PostgreSQL cluster of the tests' own, shared by the fault tests of one session."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_redis() -> Any:
    """A redis-server of the test's own."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
