"""Plans for the server functions made for the table as it is now, not as it was.

PL/pgSQL prepares each statement of a function once per session and keeps a plan for it:
a generic one after five calls, or from the first call on a connection that sets
`plan_cache_mode = force_generic_plan`, as the API's decide connections do. A session that
first appended while `audit_entries` held a page kept a sequential scan and a sort for the
chain's head (`ORDER BY seq DESC LIMIT 1`) until something invalidated it: an ANALYZE of
the table, or DDL in the database. On a server that analyzes late or never (autovacuum
off, as on the shared PostgreSQL of this project's CI, or behind on a fast-growing table),
every append of a long-lived connection then read the whole stream, and a one-client
decide slowed within minutes until its connection was replaced.

Settings on each function fix it (`FUNCTIONS` below):
- `enable_sort = off` everywhere: the primary key, read backwards, is the one path that
  yields the head's order without a sort. With statistics that put the stream at one row
  whatever its size, even a fresh plan was seen (in the decide bench, with `auto_explain`)
  reading the head through another index and sorting every entry the stream has.
- `enable_seqscan = off` on the appends and the checkpoints: every statement in them is a
  lookup by a key that an index serves, so their generic plans (planned once per
  connection, not at every call of the hot path) stay on the indexes.
- `plan_cache_mode = force_custom_plan` on the trigger (`copilot_create`): its lookup by
  (tenant, idempotency key) is planned for the key and the table as it is, so it takes the
  unique index. A generic plan made on a near-empty table took any index that leads with
  the tenant and filtered on the key, with or without `enable_seqscan`.

A SET clause holds for the function's call and for the functions it calls, and on exit it
restores only the settings it names. So `set_config('synchronous_commit', 'off', true)`
inside `audit_append_one` still holds until the transaction ends.

Left as it was: an audit event's idempotency-key probe may still take another index that
leads with the stream when the statistics are stale (the decide and the steps append
without keys). `tests/audit/test_plans.py` pins the rest: the pages an append and a keyed
trigger read on a long-lived connection after their tables outgrew their statistics.

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

# Every server function that reads a table on the hot path (migrations 0001, 0002, 0018),
# and what it is set to. The appends and the checkpoints keep generic plans, pinned to the
# indexes; the trigger plans at each call, for its key lookup (see the module).
INDEXED = {"enable_seqscan": "off", "enable_sort": "off"}
CUSTOM = {"plan_cache_mode": "force_custom_plan", "enable_sort": "off"}
FUNCTIONS: dict[str, dict[str, str]] = {
    "audit_drain": INDEXED,
    "audit_settle": INDEXED,
    "audit_append": INDEXED,
    "audit_append_one": INDEXED,
    "copilot_acquire": INDEXED,
    "copilot_checkpoint": INDEXED,
    "copilot_step": INDEXED,
    "copilot_create": CUSTOM,
}
# Every overload of a name, by its signature (ALTER FUNCTION by name alone fails once a
# name is overloaded).
_EACH = """
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_proc p
             WHERE p.proname = '{name}' AND p.pronamespace = current_schema()::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s {action}', f);
    END LOOP;
END $$
"""


def upgrade() -> None:
    """Set each function's settings (PostgreSQL; SQLite has no server functions)."""
    if op.get_bind().dialect.name == "postgresql":
        for name, settings in FUNCTIONS.items():
            action = " ".join(f"SET {k} = {v}" for k, v in settings.items())
            op.execute(_EACH.format(name=name, action=action))


def downgrade() -> None:
    """Back to the server's defaults."""
    if op.get_bind().dialect.name == "postgresql":
        for name, settings in FUNCTIONS.items():
            op.execute(_EACH.format(name=name, action=" ".join(f"RESET {k}" for k in settings)))
