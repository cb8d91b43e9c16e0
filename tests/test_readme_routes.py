"""The docs' route examples are the files the tests run, and the receiver works as shown.

`tests/support/app_receiver.py` (the webhook receiver an app would copy) and
`tests/support/crm_app.py` (the app's Celery task, run by tests/copilot/test_celery_route.py)
are included, as they are, in docs/how-to/deliver-actions.md.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from approvals.notify import sign_body
from copilot.engine.runs import RunState
from tests.support.runtime import build_runtime

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "support"
SECRET = "readme-secret"


@pytest.mark.parametrize("name", ["app_receiver.py", "crm_app.py"])
def test_the_docs_show_the_example_the_tests_run(name: str) -> None:
    page = (ROOT / "docs" / "how-to" / "deliver-actions.md").read_text()
    assert f'```python\n--8<-- "tests/support/{name}"\n```' in page, f"the page lacks {name}"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "actions.db"
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "app_receiver.py"), str(port), str(db)],
        env={"HOOK_SECRET": SECRET, "PATH": ""},
    )
    url = f"http://127.0.0.1:{port}/hook"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "receiver did not start"
            time.sleep(0.05)
    yield url, db
    proc.kill()
    proc.wait()


def test_the_readme_receiver_acts_once_per_key_and_refuses_a_bad_signature(
    tmp_path: Path, receiver: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, db = receiver
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"routes:\n  post_note: {{executor: webhook, url: '{url}', secret_env: HOOK_SECRET}}\n"
    )
    rt = build_runtime(f"sqlite:///{tmp_path}/copilot.db", tmp_path, woken=[],
                       routes_path=str(routes))  # fmt: skip
    try:
        run, _ = rt.runner.trigger("noting", "acct-1", tenant="acme")
        assert rt.runner.run_inline(run.id).state == RunState.COMPLETED
        (req,) = rt.gate.of_run(run.id, "")
    finally:
        rt.close()
    with sqlite3.connect(db) as conn:
        rows = list(conn.execute("SELECT key, kind FROM actions"))
    assert rows == [(f"approval:{req.id}", "post_note")]
    # A redelivery of the same key (signed afresh) is answered 200 and changes nothing
    body = b'{"kind":"post_note","payload":{"text":"again"}}'
    stamp = str(int(time.time()))
    headers = {"Idempotency-Key": f"approval:{req.id}", "X-Copilot-Timestamp": stamp,
               "X-Copilot-Signature": sign_body(SECRET.encode(), stamp, body)}  # fmt: skip
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    # and a wrong signature is refused
    bad = {**headers, "Idempotency-Key": "approval:forged", "X-Copilot-Signature": "sha256=00"}
    assert httpx.post(url, content=body, headers=bad).status_code == 401
    with sqlite3.connect(db) as conn:
        assert list(conn.execute("SELECT key FROM actions")) == [(f"approval:{req.id}",)]
