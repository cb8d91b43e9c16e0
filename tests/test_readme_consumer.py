"""The docs' consumer loop, docs/examples/delivery/consumer.py as the page shows it, drains a
real feed over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from audit import Actor
from copilot.delivery import State
from tests.support.feed import opened
from tests.support.live import ROOT, LiveServer
from tests.support.runtime import build_runtime

CONSUMER = ROOT / "docs" / "examples" / "delivery" / "consumer.py"


def readme_consumer() -> str:
    page = (ROOT / "docs" / "how-to" / "deliver-actions.md").read_text()
    assert '--8<-- "docs/examples/delivery/consumer.py"' in page, "the page lost its consumer loop"
    return CONSUMER.read_text()


def test_the_readme_consumer_loop_delivers_every_action_once(pg_url: str, tmp_path: Path) -> None:
    rt = build_runtime(pg_url, tmp_path, woken=[], with_flows=False)
    env = {"COPILOT_DATABASE_URL": pg_url, "COPILOT_HOME": str(tmp_path)}
    server = LiveServer(env, tmp_path / "api.log").start()
    script = tmp_path / "consumer.py"
    script.write_text(readme_consumer())
    try:
        made = opened(rt, 12)
        key = rt.keys.create(tenant="acme", roles=["app"], name="crm", actor=Actor.system("t"))[1]
        environ = {**os.environ, "COPILOT_URL": server.url, "COPILOT_APP_KEY": key}
        with (tmp_path / "out.txt").open("w") as out:
            proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=environ,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                states = {d.state for d in rt.deliveries.page("acme", limit=100)}
                if states == {State.DELIVERED} or proc.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        printed = (tmp_path / "out.txt").read_text()
        assert states == {State.DELIVERED}, printed
        assert printed.count("post_note for acct-") == len(made), printed
        receipts = [d.receipt for d in rt.deliveries.page("acme", limit=100)]
        assert all(r is not None and r["detail"] == {"sent": True} for r in receipts)
    finally:
        server.stop()
        rt.close()
