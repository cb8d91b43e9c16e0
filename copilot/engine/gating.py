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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from approvals import ApprovalRequest, Gate
from approvals.kinds import subjects_of
from approvals.queue import pending_in_run
from audit import Actor
from copilot.db.tables import runs
from copilot.engine.executor import DEFAULT_EXECUTOR, Action, ExecutionError, Executor
from copilot.engine.runs import Run, RunState, run_from
from copilot.engine.store import RunStore
from copilot.governance.consent import Consent
from copilot.workflow.context import ActionOutcome


def action_id(run_id: str, idx: int, *, round: int | None = None, n: int | None = None) -> str:
    """The action-id grammar: proposal `n` of step `idx` of a run, per round for a multi-round step.

    `run:idx:nnn` for a plain step, `run:idx:rR:nnn` for round R of a multi-round one. Without
    `n`, the prefix every proposal of the step (or of the round) shares: the gate finds a
    step's requests by it, so a step's ids never prefix another step's (`run:1:` is not a
    prefix of `run:10:`).
    """
    head = f"{run_id}:{idx}:" if round is None else f"{run_id}:{idx}:r{round}:"
    return head if n is None else f"{head}{n:03d}"


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
        if pending_in_run(conn, req.run_id):
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


class ActionGate:
    """The approval gate as runs use it: submit a step's proposals, carry out what was approved.

    `executors` maps executor names to executors and `routes` action kinds to executor
    names (a kind with no route goes to the outbox). Both are held as given, not copied:
    the runner's executors are the gate's.
    """

    def __init__(
        self,
        gate: Gate,
        consent: Consent | None,
        executors: Mapping[str, Executor],
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self.gate = gate
        self.consent = consent
        self.executors = executors
        self.routes: Mapping[str, str] = routes if routes is not None else {}

    def submit(
        self,
        conn: Connection,
        run: Run,
        idx: int,
        proposals: Sequence[Proposal],
        *,
        round: int | None,
        level: str,
        explain: Callable[[Proposal], dict[str, Any]],
    ) -> list[ApprovalRequest]:
        """Submit step `idx`'s proposals (of `round`, for a multi-round step) inside `conn`."""
        submitted = []
        for n, p in enumerate(proposals):
            submitted.append(
                self.gate.submit(
                    tenant=run.tenant,
                    workflow=run.workflow,
                    kind=p.kind,
                    payload=p.payload,
                    confidence=p.confidence,
                    level=level,
                    triggered_by=run.triggered_by,
                    principal=run.principal,
                    run_id=run.id,
                    subject_id=run.subject_id,
                    action_id=action_id(run.id, idx, round=round, n=n),
                    explanation=explain(p),
                    conn=conn,
                )
            )
        return submitted

    def outcomes(self, run_id: str, prefix: str) -> list[ActionOutcome]:
        """Where the run's actions under `prefix` stand, without acting on any."""
        return [
            ActionOutcome(
                action_id=r.action_id, approval_id=r.id, kind=r.kind, status=r.status,
                reason=r.reason,
            )
            for r in self.gate.of_run(run_id, prefix)
        ]  # fmt: skip

    def execute_approved(self, run_id: str, prefix: str) -> list[dict[str, Any]]:
        """Carry out the approved actions under the action-id `prefix` (a step's, or a round's)
        once each, and report every outcome."""
        return [self._settle(run_id, req) for req in self.gate.of_run(run_id, prefix)]

    def _settle(self, run_id: str, req: ApprovalRequest) -> dict[str, Any]:
        outcome: dict[str, Any] = {
            "approval_id": req.id,
            "action_id": req.action_id,
            "kind": req.kind,
            "status": req.status,
            "payload": req.payload,
            "reason": req.reason,
            "version": req.version,
        }
        due = req.status == "approved" and req.execution_status != "done"
        refusal = self._refusal(req) if due else None
        if refusal is not None:  # consent withdrawn while the action waited: cancel, never execute
            req = self.gate.cancel(req.id, reason=refusal, actor=Actor.system("consent"))
            outcome.update(status=req.status, reason=req.reason, executed=False)
        elif due:
            outcome["executed"] = self._execute(run_id, req)
        else:
            outcome["executed"] = req.execution_status == "done"
        return outcome

    def _refusal(self, req: ApprovalRequest) -> str | None:
        """Why the approved `req` may not act now: a payload naming another subject than the
        request's (a request stored before subjects were bound), or that subject's consent."""
        targets = {req.subject_id}
        if req.kind in self.gate.catalog:
            targets |= set(subjects_of(self.gate.catalog.get(req.kind), req.payload).values())
        if targets != {req.subject_id}:
            return "the payload names another subject than the request's"
        if self.consent is None:
            return None
        refusal = self.consent.refusal(req.tenant, req.subject_id or "", req.workflow)
        return f"consent withdrawn ({refusal})" if refusal is not None else None

    def _execute(self, run_id: str, req: ApprovalRequest) -> bool:
        """Act once (the key is the approval id, so a retry replays the receipt); close the request."""
        executor = self.executors[self.routes.get(req.kind, DEFAULT_EXECUTOR)]
        action = Action(
            tenant=req.tenant,
            run_id=run_id,
            kind=req.kind,
            payload=req.payload,
            idempotency_key=f"approval:{req.id}",
            subject_id=req.subject_id,
            approval_id=req.id,
        )
        try:
            receipt = executor.execute(action)
        except ExecutionError as exc:
            self.gate.record_execution(req.id, ok=False, detail={"error": exc.message})
            raise
        self.gate.record_execution(
            req.id,
            ok=receipt.status == "done",
            detail={
                "executor": receipt.executor,
                "status": receipt.status,
                "idempotency_key": receipt.idempotency_key,
            },
        )
        return receipt.status == "done"
