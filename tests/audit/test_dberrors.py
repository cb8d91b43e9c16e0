"""How database errors are sorted (audit.dberrors): a stale prepared statement passes."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from audit import dberrors
from audit.dberrors import discard, transient
from tests.support.services import PG_DSN

READ = "SELECT * FROM things WHERE id = %s"


@pytest.fixture
def stale(pg_schema: str) -> Iterator[tuple[psycopg.Connection, psycopg.Error]]:
    """A session whose prepared `SELECT *` a column added by another session made stale,
    and the error it now raises on every call."""
    with psycopg.connect(PG_DSN, autocommit=True, options=f"-csearch_path={pg_schema}") as a:
        a.execute("CREATE TABLE things (id text PRIMARY KEY, x int)")
        for _ in range(3):
            a.execute(READ, ("t",), prepare=True).fetchall()
        with psycopg.connect(PG_DSN, autocommit=True) as b:
            b.execute(f"ALTER TABLE {pg_schema}.things ADD COLUMN y int")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as raised:
            a.execute(READ, ("t",), prepare=True)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            a.execute(READ, ("t",), prepare=True)  # again: the session will not heal
        yield a, raised.value


def test_a_statement_prepared_before_a_migration_is_retried_on_a_fresh_session(
    stale: tuple[psycopg.Connection, psycopg.Error],
) -> None:
    """The error is transient and the session leaves the pool; another 0A000 is neither."""
    conn, error = stale
    assert transient(error) and discard(error)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as other:
        conn.execute("SELECT count(*) FROM things FOR UPDATE")
    assert not transient(other.value) and not discard(other.value)


def test_the_stale_plan_is_told_by_its_source_whatever_the_message_language(
    stale: tuple[psycopg.Connection, psycopg.Error], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `lc_messages` of another language the message is translated (this machine has
    no other locale to show it), the raising server function is not: with the English text
    made unmatchable, the stale plan is still told apart."""
    monkeypatch.setattr(dberrors, "_STALE_PLAN", ("0A000", "gecachter Plan darf den Ergebnistyp"))
    _, error = stale
    assert error.diag.source_function == "RevalidateCachedQuery"
    assert transient(error) and discard(error)
