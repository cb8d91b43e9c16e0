"""Approval documents: each request stored as the API serves it, kept honest by triggers;
and an index for the queue's subject filter.

`approval_requests.doc` holds the request's JSON (approvers included), written by the gate
in the same statement as every change it makes. Any other change (an UPDATE that does not
rewrite `doc`, a vote added, moved or removed, votes truncated) sets `doc` to NULL by
trigger, so a stale document is not served: readers render a NULL-doc row from its
columns. (Triggers do not fire under `session_replication_role = replica`: a replication
or restore that writes these tables that way must set `doc = NULL` itself.) A change to
what `ApprovalRequest` serializes needs a migration that sets every `doc` to NULL. Rows
that exist before this migration get their documents here.

Revision ID: 0011_approval_docs
Revises: 0010_web_sessions
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_approval_docs"
down_revision = "0010_web_sessions"
branch_labels = None
depends_on = None

PG_UP = [
    """
    CREATE FUNCTION approval_doc_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.doc IS NOT DISTINCT FROM OLD.doc THEN
            NEW.doc := NULL;
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER approval_doc_stale BEFORE UPDATE ON approval_requests
    FOR EACH ROW EXECUTE FUNCTION approval_doc_stale()
    """,
    # No `doc IS NOT NULL` here: the UPDATE must wait for a writer holding the row (the
    # gate locks it, reads the votes, then writes the document), whatever the doc holds.
    # The table is qualified by the trigger's own schema, not the caller's search_path.
    """
    CREATE FUNCTION approval_vote_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        ids text[];
    BEGIN
        IF TG_OP = 'INSERT' THEN
            ids := ARRAY[NEW.request_id];
        ELSIF TG_OP = 'DELETE' THEN
            ids := ARRAY[OLD.request_id];
        ELSE
            ids := ARRAY[OLD.request_id, NEW.request_id];  -- a vote moved: both change
        END IF;
        EXECUTE format('UPDATE %I.approval_requests SET doc = NULL WHERE id = ANY($1)',
                       TG_TABLE_SCHEMA) USING ids;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER approval_vote_stale AFTER INSERT OR UPDATE OR DELETE ON approval_votes
    FOR EACH ROW EXECUTE FUNCTION approval_vote_stale()
    """,
    """
    CREATE FUNCTION approval_votes_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        EXECUTE format('UPDATE %I.approval_requests SET doc = NULL WHERE doc IS NOT NULL',
                       TG_TABLE_SCHEMA);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER approval_votes_truncated AFTER TRUNCATE ON approval_votes
    FOR EACH STATEMENT EXECUTE FUNCTION approval_votes_truncated()
    """,
]
PG_DOWN = [
    "DROP TRIGGER approval_votes_truncated ON approval_votes",
    "DROP FUNCTION approval_votes_truncated()",
    "DROP TRIGGER approval_vote_stale ON approval_votes",
    "DROP FUNCTION approval_vote_stale()",
    "DROP TRIGGER approval_doc_stale ON approval_requests",
    "DROP FUNCTION approval_doc_stale()",
]
SQLITE_UP = [
    """
    CREATE TRIGGER approval_doc_stale AFTER UPDATE ON approval_requests
    FOR EACH ROW WHEN NEW.doc IS OLD.doc AND NEW.doc IS NOT NULL
    BEGIN UPDATE approval_requests SET doc = NULL WHERE id = NEW.id; END
    """,
    *(
        f"""
        CREATE TRIGGER approval_vote_stale_{op_} AFTER {op_} ON approval_votes FOR EACH ROW
        BEGIN UPDATE approval_requests SET doc = NULL WHERE id IN ({ids}); END
        """
        for op_, ids in (
            ("insert", "NEW.request_id"),
            ("update", "OLD.request_id, NEW.request_id"),  # a vote moved: both change
            ("delete", "OLD.request_id"),
        )
    ),
]
SQLITE_DOWN = [
    "DROP TRIGGER approval_doc_stale",
    *(f"DROP TRIGGER approval_vote_stale_{o}" for o in ("insert", "update", "delete")),
]


def _dialect() -> str:
    return op.get_bind().dialect.name


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("doc", sa.Text(), nullable=True))
    # The queue filtered by subject (a reviewer's inbox, an erasure) without a full scan.
    op.create_index("ix_approval_subject", "approval_requests", ["tenant", "subject_id"])
    for statement in PG_UP if _dialect() == "postgresql" else SQLITE_UP:
        op.execute(statement)
    _backfill()


def _backfill(batch: int = 1000) -> None:
    """Documents for the requests that exist already, so an upgraded queue is read as fast
    as a new one (by id, a batch at a time, in this migration's transaction)."""
    from approvals.request import stored_document  # the format of the code being deployed

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
        conn.execute(
            sa.text("UPDATE approval_requests SET doc = :doc WHERE id = :id"),
            [{"id": r["id"], "doc": stored_document(r, sorted(approvers[r["id"]]))} for r in rows],
        )
        after = rows[-1]["id"]


def downgrade() -> None:
    for statement in PG_DOWN if _dialect() == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_index("ix_approval_subject", table_name="approval_requests")
    op.drop_column("approval_requests", "doc")
