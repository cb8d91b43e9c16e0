"""The gate: approval requests bound to the exact payload, decided by policy and people.

Every request is bound to its action id and the SHA-256 of its canonical payload. A
decision names the hash the reviewer saw; a different hash is a conflict. Requests are
single use: `pending → approved | rejected | expired | cancelled | superseded`. An edit
makes a new version (diff recorded, schema re-validated, risk re-scored, policy re-run)
and supersedes the old one. Every state change commits with its audit event.

The record and its row are in approvals.request, the reads in approvals.queue (`Gate`
is a `Queue` with the writes), the expiry rules in approvals.expiry.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from approvals import expiry
from approvals.errors import (
    ApprovalConflictError,
    ApprovalForbiddenError,
    ClaimedError,
    InvalidPayloadError,
)
from approvals.kinds import Catalog, bind_subject, keep_subject
from approvals.notify import Notifier
from approvals.policy import Facts, Hold, Policy, assess, facts_of
from approvals.queue import Queue
from approvals.request import (
    PENDING,
    SETTLED,
    ApprovalRequest,
    audit_event,
    check_may_decide,
    new_row,
)
from approvals.rows import change, insert_row, insert_vote, load
from audit import Actor, TransactionalAuditLog
from audit.db import readonly

log = logging.getLogger(__name__)
_SETTLED_KEY = "copilot.settled"


class Gate(Queue):
    """Submit proposals, decide, edit, claim, expire, list. One per process, built at the edge."""

    def __init__(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        catalog: Catalog,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
        on_settled: Callable[[Connection, ApprovalRequest], None] | None = None,
        on_committed: Callable[[ApprovalRequest], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        super().__init__(engine)
        self.notifier = notifier  # told after commit about new pending requests
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
        principal: str | None = None,
        hold: Hold | None = None,
        conn: Connection | None = None,
    ) -> ApprovalRequest:
        """Validate, score and put a proposal before the policy; inside `conn` when given.

        `hold` makes it need a person (of `hold.role`, if given) even where the policy would
        auto-approve it (a paused rollout's proposals, a resume request).

        The kind must be in the catalog (else the request is recorded as rejected by
        policy `unknown_kind`); its payload must fit the kind's schema (else
        InvalidPayloadError and nothing is written), and the fields the kind declares as
        naming its subject must name `subject_id` (else SubjectMismatchError). The risk
        comes from the kind. `principal` (who caused the run) may not decide it.
        """
        facts = facts_of(self.catalog, workflow=workflow, kind=kind, payload=payload,
                         confidence=confidence, level=level)  # fmt: skip
        if kind in self.catalog:
            bind_subject(self.catalog.get(kind), facts.payload, subject_id)
        row = self._new_row(
            facts, hold=hold, tenant=tenant, workflow=workflow, run_id=run_id, subject_id=subject_id,
            action_id=action_id or uuid.uuid4().hex, version=1, triggered_by=triggered_by,
            explanation=explanation, principal=principal,
        )  # fmt: skip
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

    def _new_row(self, facts: Facts, *, hold: Hold | None = None, **fields: Any) -> dict[str, Any]:
        evaluation = assess(self.policy, self.catalog, facts, hold)
        now = self.clock()
        due = expiry.deadline(self.catalog, facts.kind, now)
        return new_row(evaluation, facts, now=now, deadline=due, **fields)

    def _insert(self, conn: Connection, row: dict[str, Any], *, actor: Actor) -> ApprovalRequest:
        req = insert_row(conn, row)
        data = {
            "status": req.status, "kind": req.kind, "version": req.version,
            "payload_hash": req.payload_hash, "risk": req.risk.value,
            "required_n": req.required_n, "role": req.role, "rule": req.policy_rule,
            "shadow": req.shadow, "supersedes": req.supersedes,
        }  # fmt: skip
        personal = {"payload": req.payload}
        self._audit(conn, req, "approval.requested", actor, data, personal=personal)
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
        principal: str | None = None,
    ) -> ApprovalRequest:
        """Record one reviewer's decision on the payload version they saw.

        Exactly one of any number of concurrent deciders wins a single-reviewer request;
        the others get ApprovalConflictError. A reject needs a reason. `principal` is the
        decider's (`key:<id>`): the run's own principal is refused (SeparationOfDutiesError).
        """
        if decision == "reject" and not (reason and reason.strip()):
            raise ApprovalForbiddenError("a rejection needs a reason the proposer can learn from")
        with self._tx() as conn:
            req = load(conn, request_id, tenant, lock=True)
            self._check_may_decide(req, reviewer, roles, payload_hash, principal)
            human = self._vote(conn, req, reviewer, decision, reason)
            approvers = sorted([*req.approvals, reviewer]) if decision == "approve" else None
            if decision == "reject":
                self._set_status(conn, req, "rejected", human, reason=reason)
            elif approvers is not None and len(approvers) >= req.required_n:
                self._set_status(conn, req, "approved", human, approvals=approvers)
            else:
                change(conn, req, approvals=approvers)
            return load(conn, request_id, tenant)

    def _vote(
        self,
        conn: Connection,
        req: ApprovalRequest,
        reviewer: str,
        decision: str,
        reason: str | None,
    ) -> Actor:
        """Record the vote and its audit event; the reviewer as the actor of what follows."""
        insert_vote(conn, req.id, reviewer, decision, reason, self.clock())
        human = Actor.human(reviewer)
        data = {"decision": decision, "payload_hash": req.payload_hash, "reason": reason}
        self._audit(conn, req, "approval.vote", human, data)
        return human

    def _check_may_decide(
        self,
        req: ApprovalRequest,
        reviewer: str,
        roles: set[str] | frozenset[str],
        seen_hash: str,
        principal: str | None,
    ) -> None:
        check_may_decide(req, reviewer, roles, seen_hash, self.clock, principal)

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
        principal: str | None = None,
    ) -> ApprovalRequest:
        """Edit then approve: a new version (diff recorded, re-validated, re-scored, policy re-run).

        The old version is superseded. The editor's approval counts toward the new
        version's quorum; if the edit raised the risk, the policy may require more. An
        edit that changes a field naming the action's subject is SubjectLockedError.
        """
        with self._tx() as conn:
            req = load(conn, request_id, tenant, lock=True)
            self._check_may_decide(req, reviewer, roles, payload_hash, principal)
            human = Actor.human(reviewer)
            new = self._revise(conn, req, edits, human)
            if new.status != PENDING:  # the policy settled the new version at once
                self._settled(conn, new)
                return new
            self._vote(conn, new, reviewer, "approve", "edited")
            if new.required_n <= 1:
                self._set_status(conn, new, "approved", human, approvals=[reviewer])
            else:
                change(conn, new, approvals=[reviewer])
            return load(conn, new.id, tenant)

    def _revise(
        self, conn: Connection, req: ApprovalRequest, edits: dict[str, Any], human: Actor
    ) -> ApprovalRequest:
        """Supersede `req` with a new version carrying `edits`, put before the policy again."""
        kind = self.catalog.get(req.kind)  # raises for a kind the catalog no longer has
        facts = facts_of(self.catalog, workflow=req.workflow, kind=req.kind,
                         payload={**req.payload, **edits}, confidence=req.confidence,
                         level=req.level)  # fmt: skip
        clean = facts.payload
        keep_subject(kind, req.payload, clean, req.subject_id)
        if clean == req.payload:
            raise InvalidPayloadError("the edit changes nothing; approve the request instead")
        diff = {
            k: [req.payload.get(k), clean.get(k)]
            for k in sorted(set(req.payload) | set(clean))
            if req.payload.get(k) != clean.get(k)
        }
        self._set_status(conn, req, "superseded", human)
        row = self._new_row(
            facts, tenant=req.tenant, workflow=req.workflow, run_id=req.run_id,
            subject_id=req.subject_id, action_id=req.action_id, version=req.version + 1,
            triggered_by=req.triggered_by, explanation=req.explanation, principal=req.principal,
        )  # fmt: skip
        row["supersedes"] = req.id
        new = self._insert(conn, row, actor=human)
        edited = {
            "from": req.id,
            "fields": sorted(diff),
            "old_hash": req.payload_hash,
            "new_hash": new.payload_hash,
            "risk": [req.risk.value, new.risk.value],
        }
        self._audit(conn, new, "approval.edited", human, edited, personal={"diff": diff})
        return new

    def claim(
        self, request_id: str, *, reviewer: str, seconds: float = 300, tenant: str | None = None
    ) -> ApprovalRequest:
        """Hold a pending request for a few minutes so two people do not work the same item."""
        with self.engine.begin() as conn:
            req = load(conn, request_id, tenant, lock=True)
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
            change(conn, req, claimed_by=reviewer, claim_expires_at=now + seconds, updated_at=now)
            self._audit(
                conn, req, "approval.claimed", Actor.human(reviewer), {"until": now + seconds}
            )
            return load(conn, req.id, tenant)

    def expire_due(self) -> list[ApprovalRequest]:
        """Apply each overdue request's expiry rule: expire, escalate, or approve if low risk."""
        now = self.clock()
        with readonly(self.engine.connect()) as reader:
            due = expiry.due(reader, now)
        done = []
        for request_id in due:
            with self._tx() as conn:
                req = load(conn, request_id, None, lock=True)
                if req.status != PENDING or req.deadline >= now:
                    continue  # decided meanwhile
                rule = expiry.on_expiry(req, self.catalog.get(req.kind), now)
                system = Actor.system("expiry")
                if isinstance(rule, expiry.Escalate):
                    change(conn, req, role=rule.role, deadline=rule.deadline, updated_at=now)
                    moved = {"from_role": req.role, "to_role": rule.role, "deadline": rule.deadline}
                    self._audit(conn, req, "approval.escalated", system, moved)
                else:
                    self._set_status(conn, req, rule.status, system, reason=rule.reason)
                done.append(load(conn, req.id, None))
        return done

    def cancel(
        self, request_id: str, *, reason: str, actor: Actor, tenant: str | None = None
    ) -> ApprovalRequest:
        """Cancel a pending request (e.g. consent withdrawn before execution)."""
        with self._tx() as conn:
            req = load(conn, request_id, tenant, lock=True)
            if req.status not in (PENDING, "approved") or req.execution_status == "done":
                raise ApprovalConflictError(
                    f"approval {req.id} is {req.status}; nothing to cancel", approval_id=req.id
                )
            self._set_status(conn, req, "cancelled", actor, reason=reason)
            return load(conn, req.id, tenant)

    def record_execution(
        self, request_id: str, *, ok: bool, detail: dict[str, Any]
    ) -> ApprovalRequest:
        """Close an approved request as executed (receipt written) or mark the failure to retry.

        Exactly once, like the execution itself: under the request's row lock, a request
        already closed as executed is returned as it is, with no second `approval.executed`
        (a worker that froze between acting and recording, resuming after another took its
        run over, replays the receipt and would otherwise record it again).
        """
        with self.engine.begin() as conn:
            req = load(conn, request_id, None, lock=True)
            if req.status != "approved":
                raise ApprovalConflictError(
                    f"approval {req.id} is {req.status}, not approved", approval_id=req.id
                )
            if req.execution_status == "done":
                return req
            change(
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
            return load(conn, req.id, None)

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
        moved = change(
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
            self._settled(conn, load(conn, req.id, None))

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
        self.audit.append_in(conn, req.tenant, [audit_event(req, event, actor, data, personal)])
