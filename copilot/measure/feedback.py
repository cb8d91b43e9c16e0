"""Reviewer feedback, derived from the gate's records: what people did with each proposed action.

Per action (all its versions): `approved` as proposed, `edited` then approved (with how
much was changed), `rejected` (with the reason's category), or not a person's decision
(`auto_approved`, `auto_rejected` by policy or at expiry, `expired`, `cancelled`,
`pending`); and the time from proposal to the decision.

- Edit distance: Levenshtein distance between the canonical JSON (RFC 8785) of the
  proposed and the approved payload, divided by the longer one's length: 0 is unchanged,
  1 is rewritten. `fields_changed` names the top-level fields that differ.
- Reason categories: the first category with a keyword in the reason (case-insensitive);
  `other` when none matches. Pass your own `categories` to match your reviewers' words.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from approvals import ApprovalRequest
from approvals.queue import last_votes, versions_by_action
from approvals.shadow import shadow_figures
from audit.canonical import canonical

Decision = Literal[
    "approved", "edited", "rejected", "auto_approved", "auto_rejected", "expired", "cancelled",
    "pending",
]  # fmt: skip
BY_PEOPLE = frozenset({"approved", "edited", "rejected"})
NO_SEGMENT = "(none)"

REASON_CATEGORIES: dict[str, tuple[str, ...]] = {
    "inaccurate": ("wrong", "incorrect", "inaccurate", "not true", "false", "mistake", "error",
                   "hallucinat", "outdated", "stale"),
    "tone": ("tone", "rude", "pushy", "aggressive", "too formal", "too casual", "voice", "style"),
    "timing": ("too soon", "too early", "too late", "timing", "not now", "wait", "later",
               "already contacted", "holiday"),
    "irrelevant": ("irrelevant", "not relevant", "does not apply", "doesn't apply",
                   "not applicable", "off-topic", "off topic", "not useful"),
    "duplicate": ("duplicate", "already sent", "already done", "repeat", "twice"),
    "risk": ("risk", "compliance", "legal", "privacy", "consent", "policy", "too expensive",
             "too much", "too large", "amount"),
}  # fmt: skip


def reason_category(
    reason: str | None, categories: Mapping[str, Iterable[str]] = REASON_CATEGORIES
) -> str | None:
    """The category of a free-text rejection reason (None for no reason, `other` if none fits)."""
    if not reason or not reason.strip():
        return None
    text = reason.lower()
    for category, words in categories.items():
        if any(w in text for w in words):
            return category
    return "other"


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    # An edit usually touches one field: trim the shared prefix and suffix first, so the
    # quadratic part runs on the changed span only.
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_distance(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Normalized Levenshtein distance between two payloads' canonical JSON, in [0, 1]."""
    a, b = canonical(before).decode(), canonical(after).decode()
    longest = max(len(a), len(b))
    return levenshtein(a, b) / longest if longest else 0.0


class Feedback(BaseModel):
    """What happened to one proposed action (all its versions)."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    workflow: str
    run_id: str | None
    subject_id: str | None
    kind: str
    level: str  # the degradation level it was proposed at
    versions: int
    decision: Decision
    edit_distance: float | None  # edited only
    fields_changed: list[str]
    reason: str | None
    reason_category: str | None  # rejected only
    proposed_at: float
    decided_at: float | None
    seconds_to_decision: float | None  # decisions by people only
    execution_status: str | None  # done | failed | None (not executed)
    shadow: list[dict[str, Any]]  # shadow rules' verdicts on the version people decided
    status: str  # the live version's status


def read_feedback(
    conn: Connection,
    tenant: str,
    *,
    workflow: str | None = None,
    categories: Mapping[str, Iterable[str]] = REASON_CATEGORIES,
) -> list[Feedback]:
    """Every action proposed in the tenant (and workflow), with what people did with it."""
    versions = versions_by_action(conn, tenant, workflow=workflow)
    last_vote = last_votes(conn, tenant)
    return [_feedback(rows, last_vote, categories) for rows in versions.values()]


def _feedback(
    rows: list[ApprovalRequest],
    last_vote: dict[str, float],
    categories: Mapping[str, Iterable[str]],
) -> Feedback:
    first, live = rows[0], rows[-1]
    decision = _decision(live, len(rows), live.id in last_vote)
    before, after = first.payload, live.payload
    edited = decision == "edited"
    decided_at = last_vote.get(live.id) if decision in BY_PEOPLE else None
    return Feedback(
        action_id=live.action_id,
        workflow=live.workflow,
        run_id=live.run_id,
        subject_id=live.subject_id,
        kind=live.kind,
        level=first.level,
        versions=len(rows),
        decision=decision,
        edit_distance=edit_distance(before, after) if edited else None,
        fields_changed=sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
        reason=live.reason,
        reason_category=reason_category(live.reason, categories)
        if decision == "rejected"
        else None,
        proposed_at=first.created_at,
        decided_at=decided_at,
        seconds_to_decision=decided_at - first.created_at if decided_at is not None else None,
        execution_status=live.execution_status,
        shadow=live.shadow,
        status=live.status,
    )


def _decision(live: ApprovalRequest, versions: int, voted: bool) -> Decision:
    if live.status == "approved":
        if versions > 1:
            return "edited"  # a person edited it; the policy may then have approved the result
        return "approved" if voted else "auto_approved"
    if live.status == "rejected":
        return "rejected" if voted else "auto_rejected"
    if live.status == "expired":
        return "expired"
    if live.status == "cancelled":
        return "cancelled"
    return "pending"


# -- per group ------------------------------------------------------------------------------


class Group(BaseModel):
    """Reviewer feedback and execution figures for one workflow, segment and level."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    segment: str
    level: str
    runs: int
    runs_failed: int
    proposals: int
    auto_approved: int
    auto_rejected: int
    expired: int
    decided: int  # by people: approved + edited + rejected
    approved: int
    edited: int
    rejected: int
    acceptance_rate: float | None  # approved as proposed ÷ decided
    edit_rate: float | None
    rejection_rate: float | None
    mean_edit_distance: float | None
    median_seconds_to_decision: float | None
    p90_seconds_to_decision: float | None
    executed: int
    execution_failed: int  # approved actions whose execution is still failing
    shadow_decided: int
    shadow_agreed: int
    shadow_agreement: float | None
    rejection_reasons: dict[str, int]


