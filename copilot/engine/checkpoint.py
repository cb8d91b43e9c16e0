"""Checkpoints: a step's output, effects, proposals and audit event, committed together.

Each checkpoint is one transaction that also renews the lease: if the lease was lost
(another worker took the run over) nothing is written and the step's work is dropped.
A round of a multi-round step (`Again`) is checkpointed the same way, staying on its step.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
        batch: Batch | None = None,
    ) -> Run | bool:
        """Persist a step's output, effects and audit event; False if the lease was lost.

        The run as it now stands when the checkpoint ended the advance (it paused or
        finished) and the store returned it; else True.

        The last step's checkpoint completes the run in the same transaction. Checkpoints
        that neither pause nor finish the run commit without waiting for the WAL flush on
        PostgreSQL: a database crash that loses one loses its effects and audit event with
        it, and the step simply runs again (executors replay their receipts), while pauses,
        completions and failures, which others act on, always wait for the flush.

        `batch`: the advance's held checkpoints (durability="batched"; see `Batch`): a
        plain step joins them unless it ends the advance, and any other step commits them
        first.
        """
        now = self.store.clock()
        doc = output.model_dump(mode="json")
        plain = not (ctx.effects or ctx.proposals or ctx.withheld)
        if plain and (self.lease.pg or self.lease.sqlite):
            return self._step_fast(run, ctx, doc, request, started, now, last=last, batch=batch)
        if batch is not None and not self.flush(run, batch):
            return False
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
            if batch is not None:
                batch.committed = time.monotonic()  # the lease was renewed with it
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
        batch: Batch | None,
    ) -> Run | bool:
        """A step without effects or proposals: one call on PostgreSQL (see copilot_step),
        one statement on SQLite (fastpath.sqlite_op; and a read of the run when it ends the
        advance).

        With it, the last step completes the run and an `Await` parks it, as `step` does.
        With a `batch` (durability="batched"), a step that does neither is held there
        instead, and is committed with the next checkpoint (see `Batch`).
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
        held = (params, events)
        if batch is None:
            return self._commit(run, [held], to)
        # A step that reached out (an action, the model, a call recorded with ctx.used) is
        # never held: what it sent out must not outlive a lost batch unrecorded.
        with batch.lock:
            if to is None and not ctx.reached_out and not batch.due(time.monotonic(), self.lease.seconds):
                batch.steps.append(held)
                return True
            return self._commit_taking(run, batch, [held], to)

    def flush(self, run: Run, batch: Batch) -> bool:
        """Commit the steps `batch` holds (if any) as one checkpoint; False if the lease was
        lost. If the commit raises, the steps stay held (a later flush may commit them)."""
        with batch.lock:
            if not batch.steps:
                return True
            return self._commit_taking(run, batch, [], None) is not False

    def _commit_taking(
        self, run: Run, batch: Batch, more: list[Held], to: RunState | None
    ) -> Run | bool:
        """Commit what `batch` holds and then `more`; on an error, put the held back."""
        before, taken = batch.committed, batch.take(time.monotonic())
        try:
            return self._commit(run, [*taken, *more], to)
        except BaseException:
            batch.steps[:0], batch.committed = taken, before
            raise

    def _commit(self, run: Run, held: list[Held], to: RunState | None) -> Run | bool:
        """Commit consecutive steps' checkpoints (each its params and audit events) in one
        call or statement; the run when `to` ended the advance, else True; False if the
        lease was lost (nothing written). The events are recorded now, as they commit."""
        stamp = timestamp()
        sealed = [seal(e, stamp) for _, events in held for e in events]
        if self.lease.sqlite:
            try:
                row = fastpath.sqlite_op(self.store.engine, "step", [p for p, _ in held],
                                         run.tenant, sealed, then_get=to is not None)  # fmt: skip
            except sqlite3.IntegrityError as exc:
                # The lease was lost, or a zombie of ours already checkpointed this step.
                if fastpath.refused(exc, fastpath.LEASE_LOST) or _step_taken(exc):
                    return False
                raise
            return run_from(row) if row is not None else True
        if len(held) == 1:
            now_run = fastpath.step(self.store.engine, held[0][0], run.tenant, sealed)
        else:
            now_run = fastpath.steps(self.store.engine, _batched(held), run.tenant, sealed)
        if now_run is None:
            return False
        return now_run if to is not None else True


# A step's checkpoint as `Checkpointer._commit` takes it: its arguments, its audit events.
Held = tuple[dict[str, Any], list[AuditEvent]]


class LeaseLost(BaseException):
    """Raised into a step that was about to reach outside the database (an action, the
    model) when committing the steps held before it found the lease gone: a zombie that
    holds steps learns it there and does not act (one holding none acts as in step mode,
    and the executor's idempotency key and the next checkpoint's lease check stop it). A
    BaseException, so a step's own `except Exception` does not swallow it; the runner stops
    the advance (another worker owns the run)."""


class FlushFailed(BaseException):
    """Raised into a step when committing the steps held before its action or model call
    raised (the database away, say): the step must not go on and act. The runner re-raises
    `error` itself, so a transient fault is retried as any checkpoint's is."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Batch:
    """The checkpoints of plain steps a batched workflow's advance holds in the worker.

    A workflow declared with `durability="batched"` commits a step with no effects, no
    proposals, no pause, and that neither executed an action nor used the model, together
    with the next checkpoint that commits anyway: a pause, the run's completion, a step
    with effects or proposals, a failure or timeout, or the first step to finish a tenth
    of a lease (`HOLD`) or more after the last commit, so every step starts with at least
    nine tenths of its lease left. Before a step executes an action or calls the model
    through its context, what is held commits first: nothing it sends out that way follows
    a step that is not recorded. The trade: a worker or database lost before that commit loses the held
    steps' rows and audit events with it, and the steps run again on the next attempt.
    """

    HOLD: ClassVar[float] = 0.1  # of the lease: how old held work may grow
    # When the lease was last renewed by a commit: time.monotonic(), which no clock step moves.
    committed: float
    steps: list[Held] = field(default_factory=list)
    # A step may reach out from several threads (a pool of model calls): one flush at a time.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def due(self, now: float, lease_seconds: float) -> bool:
        """Whether a step finishing at `now` must commit (a tenth of the lease has gone by)."""
        return now - self.committed >= lease_seconds * self.HOLD

    def take(self, now: float) -> list[Held]:
        """The held steps, emptied, the commit that takes them being made at `now`."""
        held, self.steps, self.committed = self.steps, [], now
        return held


def _batched(held: list[Held]) -> dict[str, Any]:
    """copilot_steps' arguments for consecutive steps: the first step's lease check, the
    last one's move of the run, and each step's own columns as arrays."""
    first, final = held[0][0], held[-1][0]
    steps = [p for p, _ in held]
    return {
        "rid": first["rid"], "owner": first["owner"], "idx": first["idx"],
        "attempt": first["attempt"], "now": final["now"], "seconds": final["seconds"],
        "level": final["level"], "reasons": final["reasons"], "to": final["to"],
        "result": final["result"], "names": [p["name"] for p in steps],
        "statuses": [p["status"] for p in steps], "outputs": [p["output"] for p in steps],
        "requests": [p["request"] for p in steps], "models": [p["model"] for p in steps],
        "prompts": [p["prompt"] for p in steps], "usages": [p["usage"] for p in steps],
        "started": [p["started"] for p in steps], "finished": [p["now"] for p in steps],
    }  # fmt: skip


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
