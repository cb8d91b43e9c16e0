"""Shared fixtures: real SQLite and PostgreSQL, one fresh schema per test, env restored.

Locally a missing service skips its tests; under CI=true it fails them (`tests.support.services`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from audit.db import create_engine
from copilot.db.engines import upgrade
from tests.support.services import PG_DSN, pg_sqlalchemy_url, unavailable


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL DSN, once it answers."""
    import psycopg

    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unavailable("PostgreSQL at " + PG_DSN, exc)
    return PG_DSN


# Catalogs a schema's tables, indexes, functions and triggers leave dead rows in when dropped.
_CATALOGS = ("pg_class", "pg_attribute", "pg_depend", "pg_type", "pg_index", "pg_constraint",
             "pg_proc", "pg_trigger", "pg_attrdef", "pg_sequence", "pg_namespace")  # fmt: skip


@pytest.fixture(scope="session")
def _pg_catalog_vacuum(pg_server: str) -> Iterator[None]:
    """After a session that made schemas, vacuum the catalogs their drops left dead rows in.

    Thousands of created and dropped schemas bloat the database's catalogs (every new
    connection and every cache reset reads them) until autovacuum gets to them, which under
    a busy suite it may not: the runtime bench measured visibly slower on such a database.
    A plain VACUUM makes the space reusable, so the next session does not grow them.
    """
    yield
    import psycopg

    try:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute("VACUUM " + ", ".join(f"pg_catalog.{c}" for c in _CATALOGS))
    except psycopg.errors.InsufficientPrivilege:  # not the catalogs' owner: autovacuum's job
        pass


@pytest.fixture
def pg_schema(pg_server: str, _pg_catalog_vacuum: None) -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards (its catalog rows vacuumed at the end)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """SQLAlchemy URL of a fresh PostgreSQL schema."""
    return pg_sqlalchemy_url(pg_schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'copilot.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each dialect in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each dialect."""
    eng = create_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Tests may set COPILOT_* variables; none leaks into the next test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def openai_stub() -> Iterator[object]:
    """A scripted OpenAI-compatible server; OPENAI_BASE_URL and OPENAI_API_KEY point at it."""
    from tests.support.openai_stub import StubServer

    with StubServer() as stub:
        os.environ["OPENAI_BASE_URL"] = stub.url
        os.environ["OPENAI_API_KEY"] = "sk-test-stub"
        yield stub
