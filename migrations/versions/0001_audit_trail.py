"""The audit trail: entries, the append queue, erasable payloads, checkpoints; append-only triggers.

Revision ID: 0001_audit_trail
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_audit_trail"
down_revision = None
branch_labels = None
depends_on = None

BIG = sa.BigInteger()
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Tables whose rows may never change; payloads may be deleted (erasure) but not rewritten.
APPEND_ONLY = ("audit_entries", "audit_checkpoints")


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("commitment", sa.LargeBinary(32), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("subject_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        *_event_columns(),
        sa.UniqueConstraint("stream", "idempotency_key", name="uq_audit_entries_idempotency"),
    )
    op.create_index("ix_audit_entries_run", "audit_entries", ["stream", "run_id"])
    op.create_index("ix_audit_entries_subject", "audit_entries", ["stream", "subject_id"])
    op.create_index("ix_audit_entries_type", "audit_entries", ["stream", "event_type"])
    op.create_table(
        "audit_pending",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        *_event_columns(),
        sa.UniqueConstraint("stream", "idempotency_key", name="uq_audit_pending_idempotency"),
    )
    op.create_index("ix_audit_pending_stream", "audit_pending", ["stream", "id"])
    op.create_table(
        "audit_payloads",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("size", BIG, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("signed_at", sa.String(32), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )
    op.execute(
        "CREATE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
        "BEGIN SELECT RAISE(ABORT, 'audit_payloads may be erased, never rewritten'); END"
    )


def _postgres_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% on % refused: the audit trail is append-only', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    op.execute(
        "CREATE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    )


def downgrade() -> None:
    for table in ("audit_checkpoints", "audit_payloads", "audit_pending", "audit_entries"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
