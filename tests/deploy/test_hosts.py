"""A copilot deployment across hosts (network namespaces), and what a network does to it.

Each scenario triggers five-step runs through the API from the app host, inflicts one
fault, and counts: runs lost (not completed), double executions (a step's effect or an
action committed twice), leases taken again (each re-runs the step it was on), and
`copilot audit verify` on the beat host. Each prints its recovery time. The whole module
runs once on Redis and once on a RabbitMQ node of its own (`make test-hosts`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.support import netns
from tests.support.hosts import Deployment, Tally
from tests.support.services import unavailable

pytestmark = pytest.mark.hosts
RUNS = 8
STEP_MS = 400  # five steps: 2 s a run; two workers of two processes hold four at once
CUT_SECONDS = 10  # two and a half leases


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def hosts(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    why = netns.available()
    if why is not None:
        unavailable("network namespaces", RuntimeError(why))
    d = Deployment(request.param)
    try:
        d.start()
        yield d
    finally:
        d.close()


def report(capsys: pytest.CaptureFixture[str], hosts: Deployment, name: str, tally: Tally,
           **extra: object) -> None:  # fmt: skip
    with capsys.disabled():
        more = "".join(f", {k} {v}" for k, v in extra.items())
        print(f"\n[{hosts.broker}] {name}: {tally.runs} runs, {tally.lost} lost, "
              f"{tally.doubled} double executions, {tally.retaken} leases retaken, "
              f"audit {tally.verified!r}; recovered {tally.seconds} s{more}")  # fmt: skip


def sound(tally: Tally) -> None:
    assert tally.lost == 0, tally
    assert tally.doubled == 0, tally
    assert tally.verified.startswith("OK "), tally


def test_a_worker_cut_off_from_the_database_but_not_the_broker(
    hosts: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its leases expire, the other host finishes its runs; back, it does not act twice."""
    ids = hosts.trigger(RUNS, STEP_MS)
    hosts.wait_until(lambda: hosts.leased_by(ids)["w1"] > 0, "w1 holding a lease")
    start = time.monotonic()
    hosts.net.cut("w1", "db")
    try:
        hosts.wait_until(lambda: hosts.leased_by(ids)["w1"] == 0 or hosts.settled(ids),
                         "w1's leases taken over", timeout=CUT_SECONDS * 3)  # fmt: skip
        taken_over = round(time.monotonic() - start, 2)
        time.sleep(max(0.0, CUT_SECONDS - taken_over))
    finally:
        hosts.net.mend("w1", "db")
    healed = time.monotonic()
    ids += hosts.trigger(RUNS, STEP_MS)  # w1 back at work beside w2
    tally = hosts.settle(ids, start)
    report(capsys, hosts, "worker cut from the database", tally, **{
        "leases taken over after": f"{taken_over} s",
        "all settled after the cut ended": f"{round(tally.done_at - healed, 2)} s"})  # fmt: skip
    sound(tally)
    assert tally.retaken > 0  # the cut was real: w2 took w1's runs over


def test_a_worker_cut_off_from_everything_mid_run_and_restored(
    hosts: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = hosts.trigger(RUNS, STEP_MS)
    hosts.wait_until(lambda: hosts.leased_by(ids)["w1"] > 0, "w1 holding a lease")
    start = time.monotonic()
    hosts.net.isolate("w1")
    try:
        time.sleep(CUT_SECONDS)
    finally:
        hosts.net.rejoin("w1")
    tally = hosts.settle(ids, start)
    report(capsys, hosts, "worker cut from everything", tally)
    sound(tally)
    assert tally.retaken > 0


def test_a_slow_lossy_link_between_the_workers_and_the_database(
    hosts: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    clear = hosts.settle(hosts.trigger(RUNS, STEP_MS), time.monotonic())
    for w in ("w1", "w2"):
        hosts.net.slow(w, "db", rate="128kbit", burst="1600", limit="1600")
    try:
        start = time.monotonic()
        tally = hosts.settle(hosts.trigger(RUNS, STEP_MS), start, timeout=240)
        dropped = hosts.net.dropped()
    finally:
        hosts.net.unslow()
    report(capsys, hosts, "slow lossy worker-database links", tally, **{
        "packets dropped": dropped, "same batch on a clear link": f"{clear.seconds} s"})  # fmt: skip
    sound(tally)
    sound(clear)
    assert dropped > 0  # the loss was real


def test_a_second_beat_on_another_host_is_harmless(
    hosts: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts.role("w2", "beat", name="beat@w2")
    try:
        start = time.monotonic()
        tally = hosts.settle(hosts.trigger(RUNS, STEP_MS), start)  # both beats sweeping
    finally:
        hosts.stop("beat@w2")
    report(capsys, hosts, "second beat", tally)
    sound(tally)


def test_a_worker_clock_ten_minutes_ahead_steals_no_lease(
    hosts: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """w2's clock runs 600 s ahead (libfaketime) and it offers every live run to its lease
    again and again (a worker's task body, tests.support.skewed): leases go by the
    database's clock, so it takes only runs nobody holds, and none is taken twice."""
    hosts.stop("worker@w2")  # Celery's threads hang under libfaketime (tests.support.skewed)
    try:
        start = time.monotonic()
        ids = hosts.trigger(2 * RUNS, STEP_MS)
        skewed = hosts.skewed_worker("w2", +600, seconds=20)
        tally = hosts.settle(ids, start)
        out, err = skewed.communicate(timeout=120)
        assert skewed.returncode == 0, err.decode()[-3000:]
        answer = json.loads(out.decode().strip().splitlines()[-1])
        owners = hosts.owners(ids)
    finally:
        hosts.role("w2", "worker")
    report(capsys, hosts, "worker clock +10 min", tally, **{
        "skewed host's clock ahead by": f"{round(answer['clock'] - time.time())} s",
        "runs it took": answer["took"], "completed by": dict(owners)})  # fmt: skip
    sound(tally)
    assert answer["clock"] - time.time() > 500  # the skew was real
    assert tally.retaken == 0  # no live lease was taken from anyone
    assert answer["took"] > 0 and owners["w2"] > 0  # the skewed host did work
