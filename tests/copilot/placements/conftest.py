"""One Runtime with the test placements (tests.support.placements) per dialect and module.

Tests share it (migrating a PostgreSQL schema per test costs more than the tests): each
test decides for subjects of its own (`sid`), so no test sees another's decisions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from copilot.runtime import Runtime
from copilot.server import create_app
from tests.support.api import make_keys
from tests.support.runtime import build_runtime
from tests.support.services import pg_sqlalchemy_url

MODULE = "tests.support.placements"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database URL per dialect for the whole module (the PostgreSQL schema dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('placements') / 'copilot.db'}"
        return
    import psycopg

    dsn = request.getfixturevalue("pg_server")
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield pg_sqlalchemy_url(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def rt(shared_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The runtime; its placements are checked as at start-up."""
    home = tmp_path_factory.mktemp("home")
    runtime = build_runtime(shared_db, home, woken=[], with_flows=False, placement_modules=MODULE)
    runtime.placements  # noqa: B018 - start-up validation
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def pg(rt: Runtime) -> Runtime:
    """The module's runtime on PostgreSQL only (the asyncio decide is PostgreSQL's)."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("the asyncio decide is PostgreSQL's")
    return rt


@pytest.fixture(scope="module")
def api(pg: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The API on `pg` with its lifespan (so its kept decide connections), and app-key headers."""
    keys = make_keys(pg)
    with TestClient(create_app(pg.settings, runtime=pg)) as client:
        yield client, {"Authorization": f"Bearer {keys['acme', 'app']}"}


@pytest.fixture
def sid() -> str:
    """A subject id no other test uses."""
    return "acct-" + uuid.uuid4().hex[:10]
