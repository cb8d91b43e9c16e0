"""How database errors are sorted (audit.dberrors): a stale prepared statement passes."""

from __future__ import annotations

import psycopg
import pytest

from audit.dberrors import discard, transient
from tests.support.services import PG_DSN


def test_a_statement_prepared_before_a_migration_is_retried_on_a_fresh_session(
    pg_schema: str,
) -> None:
    """A column added under a prepared `SELECT *`: the session fails it again and again,
    so the error is transient and the session leaves the pool; another 0A000 is neither."""
    with psycopg.connect(PG_DSN, autocommit=True, options=f"-csearch_path={pg_schema}") as a:
        a.execute("CREATE TABLE things (id text PRIMARY KEY, x int)")
        a.execute("INSERT INTO things VALUES ('t', 1)")
        for _ in range(3):
            a.execute("SELECT * FROM things WHERE id = %s", ("t",), prepare=True).fetchone()
        with psycopg.connect(PG_DSN, autocommit=True) as b:
            b.execute(f"ALTER TABLE {pg_schema}.things ADD COLUMN y int")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as stale:
            a.execute("SELECT * FROM things WHERE id = %s", ("t",), prepare=True)
        assert transient(stale.value) and discard(stale.value)
        with pytest.raises(psycopg.errors.FeatureNotSupported) as other:
            a.execute("SELECT count(*) FROM things FOR UPDATE")
        assert not transient(other.value) and not discard(other.value)
