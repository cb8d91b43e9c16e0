"""Guarded rollouts: stop rules that pause a workflow when the sequential test confirms a breach.

A workflow declares stop rules (`Workflow(..., stop_rules=[StopRule(outcome="complained",
max_increase=0.005)])`). Each review cycle (beat's `copilot.guard`, daily) the guard reads
every guarded workflow's holdout comparison and computes the anytime-valid interval of
the outcome's increase (treated - holdout, `copilot.measure.evidence.sequential`): it is
safe to look every day, so a breach is *confirmed* when the interval's lower bound is
past `max_increase`, not when a point estimate wobbles there.

A confirmed breach pauses the workflow, in one transaction: the pause row, its audit
event (`rollout.paused`, with the rule and the evidence) and a `rollout.resume` approval
request that only an admin can decide. From then on every proposal of the workflow needs
a person (the gate's `Hold`: a policy's auto-approve becomes one reviewer, recorded as
`<rule>+rollout_paused`). The notifier hears of the resume request as of any pending
one; the inbox and the report show a banner. An admin approving the resume request lifts
the pause in the transaction of that decision (`rollout.resumed`, naming the admin); a
rejection or expiry leaves it paused (a guard later files a new request if none is open).
Placements (which then serve control) and learned policies (the rules serve) pause through
the same table (`kind`); `paused_rollouts` lists all three for the banners.

A comparison whose arms fail the sample-ratio check (`copilot.measure.evidence.srm`) is
not evidence of anything, a breach included: the guard refuses to pause on it, audits
`rollout.pause_refused` with the code `rollout.srm_blocked`, and returns the refusal; the
report and the review show the mismatch as a blocking warning. Fix the assignment or the
logging; the next cycle acts on a fair split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, insert, select, update

from approvals import ActionKind, ApprovalRequest, Gate, Hold, Risk
from approvals.rows import load
from audit import Actor, AuditEvent, CopilotError, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import rollout_pauses
from copilot.measure.evidence.comparison import HOLDOUT, TREATED, ComparisonSource, arms_of
from copilot.measure.evidence.rules import Paused, StopRule
from copilot.measure.evidence.sequential import DEFAULT_HORIZON, anytime_lift
from copilot.measure.evidence.srm import check_ratio

RESUME_KIND = "rollout.resume"
SRM_BLOCKED = "rollout.srm_blocked"  # a breach on arms that fail the sample-ratio check
PAUSED_HOLD = Hold(reason="rollout_paused")
ADMIN_HOLD = Hold(reason="resume_needs_admin", role="admin")


class ResumePayload(BaseModel):
    """What a resume request names: the paused thing."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    target: str


RESUME = ActionKind(
    name=RESUME_KIND,
    payload=ResumePayload,
    risk=lambda _p: Risk.HIGH,
    requires_person=True,
    expires_after=timedelta(days=14),
    description="Resume a rollout a stop rule paused (an admin decides)",
)


def is_paused(conn: Connection, tenant: str, target: str, kind: str = "workflow") -> bool:
    """Whether `target` is paused now (read in the caller's transaction)."""
    p = rollout_pauses.c
    state = conn.execute(
        select(p.state).where(p.tenant == tenant, p.kind == kind, p.target == target)
    ).scalar()
    return state == "paused"


def paused_rollouts(engine: Engine, tenant: str) -> list[Paused]:
    """Everything of the tenant paused now: workflows, placements, learned policies (banners)."""
    p = rollout_pauses.c
    with readonly(engine.connect()) as conn:
        rows = conn.execute(select(p.kind, p.target).where(p.tenant == tenant,
                                                           p.state == "paused"))  # fmt: skip
        return sorted((Paused(kind=k, target=t) for k, t in rows), key=lambda x: (x.kind, x.target))


def paused_workflows(engine: Engine, tenant: str) -> list[str]:
    """The tenant's paused workflows alone."""
    return [x.target for x in paused_rollouts(engine, tenant) if x.kind == "workflow"]


