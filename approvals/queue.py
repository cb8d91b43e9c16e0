"""The approval queue's read: one statement per filter shape, pages joined from stored documents.

The queue is the hottest read there is (every reviewer's tool polls it), so a page is not
built record by record: each request's JSON is stored beside it (`approval_requests.doc`,
written by the gate with every change it makes) and a page is one indexed range scan plus
a string join. A row whose document is NULL (changed by something other than the gate, or
older than the column) is rendered from its columns by the caller and spliced in; the
bytes are the same either way, the items exactly `ApprovalRequest`'s JSON.

One statement text serves the synchronous read (SQLAlchemy, SQLite and PostgreSQL:
`statement`) and the API's asyncio read on PostgreSQL (asyncpg: `positional`).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from approvals.errors import ApprovalError

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
    """(deadline, risk rank, id) of the request a cursor points after."""
    try:
        deadline, neg_rank, last = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        decoded = float(deadline), -int(neg_rank), str(last)
    except (ValueError, TypeError) as exc:
        decoded = None
        cause: Exception | None = exc
    else:
        cause = None
    # A cursor comes back from clients: only the shapes we issue reach the query (a huge
    # integer or a non-finite deadline would fail in the driver, not here).
    if (
        decoded is None
        or not math.isfinite(decoded[0])
        or not -10 <= decoded[1] <= 10
        or not _ID.fullmatch(decoded[2])
    ):
        raise ApprovalError(
            "the cursor is not one this server issued; start from the first page",
            code="approval.bad_cursor",
        ) from cause
    return decoded
