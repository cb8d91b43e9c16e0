"""One Runtime with the test placements (tests.support.placements) per dialect and module.

Tests share it (migrating a PostgreSQL schema per test costs more than the tests): each
test decides for subjects of its own (`sid`), so no test sees another's decisions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from copilot.runtime import Runtime
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


@pytest.fixture
def sid() -> str:
    """A subject id no other test uses."""
    return "acct-" + uuid.uuid4().hex[:10]
