"""The gate: approval requests bound to the exact payload, decided by policy and people.

Every request is bound to its action id and the SHA-256 of its canonical payload. A
decision names the hash the reviewer saw; a different hash is a conflict. Requests are
single use: `pending → approved | rejected | expired | cancelled | superseded`. An edit
makes a new version (diff recorded, schema re-validated, risk re-scored, policy re-run)
and supersedes the old one. Every state change commits with its audit event.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, text, update

from approvals import queue as queue_sql
from approvals.errors import (
    ApprovalConflictError,
    ApprovalForbiddenError,
    ApprovalNotFoundError,
    ClaimedError,
    InvalidPayloadError,
)
from approvals.kinds import Catalog, OnExpiry, Risk
from approvals.policy import REQUIRE_ONE, Facts, Policy
from approvals.request import ApprovalRequest, payload_hash
from approvals.tables import REQUEST_COLUMNS, requests, votes
from audit import Actor, AuditEvent, SqlAuditStore, Versions
from audit.db import readonly

log = logging.getLogger(__name__)
PENDING = "pending"
_SETTLED_KEY = "copilot.settled"
SETTLED = frozenset({"approved", "rejected", "expired", "cancelled"})


def shadow_figures(rows: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per shadow rule, how often it agreed with people, from (shadow JSON, status) pairs.

    A shadow `auto_approve` agrees with an approval, a shadow `deny` with a rejection. The
    rows must be requests people settled (see `Gate.shadow_agreement`).
    """
    figures: dict[str, dict[str, Any]] = {}
    for shadow, status in rows:
        for entry in json.loads(shadow):
            would = {"auto_approve": "approved", "deny": "rejected"}.get(entry["action"])
            if would is None:
                continue
            fig = figures.setdefault(
                entry["rule"], {"rule": entry["rule"], "decided": 0, "agreed": 0}
            )
            fig["decided"] += 1
            fig["agreed"] += would == status
    for fig in figures.values():
        fig["agreement"] = round(fig["agreed"] / fig["decided"], 3)
    return sorted(figures.values(), key=lambda f: f["rule"])


@dataclass
class PendingSummary:
    """How many requests wait, by risk, how many are claimed, and their workflows and kinds."""

    total: int = 0
    by_risk: dict[str, int] = field(default_factory=dict)
    claimed: int = 0
    workflows: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)


_COLUMN_FIELDS = [f for f in ApprovalRequest.model_fields if f != "approvals"]


def _request(m: Mapping[Any, Any], approvals: list[str] | None = None) -> ApprovalRequest:
    """A request from its columns (a row's mapping, or the values about to be inserted)."""
    values: dict[str, Any] = {f: m.get(f) for f in _COLUMN_FIELDS}
    values["payload"] = json.loads(values["payload"])
    values["shadow"] = json.loads(values["shadow"])
    values["explanation"] = json.loads(values["explanation"]) if values["explanation"] else None
    return ApprovalRequest(**values, approvals=approvals or [])


def _doc(req: ApprovalRequest) -> str:
    """The stored document of a request: exactly what the API serves for it."""
    return req.model_dump_json()


def stored_document(columns: Mapping[str, Any], approvals: list[str] | None = None) -> str:
    """The document the gate stores for a row with these column values (for bulk loaders)."""
    return _doc(_request(columns, approvals))


_GET = select(*REQUEST_COLUMNS).where(requests.c.id == bindparam("rid"))


