"""A real `copilot api` process on a fresh PostgreSQL schema, seeded through the Python API
with runs of the built-in workflows, keys per person, and headless Chromium to drive it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from audit import Actor
from copilot.cli.demo_data import accounts
from copilot.db.engines import upgrade
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.conftest import pg_sqlalchemy_url, unavailable
from tests.support.live import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
PEOPLE = {  # principal name -> (tenant, roles)
    "ana-reviewer": ("acme", ["reviewer"]),
    "ben-reviewer": ("acme", ["reviewer"]),
    "ada-auditor": ("acme", ["auditor"]),
    "acme-app": ("acme", ["app"]),
    "gus-reviewer": ("globex", ["reviewer"]),
}


@dataclass
class Site:
    """The live server, the runtime that seeded it, and a key per person."""

    url: str
    rt: Runtime
    tokens: dict[str, str] = field(default_factory=dict)

    def pending(self, kind: str) -> list[Any]:
        """Acme's pending requests of one kind, in queue order."""
        items, _ = self.rt.gate.queue("acme", kind=kind, limit=200)
        return items


def seed(rt: Runtime, tenant: str, n: int) -> None:
    """Signals for `n` synthetic accounts, then next-actions and tone-draft runs, advanced
    in-process until they wait for a person (the worker's code path, run inline)."""
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    for acct in accounts(n, seed=11, today=today):
        for values, age in ((acct.signals, 3600), (acct.stale, 60 * 86400)):
            if values:
                rt.registry.signals.ingest(rt.engine, rt.audit, tenant=tenant,
                                           subject_id=acct.subject_id, values=values,
                                           source="crm", observed_at=now - age)  # fmt: skip
        for workflow in ("account_health", "next_actions", "tone_draft"):
            run, _ = rt.runner.trigger(workflow, acct.subject_id, tenant=tenant,
                                       triggered_by="app:crm")  # fmt: skip
            rt.runner.run_inline(run.id)


@pytest.fixture(scope="module")
def site(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import psycopg

    home = tmp_path_factory.mktemp("web")
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = pg_sqlalchemy_url(schema)
    env = {"COPILOT_DATABASE_URL": url, "COPILOT_HOME": str(home),
           "COPILOT_BROKER_URL": f"sqla+sqlite:///{home / 'broker.db'}"}  # fmt: skip
    rt = Runtime(Settings(database_url=url, home=home), enqueue=lambda run_id, countdown: None)
    server: LiveServer | None = None
    try:
        upgrade(rt.engine)
        seed(rt, "acme", 4)
        seed(rt, "globex", 2)
        tokens = {}
        for name, (tenant, roles) in PEOPLE.items():
            _, tokens[name] = rt.keys.create(tenant=tenant, roles=roles, name=name,
                                             actor=Actor.system("test"))  # fmt: skip
        rt.signing_trail.checkpoint("acme")  # the trail page shows the last signed checkpoint
        server = LiveServer(env, home / "api.log").start()
        yield Site(server.url, rt, tokens)
    finally:
        if server is not None:
            server.stop()
        rt.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        unavailable("chromium", FileNotFoundError(f"{CHROMIUM}; `make system-deps` installs it"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable("playwright", exc)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