def group_feedback(
    run_rows: list[dict[str, Any]], seg_of_run: dict[str, str], feedback: list[Feedback]
) -> list[Group]:
    """Runs (holdout ones left out) and feedback, per workflow, segment and level."""
    keyed_runs: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in run_rows:
        if not r["holdout"]:  # a holdout run proposes nothing; it is not reviewed
            keyed_runs[(r["workflow"], seg_of_run[r["id"]], r["level"])].append(r)
    keyed_fb: dict[tuple[str, str, str], list[Feedback]] = defaultdict(list)
    for f in feedback:
        keyed_fb[(f.workflow, seg_of_run.get(f.run_id or "", NO_SEGMENT), f.level)].append(f)
    return [_group(k, keyed_runs.get(k, []), keyed_fb.get(k, []))
            for k in sorted(set(keyed_runs) | set(keyed_fb))]  # fmt: skip


def _group(key: tuple[str, str, str], rs: list[dict[str, Any]], fb: list[Feedback]) -> Group:
    count = {d: sum(f.decision == d for f in fb) for d in
             ("approved", "edited", "rejected", "auto_approved", "auto_rejected", "expired")}  # fmt: skip
    decided = count["approved"] + count["edited"] + count["rejected"]
    times = sorted(f.seconds_to_decision for f in fb if f.seconds_to_decision is not None)
    edits = [f.edit_distance for f in fb if f.edit_distance is not None]
    reasons: dict[str, int] = defaultdict(int)
    for f in fb:
        if f.reason_category:
            reasons[f.reason_category] += 1
    shadow = shadow_figures(
        (json.dumps(f.shadow), f.status)
        for f in fb
        if f.decision in ("approved", "edited", "rejected")
    )
    s_decided, s_agreed = sum(s["decided"] for s in shadow), sum(s["agreed"] for s in shadow)

    def rate(n: int) -> float | None:
        return n / decided if decided else None

    return Group(
        workflow=key[0], segment=key[1], level=key[2], runs=len(rs),
        runs_failed=sum(r["state"] == "failed" for r in rs), proposals=len(fb),
        auto_approved=count["auto_approved"], auto_rejected=count["auto_rejected"],
        expired=count["expired"], decided=decided, approved=count["approved"],
        edited=count["edited"], rejected=count["rejected"],
        acceptance_rate=rate(count["approved"]), edit_rate=rate(count["edited"]),
        rejection_rate=rate(count["rejected"]),
        mean_edit_distance=statistics.fmean(edits) if edits else None,
        median_seconds_to_decision=statistics.median(times) if times else None,
        p90_seconds_to_decision=times[min(len(times) - 1, int(0.9 * len(times)))] if times else None,
        executed=sum(f.execution_status == "done" for f in fb),
        execution_failed=sum(f.execution_status == "failed" for f in fb),
        shadow_decided=s_decided, shadow_agreed=s_agreed,
        shadow_agreement=s_agreed / s_decided if s_decided else None,
        rejection_reasons=dict(sorted(reasons.items())),
    )  # fmt: skip
