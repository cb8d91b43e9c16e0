"""The evidence gate: promotion through two admins, demotion on a guardrail breach.

Promotion is an approval of the action kind `promote_policy`, decided on the approvals
gate like any action: a policy of its own requires two distinct admins (one admin
approving twice is refused: one reviewer counts once toward a quorum). The request is
filed only when the evidence's verdict is `ok`; otherwise it is refused with the
verdict's code (`learn.not_better`, `learn.segment_harmed`) and the refusal is in the
trail. The payload names the version, its artifact hash and the evidence hash. When the
second admin approves, the version goes live and the previous live one retires, in the
transaction of that approval.

The request is filed with the requesting admin's name as who triggered it (and their
key's principal, over HTTP), so the approvals' separation of duties refuses their own
vote: a promotion needs two admins besides the one who asked. A promotion is never edited
(`learn.promotion_locked`): its payload is the version its evidence cleared; to promote
another version, reject it and request that one. And when the quorum is reached, the
payload is checked again against the store, in the approving transaction: the version's
stored artifact hash, and stored evidence of `ok` for that very version
(`learn.evidence_mismatch` otherwise, and nothing of the approval is written).

Demotion: a guardrail (a rate that must not rise: complaints, opt-outs) checked for the
live version's decisions against the holdout's; a `breach` moves the live version to
`demoted` (the rules serve again), audited, and tells the notifier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from approvals import ActionKind, ApprovalRequest, Catalog, Gate, Match, Outcome, Policy, Risk, Rule
from audit import Actor
from copilot.db.tables import learn_evidence, learn_policies
from copilot.learn.errors import (
    EvidenceMismatchError,
    NotBetterError,
    PolicyStateError,
    PromotionLockedError,
    SegmentHarmedError,
)
from copilot.learn.store import LearnStore
from copilot.measure.experiments import Arm
from copilot.measure.guardrails import Guardrail, GuardrailCheck, check_guardrail

log = logging.getLogger(__name__)
PROMOTE = "promote_policy"
WORKFLOW = "learn"


class PromotePolicy(BaseModel):
    """The payload of a promotion: which version, its artifact and its evidence, by hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    surface: str
    version: str
    artifact_hash: str
    evidence_hash: str
    replaces: str | None = None


def promotion_catalog() -> Catalog:
    """The one kind the learning gate knows: high risk, always a person's decision."""
    kind = ActionKind(name=PROMOTE, payload=PromotePolicy, risk=lambda _: Risk.HIGH,
                      requires_person=True, description="put a learned policy version live")  # fmt: skip
    return Catalog([kind])


def promotion_policy() -> Policy:
    """Two distinct admins approve a promotion."""
    rule = Rule(id="promote-two-admins", when=Match(kind=PROMOTE),
                then=Outcome(action="require", n=2, role="admin"))  # fmt: skip
    return Policy(version="learn@1", rules=[rule])


class PolicyNotifier(Protocol):
    """Told after a demotion commits (a webhook, a page, a chat message)."""

    def policy_demoted(self, tenant: str, surface: str, version: str, reason: str) -> None: ...


class LogNotifier:
    """The default notifier: a warning in the log."""

    def policy_demoted(self, tenant: str, surface: str, version: str, reason: str) -> None:
        log.warning("learned policy %s@%s of tenant %s demoted to the rules: %s",
                    surface, version, tenant, reason)  # fmt: skip


class PromotionGate(Gate):
    """The approvals gate, but a promotion is approved or rejected as filed, never edited."""

    def _revise(self, conn: Connection, req: ApprovalRequest, edits: dict[str, Any],
                human: Actor) -> ApprovalRequest:  # fmt: skip
        if req.kind == PROMOTE:
            raise refuse_edit(req)
        return super()._revise(conn, req, edits, human)


def refuse_edit(req: ApprovalRequest) -> PromotionLockedError:
    """The refusal of an edit of a promotion request (any gate that holds one raises it)."""
    return PromotionLockedError(
        f"promotion {req.id} cannot be edited: it names the version its evidence cleared; "
        "reject it and request the promotion of the other version", approval_id=req.id)  # fmt: skip


