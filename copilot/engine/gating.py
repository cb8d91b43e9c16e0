"""The approval gate inside runs: proposals, resuming on decisions, executing what was approved.

A step calls `ctx.propose(kind, payload, ...)`; the proposals are submitted to the gate in
the step's checkpoint transaction. If any needs a person the run waits (what the policy
approved acts at once, not after the review); each settled request re-checks, in its own
transaction, whether the run can be queued again. Before the next step runs, approved
actions are executed once each (the idempotency key is the approval id, so a retried or
redelivered execution, or one that acted while the run waited, replays the receipt) and the request
is closed as executed only when the receipt is written. The next step sees every
outcome in `ctx.decision["approvals"]`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from approvals import ApprovalRequest, Gate
from approvals.kinds import subjects_of
from approvals.queue import pending_in_run
from audit import Actor
from copilot.db.tables import runs
from copilot.delivery import OUTBOX, Delivery, DeliveryStore, NewDelivery, State
from copilot.engine.executor import DEFAULT_EXECUTOR, Action, ExecutionError, Executor, Receipt
from copilot.engine.runs import Run, RunState, run_from
from copilot.engine.store import RunStore
from copilot.governance.consent import Consent
from copilot.measure.rollout import PAUSED_HOLD, is_paused
from copilot.workflow.context import ActionOutcome

log = logging.getLogger(__name__)


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
    the runner's executors are the gate's. With `deliveries`, every approved action has a
    delivery (copilot.delivery): the outbox's is acked by the app through the feed; a push
    route's moves with each attempt's result here (the run retries a failed one when its
    backoff ends, the sweeper one whose run stopped retrying, and a dead one no longer
    holds the run).
    """

    def __init__(
        self,
        gate: Gate,
        consent: Consent | None,
        executors: Mapping[str, Executor],
        routes: Mapping[str, str] | None = None,
        deliveries: DeliveryStore | None = None,
    ) -> None:
        self.gate = gate
        self.consent = consent
        self.executors = executors
        self.routes: Mapping[str, str] = routes if routes is not None else {}
        self.deliveries = deliveries
        self.owner = f"engine:{socket.gethostname()}:{os.getpid()}"

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
        """Submit step `idx`'s proposals (of `round`, for a multi-round step) inside `conn`.

        While a stop rule has the workflow paused, every proposal needs a person.
        """
        hold = PAUSED_HOLD if is_paused(conn, run.tenant, run.workflow) else None
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
                    hold=hold,
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
        route = self.routes.get(req.kind, DEFAULT_EXECUTOR)
        executor = self.executors[route]
        action = Action(
            tenant=req.tenant,
            run_id=run_id,
            kind=req.kind,
            payload=req.payload,
            idempotency_key=f"approval:{req.id}",
            subject_id=req.subject_id,
            approval_id=req.id,
        )
        if self.deliveries is None:
            return self._once(req, executor, action)
        delivery = self.deliveries.open(
            NewDelivery(
                idempotency_key=action.idempotency_key, tenant=req.tenant, kind=req.kind,
                route=route, payload=req.payload, run_id=run_id, approval_id=req.id,
                subject_id=req.subject_id,
            )
        )  # fmt: skip
        if route == OUTBOX:
            # Handing it to the outbox is the receipt; the app's ack on the feed moves the
            # delivery from here on.
            return self._once(req, executor, action)
        return self._push(req, executor, action, delivery)

    def _once(self, req: ApprovalRequest, executor: Executor, action: Action) -> bool:
        try:
            receipt = executor.execute(action)
        except ExecutionError as exc:
            self.gate.record_execution(req.id, ok=False, detail={"error": exc.message})
            raise
        self._record(req, receipt)
        return receipt.status == "done"

    def _record(self, req: ApprovalRequest, receipt: Receipt) -> None:
        self.gate.record_execution(
            req.id,
            ok=receipt.status == "done",
            detail={
                "executor": receipt.executor,
                "status": receipt.status,
                "idempotency_key": receipt.idempotency_key,
            },
        )

    def _push(
        self, req: ApprovalRequest, executor: Executor, action: Action, delivery: Delivery,
        *, by_run: bool = True,
    ) -> bool:  # fmt: skip
        """One attempt of a push route, if one is due: the delivery moves with its result."""
        assert self.deliveries is not None
        d = self.deliveries.start(delivery.id, self.owner, take_over=by_run)
        if d.claim is None:  # settled, in flight elsewhere, or waiting out its backoff
            if d.state == State.DELIVERED:
                return bool(d.receipt and d.receipt["detail"].get("status") == "done")
            if d.state in (State.DEAD, State.CANCELLED):
                return False  # a person retries or cancels it; the run goes on without it
            raise ExecutionError(
                f"delivery {d.id} of approval {req.id} is {d.state} (next attempt at "
                f"{d.next_attempt_at or d.claim_expires_at}); retried then",
                idempotency_key=action.idempotency_key,
            )
        claim = d.claim
        try:
            receipt = executor.execute(action)
        except ExecutionError as exc:
            d = self.deliveries.finish(d.id, claim, error=exc.message)
            detail = {"error": exc.message, "delivery": d.state.value, "attempts": d.attempts}
            self.gate.record_execution(req.id, ok=False, detail=detail)
            if d.state == State.DEAD:
                return False
            raise
        detail = {"executor": receipt.executor, "status": receipt.status, **receipt.detail}
        if receipt.status == "done":
            self.deliveries.finish(d.id, claim, receipt=detail)
        else:  # the receiver said no for good: a person looks at it (retry or cancel)
            self.deliveries.finish(d.id, claim, error=f"refused: {detail}", final=True)
        self._record(req, receipt)
        return receipt.status == "done"

    def redeliver_due(self, limit: int = 100) -> int:
        """The sweeper's part: one attempt for each push delivery that is due; how many delivered."""
        if self.deliveries is None:
            return 0
        delivered = 0
        for delivery_id in self.deliveries.due_push(limit):
            d = self.deliveries.get(delivery_id)
            executor = self.executors.get(d.route)
            if executor is None or d.approval_id is None:
                log.warning("delivery %s: no executor %r in this process", d.id, d.route)
                continue
            req = self.gate.get(d.approval_id)
            if req.status != "approved":
                continue
            action = Action(tenant=d.tenant, run_id=d.run_id, kind=d.kind, payload=d.payload,
                            idempotency_key=d.idempotency_key, subject_id=d.subject_id,
                            approval_id=d.approval_id)  # fmt: skip
            try:
                delivered += self._push(req, executor, action, d, by_run=False)
            except ExecutionError as exc:
                log.info("delivery %s not delivered yet: %s", d.id, exc.message)
        return delivered