class Guard:
    """Checks stop rules, pauses on a confirmed breach, resumes on an admin's approval."""

    def __init__(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        gate: Gate,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.gate = gate
        self.clock = clock

    def check(
        self,
        tenant: str,
        rules: Mapping[str, Sequence[StopRule]],
        source: ComparisonSource,
        *,
        horizon: int = DEFAULT_HORIZON,
    ) -> list[dict[str, Any]]:
        """One review cycle: every target's stop rules; returns the breaches it acted on.

        Each entry has `action`: `paused` (a new pause, or a resume request filed anew), or
        `refused` with `code` `rollout.srm_blocked` when the comparison's arms fail the
        sample-ratio check (no pause: a mismatched comparison proves nothing).
        """
        now = self.clock()
        paused = []
        for target, stop_rules in sorted(rules.items()):
            for rule in stop_rules:
                with readonly(self.engine.connect()) as conn:
                    found = [c for c in source.comparisons(conn, tenant=tenant, outcome=rule.outcome,
                                                           until=now) if c.name == target]  # fmt: skip
                for c in found:
                    t, h = arms_of(c)
                    if not t.n or not h.n:
                        continue
                    a = anytime_lift(t, h, alpha=rule.alpha, horizon=horizon)
                    if a.low <= rule.max_increase:
                        continue
                    evidence = {"rule": rule.model_dump(), "treated": [t.successes, t.n],
                                "holdout": [h.successes, h.n], "increase": a.difference,
                                "low": a.low, "high": a.high, "method": a.method}  # fmt: skip
                    srm = check_ratio([t.n, h.n], [c.allocation.get(TREATED, 0.0),
                                                   c.allocation.get(HOLDOUT, 0.0)])  # fmt: skip
                    if srm.mismatch:
                        paused.append(self.refuse(tenant, c.kind, target, evidence, srm.p_value))
                    elif self.pause(tenant, c.kind, target, evidence) is not None:
                        paused.append({"action": "paused", "kind": c.kind, "target": target,
                                       **evidence})  # fmt: skip
        return paused

    def refuse(
        self, tenant: str, kind: str, target: str, evidence: dict[str, Any], srm_p: float
    ) -> dict[str, Any]:
        """Audit (once a day per target) and return a breach the guard will not act on: its
        arms fail the SRM check."""
        refused = {"action": "refused", "kind": kind, "target": target,
                   "code": "rollout.srm_blocked",
                   "message": f"{kind} {target}: not paused on a breach of its stop rule; its "
                              f"arms fail the sample-ratio check (p = {srm_p:.2g}), so the "
                              "comparison proves nothing: fix assignment or logging first",
                   "srm_p": srm_p, **evidence}  # fmt: skip
        # Audited once a day per target while the mismatch lasts (the guard runs every
        # review cycle; a refusal each cycle would only bury the trail): the day's
        # idempotency key makes the repeats no-ops. The caller sees every cycle's refusal.
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock()))
        with self.engine.begin() as conn:
            self.audit.append_in(conn, tenant, [AuditEvent(
                event_type="rollout.pause_refused", actor=Actor.system("guard"), data=refused,
                idempotency_key=f"rollout.pause_refused:{kind}:{target}:{day}")])  # fmt: skip
        return refused

    def pause(
        self, tenant: str, kind: str, target: str, reason: dict[str, Any]
    ) -> ApprovalRequest | None:
        """Pause `target` with its audit event and an admin's resume request; None when it is
        paused already with a resume request open (a rejected or expired one is filed anew)."""
        now = self.clock()
        p = rollout_pauses.c
        with self.engine.begin() as conn:
            row = conn.execute(select(rollout_pauses).where(
                p.tenant == tenant, p.kind == kind, p.target == target).with_for_update()).first()  # fmt: skip
            values = {"state": "paused", "paused_at": now, "reason": json.dumps(reason),
                      "resume_approval_id": None, "resumed_at": None, "resumed_by": None}  # fmt: skip
            if row is None:
                conn.execute(insert(rollout_pauses).values(tenant=tenant, kind=kind, target=target,
                                                           **values))  # fmt: skip
            else:
                done = conn.execute(update(rollout_pauses).where(
                    p.tenant == tenant, p.kind == kind, p.target == target,
                    p.state == "resumed").values(**values))  # fmt: skip
                if done.rowcount != 1:  # paused already: one breach, one pause, but a pause
                    # whose resume request was rejected or expired could never be lifted:
                    # the next cycle files a new one
                    if self._resume_open(conn, tenant, row.resume_approval_id):
                        return None
                    req = self._request_resume(conn, tenant, kind, target, reason,
                                               previous=row.resume_approval_id)  # fmt: skip
                else:
                    req = self._paused(conn, tenant, kind, target, reason)
            if row is None:
                req = self._paused(conn, tenant, kind, target, reason)
        self.gate.notify([req])  # after the commit: the request exists
        return req

    def _paused(
        self, conn: Connection, tenant: str, kind: str, target: str, reason: dict[str, Any]
    ) -> ApprovalRequest:
        self._audit(conn, tenant, "rollout.paused", Actor.system("guard"),
                    {"kind": kind, "target": target, **reason})  # fmt: skip
        return self._request_resume(conn, tenant, kind, target, reason)

    @staticmethod
    def _resume_open(conn: Connection, tenant: str, approval_id: str | None) -> bool:
        """Whether the pause's resume request is still waiting for an admin (read in the
        pausing transaction, on its connection: no second connection while it holds locks)."""
        if approval_id is None:
            return False
        try:
            return load(conn, approval_id, tenant).status == "pending"
        except CopilotError:  # gone (erased or never stored): file a new one
            return False

    def _request_resume(
        self, conn: Connection, tenant: str, kind: str, target: str, reason: dict[str, Any],
        *, previous: str | None = None,
    ) -> ApprovalRequest:  # fmt: skip
        """File the admin's resume request for a pause, in the pausing transaction."""
        p = rollout_pauses.c
        if previous is not None:
            self._audit(conn, tenant, "rollout.resume_refiled", Actor.system("guard"),
                        {"kind": kind, "target": target, "previous_approval_id": previous})  # fmt: skip
        req = self.gate.submit(
            tenant=tenant, workflow=target if kind == "workflow" else f"{kind}:{target}",
            kind=RESUME_KIND, payload={"kind": kind, "target": target}, confidence=1.0,
            level="full", triggered_by="guard", hold=ADMIN_HOLD,
            explanation={"sentence": f"{kind} {target} was paused: {reason['rule']['outcome']} "
                         f"rose {reason['increase'] * 100:+.2f} pts (anytime-valid "
                         f"[{reason['low'] * 100:+.2f}, {reason['high'] * 100:+.2f}]), past "
                         f"the stop rule's {reason['rule']['max_increase'] * 100:.2f}"},
            conn=conn,
        )  # fmt: skip
        conn.execute(update(rollout_pauses).where(
            p.tenant == tenant, p.kind == kind, p.target == target).values(
            resume_approval_id=req.id))  # fmt: skip
        return req

    def on_settled(self, conn: Connection, req: ApprovalRequest) -> None:
        """The gate's hook: an approved resume request lifts its pause in the same transaction."""
        resume_hook(self.audit, self.clock)(conn, req)

    def _audit(
        self, conn: Connection, tenant: str, event: str, actor: Actor, data: dict[str, Any]
    ) -> None:
        _audit(self.audit, conn, tenant, event, actor, data)


