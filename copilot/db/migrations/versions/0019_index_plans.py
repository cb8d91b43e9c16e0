"""Index plans for the server functions: a cached plan must not outlive the table it was made for.

PL/pgSQL prepares each statement of a function once per session and, after five calls,
keeps a generic plan if it costs no more than the custom ones did. A session that first
appends while `audit_entries` holds a page keeps a sequential scan and a sort for the
chain's head (`ORDER BY seq DESC LIMIT 1`), and nothing replaces that plan until an
ANALYZE of the table invalidates it. So on a server that analyzes late or never
(autovacuum off, or behind on a fast-growing table), every append of a long-lived
connection (a worker's, the API's) read the whole stream: measured here, a one-client
decide went from 3 ms to 11 ms within a few minutes, and a bare append from 1.8 ms to 5 ms
over 12,000 entries, until the connection was replaced. Planning afresh at every call
(`plan_cache_mode = force_custom_plan`) is not enough: with statistics of a near-empty
table the planner still estimated one row for the stream, chose another of the trail's
indexes and sorted every entry it found.

Every statement in these functions is a keyed lookup with an index that serves it, and the
head read has exactly one index that yields its order (the primary key, read backwards).
So `enable_seqscan = off` and `enable_sort = off`, set on each function (a SET clause
applies to the function's own statements only), keep those plans on the indexes whatever
the statistics say; a statement with no such index would still get its scan, just priced
last. The same 12,000 appends: 0.5-0.8 ms each, flat. `tests/audit/test_plans.py` pins
it. (A function's SET clause restores only the settings it names: `set_config` of
`synchronous_commit` inside `audit_append_one` still holds until the transaction ends.)

Revision ID: 0019_index_plans
Revises: 0018_runtime
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0019_index_plans"
down_revision = "0018_runtime"
branch_labels = None
depends_on = None

# Every server function that reads a table on the hot path (migrations 0001, 0002, 0018).
FUNCTIONS = (
    "audit_drain",
    "audit_settle",
    "audit_append",
    "audit_append_one",
    "copilot_acquire",
    "copilot_checkpoint",
    "copilot_create",
    "copilot_step",
)
SETTINGS = ("enable_seqscan", "enable_sort")


def upgrade() -> None:
    """Turn both off on each function (PostgreSQL; SQLite has no server functions)."""
    if op.get_bind().dialect.name == "postgresql":
        for name in FUNCTIONS:
            for setting in SETTINGS:
                op.execute(f"ALTER FUNCTION {name} SET {setting} = off")


def downgrade() -> None:
    """Back to the server's defaults."""
    if op.get_bind().dialect.name == "postgresql":
        for name in FUNCTIONS:
            for setting in SETTINGS:
                op.execute(f"ALTER FUNCTION {name} RESET {setting}")
