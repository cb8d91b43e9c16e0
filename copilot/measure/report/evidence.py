"""The report's evidence: each workflow holdout's sample ratio, anytime-valid interval and CUPED."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from copilot.measure.evidence.comparison import Evidence, evaluate_all
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.evidence.rules import Paused
from copilot.measure.guardrails import Finding
from copilot.measure.outcomes import OutcomeSpec


def evidence_of(
    conn: Connection,
    tenant: str,
    allocations: Mapping[str, float] | None,
    primary: OutcomeSpec | None,
    workflow: str | None,
    covariate: str | None,
    window_days: float | None,
    alpha: float,
    horizon: int,
    now: float,
) -> list[Evidence]:
    """Each workflow holdout's evidence (none without the configured allocations)."""
    if allocations is None:
        return []
    source = WorkflowHoldouts(allocations, covariate=covariate, window_days=window_days,
                              workflows=(workflow,) if workflow else None)  # fmt: skip
    found = source.comparisons(conn, tenant=tenant, outcome=primary.name if primary else "",
                               until=now)  # fmt: skip
    return evaluate_all(found, alpha=alpha, horizon=horizon)


def srm_warnings(evidence: list[Evidence]) -> list[Finding]:
    """A sample-ratio mismatch blocks reading the comparison at all: first, with the causes."""
    return [
        Finding(code="sample_ratio_mismatch",
                message=f"BLOCKING: {e.kind} {e.name}'s arms are {e.treated} treated and "
                        f"{e.holdout} holdout, not the configured "
                        f"{e.srm.expected_shares[1]:.0%} held out (χ² p = {e.srm.p_value:.2g}); "
                        "do not read its lift. Likely causes: " + "; ".join(e.srm.causes),
                details={"blocking": True, "kind": e.kind, "name": e.name,
                         "p_value": e.srm.p_value, "observed": e.srm.observed,
                         "expected_shares": e.srm.expected_shares, "causes": e.srm.causes})
        for e in evidence if e.srm.mismatch
    ]  # fmt: skip


def paused_warnings(paused: list[Paused]) -> list[Finding]:
    """One warning per workflow, placement or learned policy a stop rule paused (a banner)."""
    return [Finding(code="rollout_paused", message=p.sentence,
                    details={"kind": p.kind, "target": p.target,
                             **({"workflow": p.target} if p.kind == "workflow" else {})})
            for p in paused]  # fmt: skip
