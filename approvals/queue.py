"""The approval queue's read: one statement per filter shape, pages joined from stored documents.

The queue is the hottest read there is (every reviewer's tool polls it), so a page is not
built record by record: each request's JSON is stored beside it (`approval_requests.doc`,
written by the gate with every change it makes) and a page is one indexed range scan plus
a string join. A row whose document is NULL (changed by something other than the gate, or
older than the column) is rendered from its columns by the caller and spliced in; the
bytes are the same either way, the items exactly `ApprovalRequest`'s JSON.

One statement text serves the synchronous read (SQLAlchemy, SQLite and PostgreSQL:
`statement`) and the API's asyncio read on PostgreSQL (asyncpg: `positional`).

`Queue` is the reviewer's side of the gate (reads only); `Gate` extends it with the
writes. The functions at the end answer what other packages ask of the requests (the
runtime, measurement, metrics), so no one else reads the gate's tables.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, select, text

from approvals import shadow
from approvals.errors import ApprovalError
from approvals.request import PENDING, ApprovalRequest, document, from_columns
from approvals.rows import load
from approvals.tables import REQUEST_COLUMNS, requests, votes
from audit.db import ids_starting, readonly

FILTERS = ("status", "workflow", "kind", "risk", "subject_id")
_ID = re.compile(r"[0-9a-f]{32}")  # a request id, as the gate makes them
Row = Any  # indexable (id, deadline, risk_rank, doc): the columns `statement` selects


@dataclass(frozen=True)
class QueueQuery:
    """Which requests, from where, how many: the filters compare for equality (None: any)."""

    status: str | None = "pending"
    workflow: str | None = None
    kind: str | None = None
    risk: str | None = None
    subject_id: str | None = None
    cursor: str | None = None
    limit: int = 50


def statement(tenant: str, query: QueueQuery) -> tuple[str, dict[str, Any]]:
    """The page's SQL with named parameters (`:name`, for SQLAlchemy) and their values.

    By deadline, then highest risk, then id. Raises ApprovalError `approval.bad_cursor`
    for a cursor this module did not issue.
    """
    shape, params = _bind(tenant, query)
    return _sql(shape, "named")[0], params


def _bind(tenant: str, query: QueueQuery) -> tuple[tuple[str, ...], dict[str, Any]]:
    params: dict[str, Any] = {"tenant": tenant, "n": query.limit + 1}
    shape = []
    for name in FILTERS:
        value = getattr(query, name)
        if value is not None:
            params[name] = value
            shape.append(name)
    if query.cursor:
        params["c_deadline"], params["c_rank"], params["c_id"] = decode_cursor(query.cursor)
        shape.append("cursor")
    return tuple(shape), params


def positional(tenant: str, query: QueueQuery) -> tuple[str, list[Any]]:
    """The same statement with `$1, $2, ...` (for asyncpg) and its values in that order."""
    shape, params = _bind(tenant, query)
    sql, names = _sql(shape, "numeric")
    return sql, [params[n] for n in names]


@functools.cache
def _sql(shape: tuple[str, ...], style: Literal["named", "numeric"]) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def p(name: str) -> str:
        if name not in names:
            names.append(name)
        return f":{name}" if style == "named" else f"${names.index(name) + 1}"

    where = [f"tenant = {p('tenant')}"] + [f"{n} = {p(n)}" for n in shape if n != "cursor"]
    if "cursor" in shape:
        d, r, i = p("c_deadline"), p("c_rank"), p("c_id")
        # The first condition starts the index range; the second orders ties after the cursor.
        where.append(f"deadline >= {d}")
        where.append(
            f"(deadline > {d} OR (deadline = {d} AND "
            f"(risk_rank < {r} OR (risk_rank = {r} AND id > {i}))))"
        )
    sql = (
        "SELECT id, deadline, risk_rank, doc FROM approval_requests "
        f"WHERE {' AND '.join(where)} ORDER BY deadline, risk_rank DESC, id LIMIT {p('n')}"
    )
    return sql, tuple(names)


def missing(rows: Sequence[Row], limit: int) -> list[str]:
    """Ids on the page whose stored document is NULL (the caller renders them)."""
    return [row[0] for row in rows[:limit] if row[3] is None]


def assemble(rows: Sequence[Row], limit: int, rendered: Mapping[str, str]) -> bytes:
    """The page's JSON: `{"items": [...], "next_cursor": ...}` (as ApprovalPage dumps it).

    `rendered` holds the documents of the rows `missing` named; one that vanished meanwhile
    (deleted between the two reads) is left out.
    """
    docs = [doc if (doc := row[3]) is not None else rendered.get(row[0]) for row in rows[:limit]]
    nxt = "null"
    if len(rows) > limit and limit > 0:
        last = rows[limit - 1]
        nxt = json.dumps(encode_cursor(last[1], last[2], last[0]))
    items = ",".join(d for d in docs if d is not None)
    return f'{{"items":[{items}],"next_cursor":{nxt}}}'.encode()


def encode_cursor(deadline: float, risk_rank: int, request_id: str) -> str:
    """The opaque position after a request: where the next page starts."""
    raw = json.dumps([deadline, -risk_rank, request_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[float, int, str]:
    """(deadline, risk rank, id) of the request a cursor points after.

    A cursor comes back from clients, so anything may arrive: only the exact shape
    `encode_cursor` issues (a finite number, a small integer, a request id) is accepted,
    and every other input, whatever it decodes to, is ApprovalError `approval.bad_cursor`
    (a 4xx): never an OverflowError, a RecursionError or a value the driver refuses.
    """
    decoded = _decode(cursor)
    if decoded is None:
        raise ApprovalError(
            "the cursor is not one this server issued; start from the first page",
            code="approval.bad_cursor",
        )
    return decoded


def _decode(cursor: str) -> tuple[float, int, str] | None:
    if len(cursor) > 200:  # what we issue is ~80 characters; no parse of a huge one
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, RecursionError):  # not base64, not UTF-8, not JSON, too deep
        return None
    if not isinstance(doc, list) or len(doc) != 3:
        return None
    deadline, neg_rank, last = doc
    # Types exactly as issued: bool is an int to Python, a string would convert.
    if type(deadline) not in (int, float) or type(neg_rank) is not int or type(last) is not str:
        return None
    if not -10 <= neg_rank <= 10 or not _ID.fullmatch(last):
        return None
    try:
        deadline = float(deadline)  # an integer too large for a float overflows
    except OverflowError:
        return None
    return (deadline, -neg_rank, last) if math.isfinite(deadline) else None


# -- the reviewer's reads ---------------------------------------------------------------------


@dataclass
class PendingSummary:
    """How many requests wait, by risk, how many are claimed, and their workflows and kinds."""

    total: int = 0
    by_risk: dict[str, int] = field(default_factory=dict)
    claimed: int = 0
    workflows: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)


class Queue:
    """Read requests: one, a run's, a page of the queue, its figures. `Gate` adds the writes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, request_id: str, *, tenant: str | None = None) -> ApprovalRequest:
        """The request (with its approvers), or ApprovalNotFoundError (also for other tenants)."""
        with readonly(self.engine.connect(), autocommit=False) as conn:
            return load(conn, request_id, tenant)

    def ids_starting(self, prefix: str, *, tenant: str, limit: int = 6) -> list[str]:
        """Up to `limit` ids of the tenant's requests that start with `prefix` (for short ids)."""
        return ids_starting(self.engine, requests, prefix, tenant=tenant, limit=limit)

    def of_run(self, run_id: str, action_prefix: str = "") -> list[ApprovalRequest]:
        """A run's live (not superseded) requests whose action id starts with the prefix, in order.

        One query; `approvals` is left empty (read a request with `get` for its approvers).
        """
        c = requests.c
        stmt = (
            select(*REQUEST_COLUMNS)
            .where(
                c.run_id == run_id, c.action_id.like(action_prefix + "%"), c.status != "superseded"
            )
            .order_by(c.action_id)
        )
        with readonly(self.engine.connect()) as conn:
            return [from_columns(r._mapping) for r in conn.execute(stmt)]

    def queue(
        self,
        tenant: str,
        *,
        status: str | None = PENDING,
        workflow: str | None = None,
        kind: str | None = None,
        risk: str | None = None,
        subject_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[ApprovalRequest], str | None]:
        """The queue: by deadline, then highest risk first; cursor pagination."""
        query = QueueQuery(status, workflow, kind, risk, subject_id, cursor, limit)
        page = json.loads(self.queue_page(tenant, query))
        return [ApprovalRequest.model_validate(i) for i in page["items"]], page["next_cursor"]

    def pending_summary(self, tenant: str) -> PendingSummary:
        """The whole pending queue in figures, counted by the database (not from a page)."""
        c = requests.c
        claimed = c.claimed_by.is_not(None)
        stmt = (
            select(c.workflow, c.kind, c.risk, claimed, func.count())
            .where(c.tenant == tenant, c.status == PENDING)
            .group_by(c.workflow, c.kind, c.risk, claimed)
        )
        summary = PendingSummary()
        with readonly(self.engine.connect()) as conn:
            for workflow, kind, risk, is_claimed, n in conn.execute(stmt):
                summary.total += n
                summary.by_risk[risk] = summary.by_risk.get(risk, 0) + n
                summary.claimed += n if is_claimed else 0
                summary.workflows.add(workflow)
                summary.kinds.add(kind)
        return summary

    def queue_page(self, tenant: str, query: QueueQuery) -> bytes:
        """A page of the queue as JSON bytes, `{"items", "next_cursor"}` (see `assemble`)."""
        sql, params = statement(tenant, query)
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(text(sql), params).all()
        if not missing(rows, query.limit):
            return assemble(rows, query.limit, {})
        # Items without a stored document: the page again, rendered in one snapshot.
        with readonly(self.engine.connect(), autocommit=False) as conn:
            rows = conn.execute(text(sql), params).all()
            ids = missing(rows, query.limit)
            return assemble(rows, query.limit, render(conn, ids) if ids else {})

    def shadow_agreement(self, tenant: str) -> list[dict[str, Any]]:
        """How often each shadow rule agreed with what people decided, to move tiers on evidence.

        Counts requests people settled (approved or rejected, not by policy): a shadow
        `auto_approve` agrees with an approval, a shadow `deny` with a rejection.
        """
        with readonly(self.engine.connect()) as conn:
            return shadow.agreement(conn, tenant)