class Gate:
    """Submit proposals, decide, edit, claim, expire, list. One per process, built at the edge."""

    def __init__(
        self,
        engine: Engine,
        audit: SqlAuditStore,
        catalog: Catalog,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
        on_settled: Callable[[Connection, ApprovalRequest], None] | None = None,
        on_committed: Callable[[ApprovalRequest], None] | None = None,
        notifier: Any = None,
    ) -> None:
        self.engine = engine
        self.notifier = notifier  # a Notifier; told after commit about new pending requests
        # Called inside the transaction that settles a request (approved, rejected, expired,
        # cancelled): the runtime queues the waiting run there, so the decision and the
        # resume commit together (a transactional outbox: the queued row is the message).
        self.on_settled = on_settled
        # Called after that transaction commits: a wake-up hint for a worker (the enqueue).
        self.on_committed = on_committed
        self.audit = audit
        self.catalog = catalog
        self.policy = policy
        self.clock = clock
        self._pg = engine.dialect.name == "postgresql"

    # -- reading ----------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction; after it commits, `on_committed` hears of what it settled."""
        settled: list[ApprovalRequest] = []
        with self.engine.begin() as conn:
            conn.info[_SETTLED_KEY] = settled
            try:
                yield conn
            finally:
                conn.info.pop(_SETTLED_KEY, None)
        for req in settled:  # reached only when the transaction committed
            if self.on_committed is not None:
                try:
                    self.on_committed(req)
                except Exception:  # a wake-up hint; the database already holds the truth
                    log.warning("on_committed failed for approval %s", req.id, exc_info=True)

    def get(self, request_id: str, *, tenant: str | None = None) -> ApprovalRequest:
        """The request (with its approvers), or ApprovalNotFoundError (also for other tenants)."""
        with readonly(self.engine.connect(), autocommit=False) as conn:
            return self._get(conn, request_id, tenant)

    def _get(
        self, conn: Connection, request_id: str, tenant: str | None, *, lock: bool = False
    ) -> ApprovalRequest:
        stmt = _GET.with_for_update() if lock and self._pg else _GET
        row = conn.execute(stmt, {"rid": request_id}).first()
        if row is None or (tenant is not None and row.tenant != tenant):
            raise ApprovalNotFoundError(
                f"no approval request {request_id!r}", approval_id=request_id
            )
        approvers = conn.execute(
            select(votes.c.reviewer).where(
                votes.c.request_id == request_id, votes.c.decision == "approve"
            )
        ).scalars()
        return _request(row._mapping, sorted(approvers))

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
            return [_request(r._mapping) for r in conn.execute(stmt)]

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
        query = queue_sql.QueueQuery(status, workflow, kind, risk, subject_id, cursor, limit)
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

    def queue_page(self, tenant: str, query: queue_sql.QueueQuery) -> bytes:
        """A page of the queue as JSON bytes, `{"items", "next_cursor"}` (see approvals.queue)."""
        sql, params = queue_sql.statement(tenant, query)
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(text(sql), params).all()
        if not queue_sql.missing(rows, query.limit):
            return queue_sql.assemble(rows, query.limit, {})
        # Items without a stored document: the page again, rendered in one snapshot.
        with readonly(self.engine.connect(), autocommit=False) as conn:
            rows = conn.execute(text(sql), params).all()
            ids = queue_sql.missing(rows, query.limit)
            return queue_sql.assemble(rows, query.limit, self._render(conn, ids) if ids else {})

    def _render(self, conn: Connection, ids: list[str]) -> dict[str, str]:
        """These requests' documents built from their columns (their stored ones are NULL)."""
        rows = conn.execute(select(*REQUEST_COLUMNS).where(requests.c.id.in_(ids))).all()
        approvers = defaultdict(list)
        for request_id, reviewer in conn.execute(
            select(votes.c.request_id, votes.c.reviewer).where(
                votes.c.request_id.in_(ids), votes.c.decision == "approve"
            )
        ):
            approvers[request_id].append(reviewer)
        return {r.id: _doc(_request(r._mapping, sorted(approvers[r.id]))) for r in rows}

    # -- proposing --------------------------------------------------------------------------

    def submit(
        self,
        *,
        tenant: str,
        workflow: str,
        kind: str,
        payload: dict[str, Any],
        confidence: float,
        level: str,
        triggered_by: str,
        run_id: str | None = None,
        subject_id: str | None = None,
        action_id: str | None = None,
        explanation: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> ApprovalRequest:
        """Validate, score and put a proposal before the policy; inside `conn` when given.

        The kind must be in the catalog (else the request is recorded as rejected by
        policy `unknown_kind`); its payload must fit the kind's schema (else
        InvalidPayloadError and nothing is written). The risk comes from the kind.
        """
        known = kind in self.catalog
        model = self.catalog.get(kind).validate(payload) if known else None
        clean = model.model_dump(mode="json") if model is not None else payload
        risk = self.catalog.get(kind).score(model) if known and model is not None else Risk.HIGH
        reaches = self.catalog.get(kind).reaches_customer if known else True
        facts = Facts(
            workflow=workflow,
            kind=kind,
            known_kind=known,
            risk=risk,
            confidence=confidence,
            level=level,
            reaches_customer=reaches,
            payload=clean,
        )
        row = self._new_row(
            tenant=tenant,
            workflow=workflow,
            run_id=run_id,
            subject_id=subject_id,
            action_id=action_id or uuid.uuid4().hex,
            version=1,
            kind=kind,
            payload=clean,
            facts=facts,
            triggered_by=triggered_by,
            explanation=explanation,
        )
        if conn is not None:  # the caller commits, then calls `notify` for pending ones
            return self._insert(conn, row, actor=Actor.agent(triggered_by))
        with self.engine.begin() as own:
            req = self._insert(own, row, actor=Actor.agent(triggered_by))
        self.notify([req])
        return req

    def notify(self, requests_: list[ApprovalRequest]) -> None:
        """Tell the notifier about the pending ones (after their commit; never raises)."""
        if self.notifier is None:
            return
        for req in requests_:
            if req.status == PENDING:
                self.notifier.notify(req)

    def shadow_agreement(self, tenant: str) -> list[dict[str, Any]]:
        """How often each shadow rule agreed with what people decided, to move tiers on evidence.

        Counts requests people settled (approved or rejected, not by policy): a shadow
        `auto_approve` agrees with an approval, a shadow `deny` with a rejection.
        """
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(
                select(requests.c.shadow, requests.c.status).where(
                    requests.c.tenant == tenant, requests.c.status.in_(["approved", "rejected"]),
                    requests.c.shadow != "[]",
                    or_(requests.c.reason.is_(None), ~requests.c.reason.like("policy rule %")),
                )
            ).all()  # fmt: skip
        return shadow_figures((shadow, status) for shadow, status in rows)

    def _new_row(self, *, facts: Facts, kind: str, **fields: Any) -> dict[str, Any]:
        evaluation = self.policy.evaluate(facts)
        if (
            evaluation.outcome.action == "auto_approve"
            and facts.known_kind
            and self.catalog.get(kind).requires_person
        ):
            evaluation = evaluation.model_copy(
                update={"outcome": REQUIRE_ONE, "rule": f"{evaluation.rule}+requires_person"}
            )
        outcome = evaluation.outcome
        status = {"auto_approve": "approved", "deny": "rejected", "require": PENDING}[
            outcome.action
        ]
        now = self.clock()
        expires = self.catalog.get(kind).expires_after.total_seconds() if facts.known_kind else 0
        return {
            **fields,
            "id": uuid.uuid4().hex,
            "kind": kind,
            "payload": json.dumps(fields["payload"], sort_keys=True),
            "payload_hash": payload_hash(fields["payload"]),
            "risk": facts.risk.value,
            "risk_rank": facts.risk.rank,
            "confidence": facts.confidence,
            "level": facts.level,
            "required_n": outcome.n,
            "role": outcome.role,
            "status": status,
            "policy_rule": evaluation.rule,
            "policy_version": evaluation.policy_version,
            "shadow": json.dumps(evaluation.shadow, sort_keys=True),
            "explanation": json.dumps(fields["explanation"], sort_keys=True)
            if fields["explanation"]
            else None,
            "created_at": now,
            "updated_at": now,
            "deadline": now + expires,
            "reason": f"policy rule {evaluation.rule}" if status != PENDING else None,
        }

    def _insert(self, conn: Connection, row: dict[str, Any], *, actor: Actor) -> ApprovalRequest:
        req = _request(row)
        conn.execute(insert(requests), {**row, "doc": _doc(req)})
        self._audit(
            conn,
            req,
            "approval.requested",
            actor,
            {
                "status": req.status,
                "kind": req.kind,
                "version": req.version,
                "payload_hash": req.payload_hash,
                "risk": req.risk.value,
                "required_n": req.required_n,
                "role": req.role,
                "rule": req.policy_rule,
                "shadow": req.shadow,
                "supersedes": req.supersedes,
            },
            personal={"payload": req.payload},
        )
        return req

    # -- deciding ---------------------------------------------------------------------------

    def decide(
        self,
        request_id: str,
        *,
        reviewer: str,
        roles: set[str] | frozenset[str],
        decision: Literal["approve", "reject"],
        payload_hash: str,
        reason: str | None = None,
        tenant: str | None = None,
    ) -> ApprovalRequest:
        """Record one reviewer's decision on the payload version they saw.

        Exactly one of any number of concurrent deciders wins a single-reviewer request;
        the others get ApprovalConflictError. A reject needs a reason.
        """
        if decision == "reject" and not (reason and reason.strip()):
            raise ApprovalForbiddenError("a rejection needs a reason the proposer can learn from")
        with self._tx() as conn:
            req = self._get(conn, request_id, tenant, lock=True)
            self._check_may_decide(req, reviewer, roles, payload_hash)
            now = self.clock()
            conn.execute(
                insert(votes).values(
                    request_id=req.id,
                    reviewer=reviewer,
                    decision=decision,
                    reason=reason,
                    created_at=now,
                )
            )
            human = Actor.human(reviewer)
            self._audit(
                conn,
                req,
                "approval.vote",
                human,
                {"decision": decision, "payload_hash": req.payload_hash, "reason": reason},
            )
            approvers = sorted([*req.approvals, reviewer]) if decision == "approve" else None
            if decision == "reject":
                self._set_status(conn, req, "rejected", human, reason=reason)
            elif approvers is not None and len(approvers) >= req.required_n:
                self._set_status(conn, req, "approved", human, approvals=approvers)
            else:
                self._changed(conn, req, approvals=approvers)
            return self._get(conn, request_id, tenant)

    def _check_may_decide(
        self, req: ApprovalRequest, reviewer: str, roles: set[str] | frozenset[str], seen_hash: str
    ) -> None:
        if req.status != PENDING:
            raise ApprovalConflictError(
                f"approval {req.id} is already {req.status}; reload the queue",
                approval_id=req.id,
                status=req.status,
            )
        if seen_hash != req.payload_hash:
            raise ApprovalConflictError(
                f"approval {req.id}'s payload changed since you read it; review the current version",
                approval_id=req.id,
                payload_hash=req.payload_hash,
            )
        if reviewer == req.triggered_by:
            raise ApprovalForbiddenError(
                "whoever triggered the run cannot approve its actions", approval_id=req.id
            )
        if req.role not in roles:
            raise ApprovalForbiddenError(
                f"this approval needs the {req.role!r} role", approval_id=req.id
            )
        if reviewer in req.approvals:
            raise ApprovalForbiddenError(
                "one reviewer counts once toward a quorum", approval_id=req.id
            )
        if (
            req.claimed_by
            and req.claimed_by != reviewer
            and (req.claim_expires_at or 0) > self.clock()
        ):
            raise ClaimedError(
                f"{req.claimed_by} is working on approval {req.id}",
                approval_id=req.id,
                claimed_by=req.claimed_by,
            )

    def edit(self, request_id: str, **kwargs: Any) -> ApprovalRequest:
        """Edit then approve (see `_edit`); a new version still pending is notified after commit."""
        result = self._edit(request_id, **kwargs)
        self.notify([result])
        return result

    def _edit(
        self,
        request_id: str,
        *,
        reviewer: str,
        roles: set[str] | frozenset[str],
        edits: dict[str, Any],
        payload_hash: str,
        tenant: str | None = None,
    ) -> ApprovalRequest:
        """Edit then approve: a new version (diff recorded, re-validated, re-scored, policy re-run).

        The old version is superseded. The editor's approval counts toward the new
        version's quorum; if the edit raised the risk, the policy may require more.
        """
        with self._tx() as conn:
            req = self._get(conn, request_id, tenant, lock=True)
            self._check_may_decide(req, reviewer, roles, payload_hash)
            kind = self.catalog.get(req.kind)
            merged = {**req.payload, **edits}
            model = kind.validate(merged)
            clean = model.model_dump(mode="json")
            if clean == req.payload:
                raise InvalidPayloadError("the edit changes nothing; approve the request instead")
            facts = Facts(
                workflow=req.workflow,
                kind=req.kind,
                known_kind=True,
                risk=kind.score(model),
                confidence=req.confidence,
                level=req.level,
                reaches_customer=kind.reaches_customer,
                payload=clean,
            )
            human = Actor.human(reviewer)
            diff = {
                k: [req.payload.get(k), clean.get(k)]
                for k in sorted(set(req.payload) | set(clean))
                if req.payload.get(k) != clean.get(k)
            }
            self._set_status(conn, req, "superseded", human)
            row = self._new_row(
                tenant=req.tenant,
                workflow=req.workflow,
                run_id=req.run_id,
                subject_id=req.subject_id,
                action_id=req.action_id,
                version=req.version + 1,
                kind=req.kind,
                payload=clean,
                facts=facts,
                triggered_by=req.triggered_by,
                explanation=req.explanation,
            )
            row["supersedes"] = req.id
            new = self._insert(conn, row, actor=human)
            self._audit(
                conn,
                new,
                "approval.edited",
                human,
                {
                    "from": req.id,
                    "fields": sorted(diff),
                    "old_hash": req.payload_hash,
                    "new_hash": new.payload_hash,
                    "risk": [req.risk.value, new.risk.value],
                },
                personal={"diff": diff},
            )
            if new.status != PENDING:  # the policy settled the new version at once
                self._settled(conn, new)
                return new
            conn.execute(
                insert(votes).values(
                    request_id=new.id,
                    reviewer=reviewer,
                    decision="approve",
                    reason="edited",
                    created_at=self.clock(),
                )
            )
            self._audit(
                conn,
                new,
                "approval.vote",
                human,
                {"decision": "approve", "payload_hash": new.payload_hash, "reason": "edited"},
            )
            if new.required_n <= 1:
                self._set_status(conn, new, "approved", human, approvals=[reviewer])
            else:
                self._changed(conn, new, approvals=[reviewer])
            return self._get(conn, new.id, tenant)

    def claim(
        self, request_id: str, *, reviewer: str, seconds: float = 300, tenant: str | None = None
    ) -> ApprovalRequest:
        """Hold a pending request for a few minutes so two people do not work the same item."""
        with self.engine.begin() as conn:
            req = self._get(conn, request_id, tenant, lock=True)
            now = self.clock()
            if req.status != PENDING:
                raise ApprovalConflictError(
                    f"approval {req.id} is already {req.status}", approval_id=req.id
                )
            if req.claimed_by not in (None, reviewer) and (req.claim_expires_at or 0) > now:
                raise ClaimedError(
                    f"{req.claimed_by} is working on approval {req.id}",
                    approval_id=req.id,
                    claimed_by=req.claimed_by,
                )
            self._changed(
                conn, req, claimed_by=reviewer, claim_expires_at=now + seconds, updated_at=now
            )
            self._audit(
                conn, req, "approval.claimed", Actor.human(reviewer), {"until": now + seconds}
            )
            return self._get(conn, req.id, tenant)

    def expire_due(self) -> list[ApprovalRequest]:
        """Apply each overdue request's expiry rule: expire, escalate, or approve if low risk."""
        now = self.clock()
        with readonly(self.engine.connect()) as conn:
            due = (
                conn.execute(
                    select(requests.c.id).where(
                        requests.c.status == PENDING, requests.c.deadline < now
                    )
                )
                .scalars()
                .all()
            )
        done = []
        for request_id in due:
            with self._tx() as conn:
                req = self._get(conn, request_id, None, lock=True)
                if req.status != PENDING or req.deadline >= now:
                    continue  # decided meanwhile
                kind = self.catalog.get(req.kind)
                system = Actor.system("expiry")
                if kind.on_expiry == OnExpiry.ESCALATE and req.role != kind.escalate_to:
                    deadline = now + kind.expires_after.total_seconds()
                    self._changed(
                        conn, req, role=kind.escalate_to, deadline=deadline, updated_at=now
                    )
                    self._audit(
                        conn,
                        req,
                        "approval.escalated",
                        system,
                        {"from_role": req.role, "to_role": kind.escalate_to, "deadline": deadline},
                    )
                elif (
                    kind.on_expiry == OnExpiry.AUTO_APPROVE_LOW
                    and req.risk == Risk.LOW
                    and not kind.requires_person
                ):
                    self._set_status(
                        conn, req, "approved", system, reason="deadline passed; low risk"
                    )
                else:
                    self._set_status(conn, req, "expired", system, reason="deadline passed")
                done.append(self._get(conn, req.id, None))
        return done

    def cancel(
        self, request_id: str, *, reason: str, actor: Actor, tenant: str | None = None
    ) -> ApprovalRequest:
        """Cancel a pending request (e.g. consent withdrawn before execution)."""
        with self._tx() as conn:
            req = self._get(conn, request_id, tenant, lock=True)
            if req.status not in (PENDING, "approved") or req.execution_status == "done":
                raise ApprovalConflictError(
                    f"approval {req.id} is {req.status}; nothing to cancel", approval_id=req.id
                )
            self._set_status(conn, req, "cancelled", actor, reason=reason)
            return self._get(conn, req.id, tenant)

    def record_execution(
        self, request_id: str, *, ok: bool, detail: dict[str, Any]
    ) -> ApprovalRequest:
        """Close an approved request as executed (receipt written) or mark the failure to retry."""
        with self.engine.begin() as conn:
            req = self._get(conn, request_id, None, lock=True)
            if req.status != "approved":
                raise ApprovalConflictError(
                    f"approval {req.id} is {req.status}, not approved", approval_id=req.id
                )
            self._changed(
                conn,
                req,
                execution_status="done" if ok else "failed",
                updated_at=self.clock(),
                columns={"execution": json.dumps(detail, sort_keys=True)},
            )
            self._audit(
                conn,
                req,
                "approval.executed" if ok else "approval.execution_failed",
                Actor.system("executor"),
                {"ok": ok, **detail},
            )
            return self._get(conn, req.id, None)

    # -- helpers ----------------------------------------------------------------------------

    def _set_status(
        self,
        conn: Connection,
        req: ApprovalRequest,
        status: str,
        actor: Actor,
        *,
        reason: str | None = None,
        approvals: list[str] | None = None,
    ) -> None:
        moved = self._changed(
            conn,
            req,
            expect_status=req.status,
            status=status,
            reason=reason,
            updated_at=self.clock(),
            approvals=req.approvals if approvals is None else approvals,
        )
        if moved != 1:
            raise ApprovalConflictError(
                f"approval {req.id} changed under us; retry", approval_id=req.id
            )
        self._audit(
            conn,
            req,
            f"approval.{status}",
            actor,
            {"from": req.status, "to": status, "reason": reason, "payload_hash": req.payload_hash},
        )
        if status in SETTLED:
            self._settled(conn, self._get(conn, req.id, None))

    def _changed(
        self,
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
        document is the request with the changes applied, what `_get` reads back after.
        """
        doc = _doc(req.model_copy(update=changes))
        values = {k: v for k, v in changes.items() if k != "approvals"}
        stmt = update(requests).where(requests.c.id == req.id)
        if expect_status is not None:
            stmt = stmt.where(requests.c.status == expect_status)
        return conn.execute(stmt.values(**values, **(columns or {}), doc=doc)).rowcount

    def _settled(self, conn: Connection, req: ApprovalRequest) -> None:
        """A request reached a final status: resume its run in this transaction, wake after it."""
        if self.on_settled is not None:
            self.on_settled(conn, req)
        conn.info.get(_SETTLED_KEY, []).append(req)

    def _audit(
        self,
        conn: Connection,
        req: ApprovalRequest,
        event: str,
        actor: Actor,
        data: dict[str, Any],
        personal: dict[str, Any] | None = None,
    ) -> None:
        self.audit.append_in(
            conn,
            req.tenant,
            [
                AuditEvent(
                    event_type=event,
                    actor=actor,
                    run_id=req.run_id,
                    subject_id=req.subject_id,
                    versions=Versions(workflow=req.workflow, policy=req.policy_version),
                    data={"approval_id": req.id, "action_id": req.action_id, **data},
                    personal=personal,
                )
            ],
        )