def resume_hook(
    audit: TransactionalAuditLog, clock: Callable[[], float] = time.time
) -> Callable[[Connection, ApprovalRequest], None]:
    """The gate's `on_settled` hook: an approved resume request lifts its pause, in its transaction.

    Only the request the pause filed (`resume_approval_id`) resumes it; a rejected or
    expired one leaves it paused.
    """

    def hook(conn: Connection, req: ApprovalRequest) -> None:
        if req.kind != RESUME_KIND or req.status != "approved":
            return
        p = rollout_pauses.c
        kind, target = req.payload["kind"], req.payload["target"]
        done = conn.execute(update(rollout_pauses).where(
            p.tenant == req.tenant, p.kind == kind, p.target == target, p.state == "paused",
            p.resume_approval_id == req.id,
        ).values(state="resumed", resumed_at=clock(), resumed_by=",".join(req.approvals)))  # fmt: skip
        if done.rowcount == 1:
            actor = Actor.human(req.approvals[-1]) if req.approvals else Actor.system("gate")
            _audit(audit, conn, req.tenant, "rollout.resumed", actor,
                   {"kind": kind, "target": target, "approval_id": req.id,
                    "approved_by": list(req.approvals)})  # fmt: skip

    return hook


def _audit(
    audit: TransactionalAuditLog,
    conn: Connection,
    tenant: str,
    event: str,
    actor: Actor,
    data: dict[str, Any],
) -> None:
    audit.append_in(conn, tenant, [AuditEvent(event_type=event, actor=actor, data=data)])
