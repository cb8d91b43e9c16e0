"""Checkpoints: a step's output, effects, proposals and audit event, committed together.

Each checkpoint is one transaction that also renews the lease: if the lease was lost
(another worker took the run over) nothing is written and the step's work is dropped.
A round of a multi-round step (`Again`) is checkpointed the same way, staying on its step.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from approvals import payload_hash
from audit import Actor, AuditEvent, Versions, seal
from audit.canonical import canonical
from audit.chain import timestamp
from copilot.db.tables import run_steps
from copilot.engine import fastpath
from copilot.engine.gating import ActionGate, Proposal
from copilot.engine.lease import Lease
from copilot.engine.rounds import save as save_round
from copilot.engine.runs import Run, RunState, run_from
from copilot.engine.step import EngineContext
from copilot.errors import CopilotError
from copilot.workflow.degradation import Degradation

_SAVE_STEP = insert(run_steps)


class Checkpointer:
    """Commits steps and rounds under the lease, submitting their proposals to the gate."""

    def __init__(self, lease: Lease, actions: ActionGate | None) -> None:
        self.lease = lease
        self.store = lease.store
        self.actions = actions

    def step(
        self,
        run: Run,
        ctx: EngineContext,
        output: BaseModel,
        request: dict[str, Any] | None,
        started: float,
        *,
        last: bool,
    ) -> Run | bool:
        """Persist a step's output, effects and audit event; False if the lease was lost.

        The run as it now stands when the checkpoint ended the advance (it paused or
        finished) and the store returned it; else True.

        The last step's checkpoint completes the run in the same transaction. Checkpoints
        that neither pause nor finish the run commit without waiting for the WAL flush on
        PostgreSQL: a database crash that loses one loses its effects and audit event with
        it, and the step simply runs again (executors replay their receipts), while pauses,
        completions and failures, which others act on, always wait for the flush.
        """
        now = self.store.clock()
        doc = output.model_dump(mode="json")
        plain = not (ctx.effects or ctx.proposals or ctx.withheld)
        if plain and (self.lease.pg or self.lease.sqlite):
            return self._step_fast(run, ctx, doc, request, started, now, last=last)
        status = "awaiting" if request is not None else "proposed" if ctx.proposals else "completed"
        try:
            durable = request is not None or last or bool(ctx.proposals)
            engine = self.store.engine if durable else self.store.async_engine
            with engine.begin() as conn:
                if not self.lease.renew_in(conn, run, ctx.idx, ctx.idx + 1, now, ctx.degradation):
                    return False
                conn.execute(_SAVE_STEP, {
                    "run_id": run.id, "idx": ctx.idx, "name": ctx.step.name, "status": status,
                    "output": json.dumps(doc, sort_keys=True),
                    "request": json.dumps(request, sort_keys=True) if request is not None else None,
                    "attempt": run.attempts, "model": ctx.model_name,
                    "prompt_version": ctx.prompt_version,
                    "usage": json.dumps(ctx.usage) if ctx.usage else None,
                    "started_at": started, "finished_at": now,
                })  # fmt: skip
                for effect in ctx.effects:
                    effect(conn)
                events = [step_event(run, ctx, doc)]
                if ctx.withheld:
                    events.append(withheld_event(run, ctx))
                self.store.audit.append_in(conn, run.tenant, events)
                pending = self._submit(conn, run, ctx)
                waiting = {"request": request} if request is not None else {"approvals": pending}
                if request is not None or pending:
                    self.lease.move(conn, run, RunState.WAITING, "run.waiting",
                                    {"step": ctx.step.name, **waiting})  # fmt: skip
                elif last:
                    self._finish_in(conn, run, doc, ctx.degradation)
        except IntegrityError as exc:
            current = self.store.get(run.id)
            if current.lease_owner == self.lease.owner and current.step_index == ctx.idx:
                raise CopilotError(
                    f"an effect violated a constraint: {exc.orig}", code="run.checkpoint_failed"
                ) from exc
            return False  # a zombie of ours: another worker checkpointed this step
        return True

    def round(self, run: Run, ctx: EngineContext, state: BaseModel) -> bool:
        """Commit one round of a multi-round step; False if the lease was lost meanwhile."""
        now = self.store.clock()
        doc = state.model_dump(mode="json")
        try:
            with self.store.engine.begin() as conn:
                # Stays on this step: the next round runs it again.
                if not self.lease.renew_in(conn, run, ctx.idx, ctx.idx, now, ctx.degradation):
                    return False
                save_round(
                    conn, run.id, ctx.idx, ctx.round, doc, proposed=bool(ctx.proposals), at=now
                )
                for effect in ctx.effects:
                    effect(conn)
                event = step_event(run, ctx, doc)
                event = event.model_copy(update={
                    "event_type": "step.round", "data": {**event.data, "round": ctx.round}})  # fmt: skip
                events = [event] + ([withheld_event(run, ctx)] if ctx.withheld else [])
                self.store.audit.append_in(conn, run.tenant, events)
                pending = self._submit(conn, run, ctx)
                if pending:
                    self.lease.move(conn, run, RunState.WAITING, "run.waiting",
                                    {"step": ctx.step.name, "round": ctx.round, "approvals": pending})  # fmt: skip
        except IntegrityError as exc:
            current = self.store.get(run.id)
            if current.lease_owner == self.lease.owner and current.state == RunState.RUNNING:
                raise CopilotError(
                    f"an effect violated a constraint: {exc.orig}", code="run.checkpoint_failed"
                ) from exc
            return False  # another worker committed this round first
        self.notify(ctx)
        return True

    def notify(self, ctx: EngineContext) -> None:
        """After commit: reviewers hear of the requests the step submitted."""
        if ctx.submitted and self.actions is not None:
            self.actions.gate.notify(list(ctx.submitted))

    def complete(self, run: Run, output: BaseModel, degradation: Degradation) -> Run:
        """Complete the run with `output` (its last step's, already checkpointed)."""
        with self.store.engine.begin() as conn:
            self._finish_in(conn, run, output.model_dump(mode="json"), degradation)
        return self.store.get(run.id)

    def _finish_in(
        self, conn: Connection, run: Run, doc: dict[str, Any], degradation: Degradation
    ) -> None:
        data = {"level": degradation.level.value, "reasons": list(degradation.reasons)}
        self.lease.move(conn, run, RunState.COMPLETED, "run.completed", data,
                        result=json.dumps(doc, sort_keys=True))  # fmt: skip

    def _submit(self, conn: Connection, run: Run, ctx: EngineContext) -> list[str]:
        """Submit the step's proposals in its checkpoint transaction; the pending ones' ids."""
        if not ctx.proposals or self.actions is None:
            return []

        def explain(p: Proposal) -> dict[str, Any]:
            why = p.why or "Proposed by the workflow's rules."
            return ctx.explain(why, confidence=p.confidence).model_dump(mode="json")

        submitted = self.actions.submit(conn, run, ctx.idx, ctx.proposals, round=ctx.id_round,
                                        level=ctx.degradation.level.value, explain=explain)  # fmt: skip
        ctx.mark_submitted(submitted)
        return [req.id for req in submitted if req.status == "pending"]

    def _step_fast(
        self,
        run: Run,
        ctx: EngineContext,
        doc: dict[str, Any],
        request: dict[str, Any] | None,
        started: float,
        now: float,
        *,
        last: bool,
    ) -> Run | bool:
        """A step without effects or proposals: one call on PostgreSQL (see copilot_step),
        one statement on SQLite (fastpath.sqlite_op; and a read of the run when it ends the
        advance).

        With it, the last step completes the run and an `Await` parks it, as `step` does.
        """
        events = [step_event(run, ctx, doc)]
        to = RunState.WAITING if request is not None else RunState.COMPLETED if last else None
        if to is RunState.WAITING:
            data: dict[str, Any] = {"step": ctx.step.name, "request": request}
        elif to is RunState.COMPLETED:
            data = {"level": ctx.degradation.level.value,
                    "reasons": list(ctx.degradation.reasons)}  # fmt: skip
        if to is not None:
            events += self.store.run_events(run, [(
                f"run.{to.value}", Actor.system(self.lease.owner),
                {"from": run.state.value, "to": to.value, **data},
            )])  # fmt: skip
        stamp = timestamp()
        params = {
            "rid": run.id, "owner": self.lease.owner, "idx": ctx.idx, "now": now,
            "seconds": self.lease.seconds, "level": ctx.degradation.level.value,
            "reasons": json.dumps(list(ctx.degradation.reasons)), "name": ctx.step.name,
            "status": "awaiting" if request is not None else "completed",
            "output": json.dumps(doc, sort_keys=True),
            "request": json.dumps(request, sort_keys=True) if request is not None else None,
            "attempt": run.attempts, "model": ctx.model_name, "prompt": ctx.prompt_version,
            "usage": json.dumps(ctx.usage) if ctx.usage else None, "started": started,
            "to": to.value if to is not None else None,
            "result": json.dumps(doc, sort_keys=True) if to is RunState.COMPLETED else None,
        }  # fmt: skip
        sealed = [seal(e, stamp) for e in events]
        if self.lease.sqlite:
            try:
                row = fastpath.sqlite_op(self.store.engine, "step", params, run.tenant, sealed,
                                         then_get=to is not None)  # fmt: skip
            except sqlite3.IntegrityError as exc:
                # The lease was lost, or a zombie of ours already checkpointed this step.
                if fastpath.refused(exc, fastpath.LEASE_LOST) or _step_taken(exc):
                    return False
                raise
            return run_from(row) if row is not None else True
        now_run = fastpath.step(self.store.engine, params, run.tenant, sealed)
        if now_run is None:
            return False
        return now_run if to is not None else True


def _step_taken(exc: sqlite3.IntegrityError) -> bool:
    """The step's row exists already (its primary key), as PostgreSQL's UniqueViolation."""
    return str(exc).startswith("UNIQUE constraint failed: run_steps.")


def step_event(run: Run, ctx: EngineContext, doc: dict[str, Any]) -> AuditEvent:
    """The audit event of a completed step (or round): what ran, on which model, its digest."""
    return AuditEvent(
        event_type="step.completed",
        actor=Actor.agent(ctx.model_name or "rules"),
        run_id=run.id,
        subject_id=run.subject_id,
        versions=Versions(
            workflow=f"{run.workflow}@{run.version}",
            model=ctx.model_name,
            prompt=ctx.prompt_version,
        ),
        data={
            "step": ctx.step.name,
            "idx": ctx.idx,
            "output_sha256": hashlib.sha256(canonical(doc)).hexdigest(),
            "usage": ctx.usage,
            "level": ctx.degradation.level.value,
        },
    )


def withheld_event(run: Run, ctx: EngineContext) -> AuditEvent:
    """What a held-out run would have proposed: kinds and payload digests, for measurement."""
    return AuditEvent(
        event_type="proposals.withheld",
        actor=Actor.system("holdout"),
        run_id=run.id,
        subject_id=run.subject_id,
        data={
            "step": ctx.step.name,
            "proposals": [
                {
                    "kind": p.kind,
                    "payload_sha256": payload_hash(p.payload),
                    "confidence": p.confidence,
                }
                for p in ctx.withheld
            ],
        },
    )
