"""Concurrent appenders on the real databases: no gap, no fork, no duplicate, no loss."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from audit import SqlAuditStore, Trail
from audit.stores.sql import entries, pending

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 8
PER_WRITER = 2000


def spawn(url: str, writer: int, start: int, ackfile: Path) -> subprocess.Popen[bytes]:
    with ackfile.with_suffix(".err").open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.audit_writer", url, "acme", str(writer), str(start),
             str(PER_WRITER), str(ackfile)],
            cwd=ROOT,
            stderr=err,
        )  # fmt: skip


def errors(ackfile: Path) -> str:
    path = ackfile.with_suffix(".err")
    return path.read_text() if path.exists() else ""


def acked(ackfile: Path) -> list[int]:
    if not ackfile.exists():
        return []
    return [int(line) for line in ackfile.read_text().splitlines() if line.strip().isdigit()]


def check_trail(engine: Engine, acks: dict[int, list[int]]) -> None:
    store = SqlAuditStore(engine)
    store.settle_all()  # the sweeper's job: chain what dead writers queued after commit
    verdict = Trail(store).verify("acme")
    assert verdict.ok, verdict.line()
    assert verdict.entries == WRITERS * PER_WRITER
    with engine.connect() as conn:
        keys = set(conn.execute(select(entries.c.idempotency_key)).scalars())
        assert conn.execute(select(func.count()).select_from(pending)).scalar() == 0
    assert len(keys) == WRITERS * PER_WRITER  # one entry per key: nothing twice
    for writer, seen in acks.items():
        missing = {f"w{writer}-{i}" for i in seen} - keys
        assert not missing, f"acknowledged appends lost: {sorted(missing)[:5]}"


@pytest.mark.slow
def test_eight_writer_processes_leave_one_contiguous_verified_chain(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    procs = [spawn(db_url, w, 0, tmp_path / f"acks-{w}") for w in range(WRITERS)]
    for w, p in enumerate(procs):
        p.wait(timeout=600)
        assert p.returncode == 0, errors(tmp_path / f"acks-{w}")
    check_trail(engine, {w: acked(tmp_path / f"acks-{w}") for w in range(WRITERS)})


@pytest.mark.slow
def test_writers_killed_mid_transaction_lose_no_acknowledged_append(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    rng = random.Random(20261126)
    acks = {w: tmp_path / f"acks-{w}" for w in range(WRITERS)}
    procs = {w: spawn(db_url, w, 0, acks[w]) for w in range(WRITERS)}
    kills = 0
    deadline = time.monotonic() + 600
    while procs and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.05, 0.3))
        for w, p in list(procs.items()):
            if p.poll() is not None:
                assert p.returncode == 0, errors(acks[w])
                del procs[w]
        if not procs or kills >= 24:
            continue
        victim = rng.choice(sorted(procs))
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        kills += 1
        done = acked(acks[victim])
        procs[victim] = spawn(db_url, victim, (max(done) + 1) if done else 0, acks[victim])
    for w, p in procs.items():
        p.wait(timeout=600)
        assert p.returncode == 0, errors(acks[w])
    assert kills >= 8, f"only {kills} kills: the writers finished too soon"
    check_trail(engine, {w: acked(path) for w, path in acks.items()})