def render(conn: Connection, ids: list[str]) -> dict[str, str]:
    """These requests' documents built from their columns (their stored ones are NULL)."""
    rows = conn.execute(select(*REQUEST_COLUMNS).where(requests.c.id.in_(ids))).all()
    approvers = defaultdict(list)
    for request_id, reviewer in conn.execute(
        select(votes.c.request_id, votes.c.reviewer).where(
            votes.c.request_id.in_(ids), votes.c.decision == "approve"
        )
    ):
        approvers[request_id].append(reviewer)
    return {r.id: document(from_columns(r._mapping, sorted(approvers[r.id]))) for r in rows}


# -- what other packages ask of the requests --------------------------------------------------


def pending_in_run(conn: Connection, run_id: str) -> int:
    """How many of a run's requests still wait for a decision (the run resumes at none)."""
    stmt = (
        select(func.count())
        .select_from(requests)
        .where(requests.c.run_id == run_id, requests.c.status == PENDING)
    )
    return int(conn.execute(stmt).scalar() or 0)


def action_owners(
    conn: Connection, tenant: str, action_ids: Iterable[str]
) -> dict[str, tuple[str | None, str | None]]:
    """(subject id, run id) of each of these actions proposed in the tenant."""
    c = requests.c
    stmt = select(c.action_id, c.subject_id, c.run_id).where(
        c.tenant == tenant, c.action_id.in_(list(action_ids))
    )
    return {action_id: (subject, run_id) for action_id, subject, run_id in conn.execute(stmt)}


