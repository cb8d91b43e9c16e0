"""Migrations create exactly the schema the code declares, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from approvals.tables import metadata as approvals_metadata
from audit.stores.sql import metadata as audit_metadata
from copilot.db.tables import metadata as copilot_metadata


def test_migrated_schema_matches_the_table_definitions(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = []
        for metadata in (audit_metadata, copilot_metadata, approvals_metadata):
            declared = set(metadata.tables)
            diff += [
                d
                for d in compare_metadata(ctx, metadata)
                if not (d[0] == "remove_table" and d[1].name not in declared)
                and not (d[0] == "remove_index" and d[1].table.name not in declared)
            ]
    assert diff == []
