"""Migrations create exactly the schema the code declares, on both dialects."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import BaseModel
from sqlalchemy import Engine, Table

from approvals import ApprovalRequest
from approvals.tables import metadata as approvals_metadata
from approvals.tables import requests
from audit.stores.sql import metadata as audit_metadata
from copilot.db.tables import metadata as copilot_metadata
from copilot.db.tables import run_steps, runs
from copilot.engine.runs import Run, StepRecord


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


@pytest.mark.parametrize(
    ("record", "table", "derived"),
    [
        (Run, runs, set()),
        (StepRecord, run_steps, set()),
        # Who already approved is read from the votes table, not a column of the request.
        (ApprovalRequest, requests, {"approvals"}),
    ],
    ids=["run", "step", "approval"],
)
def test_every_field_of_a_stored_record_is_a_column_of_its_table(
    record: type[BaseModel], table: Table, derived: set[str]
) -> None:
    """Records (frozen, validated) and rows (JSON text, bookkeeping columns) are separate
    definitions on purpose (README, "Records and rows"); this keeps them from drifting."""
    fields = set(record.model_fields) - derived
    assert fields - set(table.c.keys()) == set()
