"""The gate's tables (SQLAlchemy Core); `copilot/db/migrations/` creates them."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

requests = Table(
    "approval_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("workflow", String(100), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("subject_id", String(200), nullable=True),
    Column("action_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("risk", String(8), nullable=False),
    Column("risk_rank", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("level", String(8), nullable=False),
    Column("required_n", Integer, nullable=False),
    Column("role", String(50), nullable=False),
    Column("status", String(16), nullable=False),
    Column("policy_rule", String(100), nullable=False),
    Column("policy_version", String(50), nullable=False),
    Column("shadow", Text, nullable=False),
    Column("explanation", Text, nullable=True),
    Column("triggered_by", String(200), nullable=False),
    # The principal whose request caused the run (its run's `principal`): it may not decide.
    Column("principal", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("claimed_by", String(200), nullable=True),
    Column("claim_expires_at", Float, nullable=True),
    Column("supersedes", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("execution_status", String(16), nullable=True),
    Column("execution", Text, nullable=True),
    # The request as the API serves it (ApprovalRequest JSON, approvers included), written
    # by the gate with every change, so the queue's hot read joins stored documents instead
    # of building 50 records per page. NULL when a change did not rewrite it (a trigger sees
    # to that, see migration 0011): readers then render that row from its columns.
    Column("doc", Text, nullable=True),
    UniqueConstraint("tenant", "action_id", "version", name="uq_approval_version"),
    Index("ix_approval_queue", "tenant", "status", "deadline", "risk_rank", "id"),
    Index("ix_approval_run", "run_id"),
    Index("ix_approval_subject", "tenant", "subject_id"),  # the queue's subject filter, erasure
)

# Every column of a request but its stored document: what readers of the rows select.
REQUEST_COLUMNS = [c for c in requests.c if c.name != "doc"]

votes = Table(
    "approval_votes",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("reviewer", String(200), primary_key=True),
    Column("decision", String(8), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)