def versions_by_action(
    conn: Connection, tenant: str, *, workflow: str | None = None
) -> dict[str, list[ApprovalRequest]]:
    """Every version of every action proposed in the tenant (and workflow), oldest first.

    `approvals` is left empty; `last_votes` gives when people last voted on each version.
    """
    c = requests.c
    stmt = select(*REQUEST_COLUMNS).where(c.tenant == tenant)
    if workflow is not None:
        stmt = stmt.where(c.workflow == workflow)
    versions: dict[str, list[ApprovalRequest]] = {}
    for row in conn.execute(stmt.order_by(c.action_id, c.version)):
        versions.setdefault(row.action_id, []).append(from_columns(row._mapping))
    return versions


def last_votes(conn: Connection, tenant: str) -> dict[str, float]:
    """When the last vote was cast on each of the tenant's requests that has one."""
    stmt = select(votes.c.request_id, votes.c.created_at).where(
        votes.c.request_id.in_(select(requests.c.id).where(requests.c.tenant == tenant))
    )
    last: dict[str, float] = {}
    for request_id, at in conn.execute(stmt):
        last[request_id] = max(at, last.get(request_id, at))
    return last


def waiting_by_tenant(conn: Connection) -> list[tuple[str, int, float]]:
    """Per tenant: how many requests are pending and when the oldest was proposed."""
    q = requests.c
    stmt = (
        select(q.tenant, func.count(), func.min(q.created_at))
        .where(q.status == PENDING)
        .group_by(q.tenant)
    )
    return [(t, n, oldest) for t, n, oldest in conn.execute(stmt)]


def failing_by_tenant(conn: Connection) -> list[tuple[str, int]]:
    """Per tenant: how many approved requests' last execution failed."""
    q = requests.c
    stmt = (
        select(q.tenant, func.count())
        .where(q.status == "approved", q.execution_status == "failed")
        .group_by(q.tenant)
    )
    return [(t, n) for t, n in conn.execute(stmt)]
