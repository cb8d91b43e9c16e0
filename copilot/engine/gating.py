"""The approval gate inside runs: proposals, resuming on decisions, executing what was approved.

A step calls `ctx.propose(kind, payload, ...)`; the proposals are submitted to the gate in
the step's checkpoint transaction. If any needs a person the run waits; each settled
request re-checks, in its own transaction, whether the run can be queued again. Before
the next step runs, approved actions are executed once each (the idempotency key is the
approval id, so a retried or redelivered execution replays the receipt) and the request
is closed as executed only when the receipt is written. The next step sees every
outcome in `ctx.decision["approvals"]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, func, select

from approvals import ApprovalRequest
from approvals.tables import requests
from audit import Actor
from copilot.db.tables import runs
from copilot.engine.executors import Action, ExecutionError
from copilot.engine.runs import RunState, RunStore, run_from

if TYPE_CHECKING:
    from copilot.engine.runner import Runner


class Proposal(BaseModel):
    """An action a step wants done: a catalogued kind, its payload, how sure, and why."""

    model_config = ConfigDict(frozen=True)

    kind: str
    payload: dict[str, Any]
    confidence: float
    why: str | None = None


def resume_when_settled(store: RunStore) -> Any:
    """The gate's `on_settled` hook: queue the waiting run once none of its requests is pending."""

    def hook(conn: Connection, req: ApprovalRequest) -> None:
        if req.run_id is None:
            return
        pending = conn.execute(
            select(func.count())
            .select_from(requests)
            .where(requests.c.run_id == req.run_id, requests.c.status == "pending")
        ).scalar()
        if pending:
            return
        row = conn.execute(select(runs).where(runs.c.id == req.run_id)).first()
        if row is None or row.state != RunState.WAITING.value:
            return
        store.transition(
            conn,
            run_from(row._mapping),
            RunState.QUEUED,
            expect=(RunState.WAITING,),
            actor=Actor.system("gate"),
            event="run.resumed",
            data={"approval_id": req.id, "status": req.status},
        )

    return hook


def execute_approved(
    runner: Runner, run_id: str, idx: int, *, prefix: str | None = None
) -> list[dict[str, Any]]:
    """Carry out the approved actions of step `idx` (or of the action-id `prefix`, a round's)
    once each, and report every outcome."""
    gate = runner.gate
    assert gate is not None
    outcomes = []
    for req in gate.of_run(run_id, prefix or f"{run_id}:{idx}:"):
        outcome: dict[str, Any] = {
            "approval_id": req.id,
            "action_id": req.action_id,
            "kind": req.kind,
            "status": req.status,
            "payload": req.payload,
            "reason": req.reason,
            "version": req.version,
        }
        refusal = None
        if (
            req.status == "approved"
            and req.execution_status != "done"
            and runner.consent is not None
        ):
            refusal = runner.consent.refusal(req.tenant, req.subject_id or "", req.workflow)
        if refusal is not None:  # consent withdrawn while the action waited: cancel, never execute
            req = gate.cancel(
                req.id, reason=f"consent withdrawn ({refusal})", actor=Actor.system("consent")
            )
            outcome.update(status=req.status, reason=req.reason, executed=False)
        elif req.status == "approved" and req.execution_status != "done":
            executor = runner.executors[runner.action_executors.get(req.kind, "outbox")]
            action = Action(
                tenant=req.tenant,
                run_id=run_id,
                kind=req.kind,
                payload=req.payload,
                idempotency_key=f"approval:{req.id}",
            )
            try:
                receipt = executor.execute(action)
            except ExecutionError as exc:
                gate.record_execution(req.id, ok=False, detail={"error": exc.message})
                raise
            gate.record_execution(
                req.id,
                ok=receipt.status == "done",
                detail={
                    "executor": receipt.executor,
                    "status": receipt.status,
                    "idempotency_key": receipt.idempotency_key,
                },
            )
            outcome["executed"] = receipt.status == "done"
        else:
            outcome["executed"] = req.execution_status == "done"
        outcomes.append(outcome)
    return outcomes
