"""The rows of approval requests and votes: load, insert, change, redact (SQL Core)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from approvals.errors import ApprovalNotFoundError
from approvals.request import ApprovalRequest, document, from_columns
from approvals.tables import REQUEST_COLUMNS, requests, votes

_GET = select(*REQUEST_COLUMNS).where(requests.c.id == bindparam("rid"))


def load(
    conn: Connection, request_id: str, tenant: str | None, *, lock: bool = False
) -> ApprovalRequest:
    """The request with its approvers, or ApprovalNotFoundError (also for another tenant's).

    `lock` takes the row lock on PostgreSQL (SQLite's writer already holds the database's).
    """
    stmt = _GET.with_for_update() if lock and conn.dialect.name == "postgresql" else _GET
    row = conn.execute(stmt, {"rid": request_id}).first()
    if row is None or (tenant is not None and row.tenant != tenant):
        raise ApprovalNotFoundError(f"no approval request {request_id!r}", approval_id=request_id)
    approvers = conn.execute(
        select(votes.c.reviewer).where(
            votes.c.request_id == request_id, votes.c.decision == "approve"
        )
    ).scalars()
    return from_columns(row._mapping, sorted(approvers))


def insert_row(conn: Connection, row: dict[str, Any]) -> ApprovalRequest:
    """Insert a new request version with its document; the request it is."""
    req = from_columns(row)
    conn.execute(insert(requests), {**row, "doc": document(req)})
    return req


def insert_vote(
    conn: Connection, request_id: str, reviewer: str, decision: str, reason: str | None, now: float
) -> None:
    """Record one reviewer's vote on a request version."""
    conn.execute(
        insert(votes).values(
            request_id=request_id,
            reviewer=reviewer,
            decision=decision,
            reason=reason,
            created_at=now,
        )
    )


def change(
    conn: Connection,
    req: ApprovalRequest,
    *,
    expect_status: str | None = None,
    columns: dict[str, Any] | None = None,
    **changes: Any,
) -> int:
    """Update one request's columns and its stored document in one statement; rows moved.

    `changes` are fields of the request (`approvals` only reaches the document: votes
    are their own table); `columns` are columns the document does not show. The
    document is the request with the changes applied, what `load` reads back after.
    """
    doc = document(req.model_copy(update=changes))
    values = {k: v for k, v in changes.items() if k != "approvals"}
    stmt = update(requests).where(requests.c.id == req.id)
    if expect_status is not None:
        stmt = stmt.where(requests.c.status == expect_status)
    return conn.execute(stmt.values(**values, **(columns or {}), doc=doc)).rowcount


def redact_subject(conn: Connection, tenant: str, subject_id: str, *, placeholder: str) -> int:
    """Replace the payloads and explanations of a subject's requests (erasure); rows changed.

    The documents go stale with it: the migration's trigger sets them NULL, so readers
    render those rows from the redacted columns.
    """
    stmt = (
        update(requests)
        .where(requests.c.tenant == tenant, requests.c.subject_id == subject_id)
        .values(payload=placeholder, explanation=None)
    )
    return conn.execute(stmt).rowcount


__all__ = [
    "change",
    "insert_row",
    "insert_vote",
    "load",
    "redact_subject",
]
