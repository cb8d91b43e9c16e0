"""Principals: runs and approval requests record whose request caused them; key names are
unique per tenant.

`runs.principal` and `approval_requests.principal` hold `key:<key id>`, `schedule:<name>`
or `cli` (see copilot.db.tables.runs); rows from before this migration keep NULL: their
cause is not known, and the gate then falls back to comparing names. Key names become
unique per tenant, revoked keys included: where two keys of a tenant share a name today,
every one but the oldest is renamed `<name>~<key id>` (the trail's `key.created` events
keep the names they were created with). `ApprovalRequest` serializes one more field, so
every stored document is rebuilt (see migration 0011).

Revision ID: 0012_principals
Revises: 0011_approval_docs
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_principals"
down_revision = "0011_approval_docs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("principal", sa.String(200), nullable=True))
    op.add_column("approval_requests", sa.Column("principal", sa.String(200), nullable=True))
    _rename_shared_names()
    op.create_index("uq_api_keys_name", "api_keys", ["tenant", "name"], unique=True)
    _rebuild_documents()


def _rename_shared_names() -> None:
    """Every key but the oldest of a (tenant, name) gets `<name>~<id>` (within 200 chars)."""
    conn = op.get_bind()
    seen: set[tuple[str, str]] = set()
    renames = []
    for key_id, tenant, name in conn.execute(
        sa.text("SELECT id, tenant, name FROM api_keys ORDER BY tenant, name, created_at, id")
    ):
        if (tenant, name) in seen:
            renames.append({"id": key_id, "name": f"{name[: 199 - len(key_id)]}~{key_id}"})
        seen.add((tenant, name))
    if renames:
        conn.execute(sa.text("UPDATE api_keys SET name = :name WHERE id = :id"), renames)


def _rebuild_documents(batch: int = 1000) -> None:
    """Each request's stored document in the format of the code being deployed."""
    from approvals.request import stored_document

    conn = op.get_bind()
    after = ""
    while True:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.text("SELECT * FROM approval_requests WHERE id > :after ORDER BY id LIMIT :n"),
                {"after": after, "n": batch},
            )
        ]
        if not rows:
            return
        approvers: dict[str, list[str]] = {r["id"]: [] for r in rows}
        for request_id, reviewer in conn.execute(
            sa.text(
                "SELECT request_id, reviewer FROM approval_votes "
                "WHERE decision = 'approve' AND request_id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": list(approvers)},
        ):
            approvers[request_id].append(reviewer)
        # Only documents that change: rewriting one with the same text would trip 0011's
        # trigger (an UPDATE that leaves `doc` as it was means "stale": it sets NULL).
        docs = [(r, stored_document(r, sorted(approvers[r["id"]]))) for r in rows]
        changed = [{"id": r["id"], "doc": doc} for r, doc in docs if r["doc"] != doc]
        if changed:
            conn.execute(sa.text("UPDATE approval_requests SET doc = :doc WHERE id = :id"), changed)
        after = rows[-1]["id"]


def downgrade() -> None:
    op.drop_index("uq_api_keys_name", table_name="api_keys")
    op.drop_column("approval_requests", "principal")
    op.drop_column("runs", "principal")
    op.execute("UPDATE approval_requests SET doc = NULL")  # documents name the dropped field