def check_cleared(conn: Connection, tenant: str, p: PromotePolicy) -> None:
    """Refuse a promotion whose payload is not its version's stored artifact and `ok` evidence."""
    art = conn.scalar(select(learn_policies.c.hash).where(
        learn_policies.c.tenant == tenant, learn_policies.c.surface == p.surface,
        learn_policies.c.version == p.version))  # fmt: skip
    e = learn_evidence.c
    ev = conn.execute(select(e.surface, e.version, e.verdict).where(
        e.tenant == tenant, e.hash == p.evidence_hash)).first()  # fmt: skip
    problems = ([] if art == p.artifact_hash else ["artifact_hash"]) + (
        [] if ev is not None and (ev.surface, ev.version) == (p.surface, p.version)
        else ["evidence_hash"]) + ([] if ev is None or ev.verdict == "ok" else ["verdict"])  # fmt: skip
    if problems:
        raise EvidenceMismatchError(
            f"promotion of {p.surface}@{p.version} refused: its {', '.join(problems)} does not "
            "match the stored version and the evidence that cleared it", surface=p.surface,
            version=p.version, fields=problems)  # fmt: skip


_REFUSALS = {"not_better": NotBetterError, "segment_harmed": SegmentHarmedError}


class Promotions:
    """Request, decide and apply promotions; demote on a breach."""

    def __init__(self, store: LearnStore, *, notifier: PolicyNotifier | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.store = store
        self.notifier = notifier or LogNotifier()
        self.gate = PromotionGate(store.engine, store.audit, promotion_catalog(),
                                  promotion_policy(),
                         clock=clock, on_settled=self.on_settled)  # fmt: skip

    def request(
        self, tenant: str, surface: str, version: str, *, document: dict[str, Any],
        evidence_hash: str, requested_by: str, principal: str | None = None,
    ) -> ApprovalRequest:  # fmt: skip
        """File the promotion if the evidence allows it; else refuse with the verdict's code.

        `requested_by` (and `principal`, the requester's key over HTTP) may not approve it.
        """
        pv = self.store.get(tenant, surface, version)
        if pv.state != "shadow":
            raise PolicyStateError(f"version {version!r} is {pv.state}; only a shadow version "
                                   "can be promoted", surface=surface, version=version)  # fmt: skip
        actor = Actor.human(requested_by)
        verdict = document["verdict"]
        summary = {"evidence_hash": evidence_hash, "verdict": verdict,
                   "difference": document["difference"], "harmed": document["harmed"]}  # fmt: skip
        with self.store.engine.begin() as conn:
            self.store.save_evidence(conn, tenant, document, evidence_hash)
            if verdict != "ok":
                self.store._event(conn, tenant, surface, version, "learn.promotion_refused",
                                  actor, {**summary, "code": _REFUSALS[verdict].code})  # fmt: skip
        if verdict != "ok":
            d = document["difference"]
            why = (f"segment(s) {', '.join(document['harmed'])} harmed" if verdict == "segment_harmed"
                   else f"lower bound {d['low']:+.4f} does not beat the current policy by the "
                   f"margin {document['config']['margin']}")  # fmt: skip
            raise _REFUSALS[verdict](f"promotion of {surface}@{version} refused: {why}", **summary)
        with self.store.engine.begin() as conn:
            payload = PromotePolicy(surface=surface, version=version, artifact_hash=pv.hash,
                                    evidence_hash=evidence_hash,
                                    replaces=self.store.live_version(conn, tenant, surface))  # fmt: skip
            req = self.gate.submit(
                tenant=tenant, workflow=WORKFLOW, kind=PROMOTE, payload=payload.model_dump(),
                confidence=1.0, level="full", triggered_by=requested_by, principal=principal,
                action_id=f"promote:{surface}:{version}:{evidence_hash[:12]}",
                explanation={"why": f"OPE difference {document['difference']['difference']:+.4f}"},
                conn=conn,
            )  # fmt: skip
            self.store._event(conn, tenant, surface, version, "learn.promotion_requested", actor,
                              {**summary, "approval_id": req.id})  # fmt: skip
        self.gate.notify([req])
        return req

    def decide(self, approval_id: str, *, admin: str, roles: set[str] | frozenset[str],
               approve: bool, reason: str | None = None, tenant: str | None = None,
               principal: str | None = None) -> ApprovalRequest:  # fmt: skip
        """One admin's vote on a promotion (the version goes live at the quorum)."""
        req = self.gate.get(approval_id, tenant=tenant)
        return self.gate.decide(approval_id, reviewer=admin, roles=roles,
                                decision="approve" if approve else "reject",
                                payload_hash=req.payload_hash, reason=reason, tenant=tenant,
                                principal=principal)  # fmt: skip

    def on_settled(self, conn: Connection, req: ApprovalRequest) -> None:
        """An approved promotion: the version goes live, the old live one retires (same tx)."""
        if req.kind != PROMOTE or req.status != "approved":
            return
        p = PromotePolicy.model_validate(req.payload)
        check_cleared(conn, req.tenant, p)  # whatever gate decided it, whatever was edited
        human = Actor.human(req.approvals[-1])
        data = {"approval_id": req.id, "approvals": list(req.approvals),
                "evidence_hash": p.evidence_hash, "artifact_hash": p.artifact_hash}  # fmt: skip
        old = self.store.live_version(conn, req.tenant, p.surface)
        if old is not None:
            self.store.set_state(conn, req.tenant, p.surface, old, "retired", expect=["live"],
                                 actor=human, event="learn.retired",
                                 data={**data, "replaced_by": p.version})  # fmt: skip
        self.store.set_state(conn, req.tenant, p.surface, p.version, "live", expect=["shadow"],
                             actor=human, event="learn.promoted", data=data)  # fmt: skip

    def check_guardrails(
        self, tenant: str, surface: str, guardrails: Sequence[Guardrail], *,
        since: float, until: float, alpha: float = 0.05,
    ) -> list[GuardrailCheck]:  # fmt: skip
        """The live version's guardrails against the holdout's; a breach demotes it."""
        live = self.store.in_state(tenant, surface, "live")
        if live is None or not guardrails:
            return []
        decisions = self.store.decisions(tenant, surface, since, until)
        treated = [d for d in decisions if not d.holdout and d.version == live.version]
        holdout = [d for d in decisions if d.holdout]
        events: dict[str, set[str]] = {}
        for fb in self.store.feedback(tenant, [d.decision_id for d in decisions]):
            if fb.source == "guardrail":
                events.setdefault(fb.event, set()).add(fb.decision_id)
        checks: list[GuardrailCheck] = []
        for g in guardrails:
            hit = events.get(g.metric, set())
            arm = Arm(successes=sum(d.decision_id in hit for d in treated), n=len(treated))
            base = Arm(successes=sum(d.decision_id in hit for d in holdout), n=len(holdout))
            checks += check_guardrail(g, arm, base if holdout else None, alpha=alpha)
        breached = [c for c in checks if c.status == "breach"]
        if breached:
            self._demote(tenant, surface, live.version, breached)
        return checks

    def _demote(self, tenant: str, surface: str, version: str,
                breached: list[GuardrailCheck]) -> None:  # fmt: skip
        reason = "; ".join(f"{c.metric} {c.rule} breached ({c.value:.3f} past {c.threshold})"
                           for c in breached)  # fmt: skip
        with self.store.engine.begin() as conn:
            self.store.set_state(conn, tenant, surface, version, "demoted", expect=["live"],
                                 actor=Actor.system("learn.guardrails"), event="learn.demoted",
                                 data={"checks": [c.model_dump(mode="json") for c in breached]},
                                 reason=reason)  # fmt: skip
        self.notifier.policy_demoted(tenant, surface, version, reason)


__all__ = [
    "PROMOTE",
    "LogNotifier",
    "PolicyNotifier",
    "PromotePolicy",
    "PromotionGate",
    "Promotions",
    "check_cleared",
    "promotion_catalog",
    "promotion_policy",
    "refuse_edit",
]
