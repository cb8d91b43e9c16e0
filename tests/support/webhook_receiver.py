"""An app's webhook receiver, as its own process: verifies signatures, acts once per key.

    python -m tests.support.webhook_receiver --port 8123 --db deliveries.db [--hang-on 5]

Every POST is logged in `deliveries` (key, whether its signature held); the effect is a
row in `effects`, whose primary key is the `Idempotency-Key`: a redelivered action is
answered 200 and changes nothing. `--hang-on N` commits the Nth new effect and then hangs
before answering (writing `<db>.hung`), so a test can SIGKILL it mid-delivery: the
sender never saw the answer and must deliver again. The secret is `$RECEIVER_SECRET`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (key TEXT, valid INTEGER, at REAL);
CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, body TEXT, at REAL);
"""
ROOT = Path(__file__).resolve().parents[2]
MAX_SKEW = 300  # seconds: an older signed timestamp is a replay


def signed(secret: bytes, stamp: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the sender's HMAC of `stamp.body`, and the stamp is fresh."""
    expected = (
        "sha256=" + hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < MAX_SKEW
    return fresh and hmac.compare_digest(expected, signature)


def serve(port: int, db: Path, secret: bytes, hang_on: int = 0) -> None:
    """Serve until killed."""
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA)
    lock = threading.Lock()  # one writer at a time: SQLite's rule, made explicit
    new = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers.get("Idempotency-Key", "")
            ok = signed(secret, self.headers.get("X-Copilot-Timestamp", ""), body,
                        self.headers.get("X-Copilot-Signature", ""))  # fmt: skip
            with lock, sqlite3.connect(db, isolation_level=None) as conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (key, ok, time.time()))
                fresh = (
                    ok
                    and conn.execute(
                        "INSERT OR IGNORE INTO effects VALUES (?, ?, ?)",
                        (key, body.decode(), time.time()),
                    ).rowcount
                )
                conn.execute("COMMIT")
                new[0] += 1 if fresh else 0
                hang = bool(fresh) and new[0] == hang_on
            if hang:  # the effect is committed; the answer never leaves
                Path(f"{db}.hung").write_text(key)
                time.sleep(3600)
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    Path(f"{db}.ready").write_text(str(os.getpid()))
    server.serve_forever()


class ReceiverProcess:
    """The receiver as a child process on a fixed port, to kill and start again."""

    def __init__(self, db: Path, secret: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.db, self.secret = db, secret
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, hang_on: int = 0) -> None:
        """Start it (again) and wait until it listens."""
        ready = Path(f"{self.db}.ready")
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tests.support.webhook_receiver", "--port", str(self.port),
                "--db", str(self.db), "--hang-on", str(hang_on)]  # fmt: skip
        env = {**os.environ, "RECEIVER_SECRET": self.secret}
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env)
        deadline = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no answer for what is in flight."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows from the receiver's own database."""
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute(sql))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--hang-on", type=int, default=0)
    args = p.parse_args()
    serve(args.port, args.db, os.environ["RECEIVER_SECRET"].encode(), args.hang_on)


if __name__ == "__main__":
    main()
