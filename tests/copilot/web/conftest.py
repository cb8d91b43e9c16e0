"""A real `copilot api` process on a fresh PostgreSQL schema, seeded through the Python API
with runs of the built-in workflows, keys per person, and headless Chromium to drive it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from audit import Actor
from tests.support.browser import chromium as launch_chromium
from tests.support.live import LiveServer
from tests.support.runtime import build_runtime
from tests.support.services import pg_sqlalchemy_url
from tests.support.site import Site, seed

PEOPLE = {  # principal name -> (tenant, roles)
    "ana-reviewer": ("acme", ["reviewer"]),
    "ben-reviewer": ("acme", ["reviewer"]),
    "ada-auditor": ("acme", ["auditor"]),
    "acme-app": ("acme", ["app"]),
    "gus-reviewer": ("globex", ["reviewer"]),
}


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
    rt = build_runtime(url, home, woken=[], with_flows=False)
    server: LiveServer | None = None
    try:
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
    with launch_chromium() as browser:
        yield browser
