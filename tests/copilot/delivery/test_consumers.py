"""Real consumer processes drain the feed through a real `copilot api` on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import Actor
from copilot.delivery import State
from copilot.runtime import Runtime
from tests.support.feed import events_of, opened
from tests.support.live import ROOT, LiveServer
from tests.support.runtime import build_runtime

N = 60
VISIBILITY = 2.0


@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Runtime]]:
    rt = build_runtime(pg_url, tmp_path, woken=[], with_flows=False)
    env = {
        "COPILOT_DATABASE_URL": pg_url,
        "COPILOT_HOME": str(tmp_path),
        "COPILOT_DELIVERY_VISIBILITY": str(VISIBILITY),
    }
    server = LiveServer(env, tmp_path / "api.log").start()
    try:
        yield server, rt
    finally:
        server.stop()
        rt.close()


def consumer(url: str, key: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.consumer", url, key, str(log), *extra],
        cwd=ROOT, start_new_session=True,
    )  # fmt: skip


def lines(log: Path, word: str) -> list[int]:
    found = []
    for line in log.read_text().splitlines() if log.exists() else []:
        head, *ids = line.split()
        if head == word:
            found += [int(i) for i in ids]
    return found


@pytest.mark.slow
def test_two_consumers_drain_the_feed_exactly_once_while_one_is_killed_holding_claims(
    served: tuple[LiveServer, Runtime], tmp_path: Path
) -> None:
    server, rt = served
    opened(rt, N)
    key = rt.keys.create(tenant="acme", roles=["app"], name="crm", actor=Actor.system("t"))[1]
    steady, victim = tmp_path / "steady.log", tmp_path / "victim.log"
    # Given two consumers draining at once; the victim stops acking after 5 and holds a batch
    a = consumer(server.url, key, steady, "--pace", "0.03", "--batch")  # acks pages in one call
    b = consumer(server.url, key, victim, "--hang-after", "5", "--pace", "0.01")
    try:
        deadline = time.monotonic() + 60
        while not lines(victim, "hung") and time.monotonic() < deadline:
            time.sleep(0.05)
        held = lines(victim, "hung")
        assert held, "the victim never claimed a second batch"
        # When it is SIGKILLed with its claims unacked
        os.killpg(b.pid, signal.SIGKILL)
        b.wait()
        # Then the steady consumer gets them once their claims time out, and drains the rest
        assert a.wait(timeout=120) == 0
    finally:
        for p in (a, b):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    acked = Counter(lines(steady, "acked") + lines(victim, "acked"))
    ids = {d.id for d in rt.deliveries.page("acme", limit=1000)}
    assert set(acked) == ids and set(acked.values()) == {1}  # none lost, none acked twice
    assert all(i in lines(steady, "acked") for i in held)  # the held batch came back
    assert {d.state for d in rt.deliveries.page("acme", limit=1000)} == {State.DELIVERED}
    assert len(events_of(rt, "acme", "delivery.delivered")) == N
    expired = [e for e in events_of(rt, "acme", "delivery.claimed") if "expired_claim_of" in e]
    assert sorted(int(e["action_id"]) for e in expired) == sorted(held)
