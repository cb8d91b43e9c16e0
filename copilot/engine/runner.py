"""The durable runner: advance a run under a lease, checkpoint every step, pause as a value.

One call to `Runner.advance(run_id)` takes the run's lease, executes every due step,
persists each output (with the step's effects and audit event, in one transaction that
also re-checks the lease), and then finishes the run, parks it in `waiting`, or fails
it. A completed step is never executed again: on resume, redelivery or recovery after a
crash, execution continues after the last checkpoint. A step interrupted before its
checkpoint committed runs again, so its outside effects go through `ctx.execute`
(idempotent executors) or `ctx.on_commit` (the checkpoint transaction).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.rows
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from approvals import ApprovalRequest, Gate, payload_hash
from audit import Actor, AuditEvent, Versions, genesis, seal
from audit.canonical import canonical
from audit.db import autocommit_driver, readonly
from copilot.db.tables import run_steps, runs
from copilot.engine.executors import Action, ExecutionError, Executor, Receipt
from copilot.engine.gating import Proposal, execute_approved
from copilot.engine.rounds import Round
from copilot.engine.rounds import load as load_rounds
from copilot.engine.rounds import save as save_round
from copilot.engine.runs import Run, RunState, RunStore, StepRecord, acquired_event, run_from
from copilot.errors import CopilotError, UnknownWorkflowError
from copilot.governance.consent import Consent
from copilot.governance.minimize import LEFTOVER, model_payload
from copilot.governance.sources import ContextSource, SignalValue
from copilot.llm import ModelAccess, ModelCall
from copilot.measure.holdouts import fraction_for, held_out
from copilot.workflow.definition import Again, Await, Step, Workflow
from copilot.workflow.degradation import FALLBACK_REASONS, Degradation, Explanation, Level, assess
from copilot.workflow.registry import Registry

Enqueue = Callable[[str, float], None]
T = TypeVar("T", bound=BaseModel)

_ADVANCE = (
    update(runs)
    .where(
        runs.c.id == bindparam("rid"),
        runs.c.lease_owner == bindparam("owner"),
        runs.c.state == RunState.RUNNING.value,
        runs.c.step_index == bindparam("idx"),
    )
    .values(
        step_index=bindparam("next"),
        updated_at=bindparam("now"),
        lease_expires_at=bindparam("expires"),
        level=bindparam("level"),
        reasons=bindparam("reasons"),
    )
)
_SAVE_STEP = insert(run_steps)
_PG_CHECKPOINT = "SELECT copilot_checkpoint(" + ", ".join(["%s"] * 22) + ")"
_PG_ACQUIRE = "SELECT * FROM copilot_acquire(" + ", ".join(["%s"] * 16) + ")"
_GET_RUN = select(runs).where(runs.c.id == bindparam("rid"))
_ASSESSED = (
    update(runs)
    .where(runs.c.id == bindparam("rid"))
    .values(level=bindparam("level"), reasons=bindparam("reasons"))
)


class TransientError(Exception):
    """A fault worth retrying later (database unavailable, lease lost to a slow commit)."""


class StepContext:
    """What a step sees of its run, and the few ways it may act."""

    def __init__(
        self,
        runner: Runner,
        run: Run,
        workflow: Workflow,
        step: Step,
        idx: int,
        degradation: Degradation,
        values: Mapping[str, SignalValue],
        decision: dict[str, Any] | None,
        rounds: list[Round] | None = None,
    ) -> None:
        self._runner = runner
        # A multi-round step's stored state from its last committed round, and this round's number.
        self.progress: dict[str, Any] | None = rounds[-1].state if rounds else None
        self.round = len(rounds) if rounds else 0
        self.run = run
        self.workflow = workflow
        self.step = step
        self.idx = idx
        self.degradation = degradation
        self.signals = dict(values)
        self.decision = decision
        self.model: ModelAccess = runner.model
        self._effects: list[Callable[[Connection], None]] = []
        self._proposals: list[Proposal] = []
        self._withheld: list[Proposal] = []
        self._submitted: list[ApprovalRequest] = []
        self._actions = 0
        self.model_name: str | None = None
        self.prompt_version: str | None = None
        self.usage: dict[str, int] = {}

    @property
    def level(self) -> Level:
        """The run's degradation level, as it stands now."""
        return self.degradation.level

    def value(self, name: str, default: Any = None) -> Any:
        """A signal's value, or `default` when the context does not hold it."""
        found = self.signals.get(name)
        return found.value if found is not None else default

    def values(self) -> dict[str, Any]:
        """Every signal the workflow reads, by name (None where the context holds none)."""
        return {n.name: self.value(n.name) for n in self.workflow.signals}

    def degrade(self, level: Level, reason: str) -> None:
        """Lower the run's level (never raise it) and record why."""
        self.degradation = self.degradation.worse(level, reason)

    def used(self, call: ModelCall[Any]) -> None:
        """Record a model call on this step; a fault degrades the run to `partial` with its reason."""
        self.model_name = call.model
        self.prompt_version = call.prompt_version
        for k, v in call.usage.items():
            self.usage[k] = self.usage.get(k, 0) + v
        if call.fault is not None:
            self.degrade(Level.PARTIAL, call.fault)

    def ask(
        self,
        schema: type[T],
        instructions: str,
        *,
        signals: Sequence[str],
        facts: Mapping[str, Any] | None = None,
        prompt_version: str,
    ) -> ModelCall[T]:
        """Ask the model for a `schema` object about the named signals, minimized.

        Only signals this workflow declares may be named; personal values travel as tokens
        and are restored in the reply (see `copilot.minimize`); the data travels inside
        <data> delimiters, never as instructions. The call is recorded on the step, and a
        fault degrades the run with its reason code: check `call.ok` and fall back to rules.
        """
        data, pseudo = model_payload(
            self._runner.registry.signals,
            self.workflow.name,
            [n.name for n in self.workflow.signals],
            self.signals,
            signals,
            facts or {},
        )
        call = self.model.structured(
            schema, pseudo.scrub(instructions), data, prompt_version=prompt_version
        )
        if call.value is not None:
            restored = pseudo.restore(call.value.model_dump())
            try:
                if LEFTOVER.search(json.dumps(restored, ensure_ascii=False)):
                    raise ValueError("a token the exchange never issued")  # never sent on
                call.value = schema.model_validate(restored)
            except (ValidationError, ValueError):
                call.value, call.fault = None, "model_invalid_output"
        self.used(call)
        return call

    def propose(
        self, kind: str, payload: dict[str, Any], *, confidence: float, why: str | None = None
    ) -> None:
        """Propose an action for the gate; validated now, submitted with this step's checkpoint.

        The kind must be in the catalog and the payload must fit its schema (else the
        gate's error is raised here, in the step). At `thin` level only internal actions
        may be proposed. The next step sees every outcome in `ctx.decision["approvals"]`.
        """
        gate = self._runner.gate
        if gate is None:
            raise CopilotError("this runtime has no approval gate configured", code="run.no_gate")
        action = gate.catalog.get(kind)
        model = action.validate(payload)
        if action.reaches_customer and self.level in (Level.THIN, Level.NONE):
            raise CopilotError(
                f"{kind} reaches a customer; at level {self.level.value} only internal actions may be "
                "proposed (add the missing signals, or propose an internal action)",
                code="run.action_restricted",
                kind=kind,
                level=self.level.value,
            )
        capped = self.degradation.cap(confidence)
        proposal = Proposal(
            kind=kind, payload=model.model_dump(mode="json"), confidence=capped, why=why
        )
        # A held-out subject gets nothing; what it would have got is logged for measurement.
        (self._withheld if self.run.holdout else self._proposals).append(proposal)

    def on_commit(self, effect: Callable[[Connection], None]) -> None:
        """Run `effect(conn)` inside this step's checkpoint transaction (exactly once)."""
        self._effects.append(effect)

    def execute(self, kind: str, payload: dict[str, Any], *, executor: str = "outbox") -> Receipt:
        """Carry out an action through an executor, once: its key is derived from run and step."""
        self._actions += 1
        key = f"{self.run.id}:{self.step.name}:{self._actions}"
        try:
            chosen = self._runner.executors[executor]
        except KeyError:
            known = ", ".join(sorted(self._runner.executors))
            raise CopilotError(
                f"no executor {executor!r} (configured: {known})", code="action.unknown_executor"
            ) from None
        return chosen.execute(
            Action(
                tenant=self.run.tenant,
                run_id=self.run.id,
                kind=kind,
                payload=payload,
                idempotency_key=key,
            )
        )

    def explain(self, why: str, *, confidence: float, method: str | None = None) -> Explanation:
        """ "Why am I seeing this": one sentence plus the evidence, capped by the level."""
        fell_back = FALLBACK_REASONS.intersection(self.degradation.reasons)
        method = method or (
            f"model:{self.model_name}" if self.model_name and not fell_back else "rules"
        )
        return Explanation(
            why=why,
            method=method,
            level=self.degradation.level,
            reasons=self.degradation.reasons,
            confidence=self.degradation.cap(confidence),
            signals=self.degradation.signals,
            model=self.model_name,
            prompt_version=self.prompt_version,
            opt_out=f"opt out of {self.workflow.name} for {self.run.subject_id}: "
            f"PUT /v1/subjects/{self.run.subject_id}/preferences",
        )


class Runner:
    """Advances runs. One per process; cheap to build from settings at the edge."""

    def __init__(
        self,
        store: RunStore,
        registry: Registry,
        *,
        context: ContextSource,
        model: ModelAccess,
        executors: Mapping[str, Executor],
        enqueue: Enqueue | None = None,
        lease_seconds: float = 60.0,
        owner: str | None = None,
        gate: Gate | None = None,
        action_executors: Mapping[str, str] | None = None,
        max_attempts: int = 25,
        consent: Consent | None = None,
        holdouts: Mapping[str, float] | None = None,
        holdout_salt: str = "copilot",
    ) -> None:
        self.store = store
        self.registry = registry
        self.context = context
        self.model = model
        self.executors = dict(executors)
        self.enqueue = enqueue
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._pg = store.engine.dialect.name == "postgresql"
        self.gate = gate
        self.action_executors = dict(action_executors or {})
        self.max_attempts = max_attempts
        self.consent = consent
        self.holdouts = dict(holdouts or {})
        self.holdout_salt = holdout_salt

    # -- triggering -------------------------------------------------------------------------

    def trigger(
        self,
        workflow: str,
        subject_id: str,
        *,
        tenant: str,
        inputs: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        triggered_by: str = "system",
        version: str | None = None,
        cause: Mapping[str, Any] | None = None,
    ) -> tuple[Run, bool]:
        """Create a queued run (the same idempotency key returns the same run) and enqueue it.

        `cause` (a schedule or event trigger: its name, period or window) goes into the
        `run.created` audit event, whose actor is then the system rather than a person.
        """
        wf = self.registry.get(workflow, version)
        why = {"cause": dict(cause)} if cause is not None else {}
        actor = Actor.system(triggered_by) if cause is not None else None
        data = {"subject_id": subject_id, **(inputs or {})}
        try:
            wf.input.model_validate(data)
        except ValidationError as exc:
            raise CopilotError(
                f"inputs for {wf.name} do not fit {wf.input.__name__}: {exc.errors(include_url=False)}",
                code="run.invalid_inputs",
            ) from exc
        fraction = fraction_for(wf.name, wf.holdout, self.holdouts)
        holdout = held_out(subject_id, wf.name, fraction, salt=self.holdout_salt)
        refusal = self.consent.refusal(tenant, subject_id, wf.name) if self.consent else None
        if refusal is not None:  # opted out or snoozed: a skipped run, with the reason, audited
            return self.store.create(
                tenant=tenant,
                workflow=wf.name,
                version=wf.version,
                subject_id=subject_id,
                inputs=data,
                idempotency_key=idempotency_key,
                triggered_by=triggered_by,
                state=RunState.SKIPPED,
                reasons=[refusal],
                data={"reason": refusal, **why},
                actor=actor,
                holdout=holdout,  # the arm is the subject's either way: no bias in the lift
            )
        run, created = self.store.create(
            tenant=tenant,
            workflow=wf.name,
            version=wf.version,
            subject_id=subject_id,
            inputs=data,
            idempotency_key=idempotency_key,
            triggered_by=triggered_by,
            holdout=holdout,
            data=why,
            actor=actor,
        )
        if created and self.enqueue is not None:
            self.enqueue(run.id, 0.0)
        return run, created

    # -- advancing --------------------------------------------------------------------------

    def advance(self, run_id: str) -> Run | None:
        """Execute every due step of the run under its lease; None when it was not ours to run."""
        try:
            started = self._start(run_id)
            if started is None:
                return None
            run, wf, degradation, values, previous = started
            if wf is None or degradation is None:
                return self.store.get(run.id)
            return self._steps(run, wf, degradation, values, previous)
        except (OperationalError, psycopg.OperationalError, ExecutionError) as exc:
            # The database or an executor's endpoint is away: hand the run back and retry.
            # (An executor failure leaves no receipt, so the retry acts with the same key.)
            raise TransientError(str(exc)) from exc

    def _start(self, run_id: str) -> Any:
        """Take the lease and, on the first advance, assess the context: one transaction.

        It commits without waiting for the WAL flush unless it ends the run: a database
        crash that loses it leaves the run queued, to be taken again.
        """
        if self._pg:
            fast = self._start_pg(run_id)
            if fast is not None:
                return None if fast is False else fast
        with self.store.async_engine.begin() as conn:
            taken = self.store.acquire_in(conn, run_id, self.owner, self.lease_seconds, audit=False)
            if taken is None:
                return None
            before, run = taken
            events = [acquired_event(before, self.owner)]
            if run.attempts > self.max_attempts:
                self.store.events_in(conn, run, events)
                self._end_in(
                    conn,
                    run,
                    RunState.FAILED,
                    "run.failed",
                    error={
                        "code": "run.too_many_attempts",
                        "message": f"the run was taken {run.attempts} times without finishing; see its "
                        "steps and the worker logs",
                    },
                )
                return run, None, None, {}, []
            try:
                wf = self.registry.get(run.workflow, run.version)
            except UnknownWorkflowError:
                self.store.events_in(conn, run, events)
                message = (
                    f"{run.workflow}@{run.version} is no longer registered; redeploy it "
                    "alongside the new version until its runs finish, or cancel them"
                )
                self._end_in(
                    conn,
                    run,
                    RunState.FAILED,
                    "run.failed",
                    error={"code": "workflow.version_gone", "message": message},
                )
                return run, None, None, {}, []
            values = self.context.fetch(run.tenant, run.subject_id, [n.name for n in wf.signals])
            assessed = assess(wf.signals, values, self.store.clock())
            if run.level is not None:  # pinned at the first advance
                assessed = _pinned(assessed, run)
            elif assessed.level == Level.NONE:
                self.store.events_in(conn, run, events)
                self._end_in(
                    conn,
                    run,
                    RunState.SKIPPED,
                    "run.skipped",
                    level="none",
                    reasons=list(assessed.reasons),
                )
                return run, wf, None, values, []
            else:
                conn.execute(
                    _ASSESSED,
                    {
                        "rid": run.id,
                        "level": assessed.level.value,
                        "reasons": json.dumps(list(assessed.reasons)),
                    },
                )
                events.append(self._assessed_event(assessed))
            self.store.events_in(conn, run, events)
            previous = self.store.steps(run.id, conn) if run.step_index else []
        return run, wf, assessed, values, previous

    def _start_pg(self, run_id: str) -> Any:
        """`_start` in two round trips (read, then copilot_acquire) for the common case.

        Returns False when the run is not ours to take, None to fall back to the general
        path (the workflow is gone, or there is nothing to go on: the run ends there).
        """
        with readonly(self.store.engine.connect()) as conn:
            row = conn.execute(_GET_RUN, {"rid": run_id}).first()
        if row is None or row.state not in (RunState.QUEUED.value, RunState.RUNNING.value):
            return False
        before = run_from(row._mapping)
        if before.attempts >= self.max_attempts:
            return None  # the general path fails it
        try:
            wf = self.registry.get(before.workflow, before.version)
        except UnknownWorkflowError:
            return None
        values = self.context.fetch(before.tenant, before.subject_id, [n.name for n in wf.signals])
        assessed = assess(wf.signals, values, self.store.clock())
        events = [acquired_event(before, self.owner)]
        level = reasons = None
        if before.level is not None:
            assessed = _pinned(assessed, before)
        elif assessed.level == Level.NONE:
            return None
        else:
            level, reasons = assessed.level.value, json.dumps(list(assessed.reasons))
            events.append(self._assessed_event(assessed))
        sealed = [seal(e) for e in self.store.run_events(before, events)]
        now = self.store.clock()
        with autocommit_driver(self.store.engine) as db:
            cur = db.cursor(row_factory=psycopg.rows.dict_row)
            taken = cur.execute(
                _PG_ACQUIRE,
                (
                    run_id,
                    self.owner,
                    now,
                    now + self.lease_seconds,
                    before.state.value,
                    before.attempts,
                    level,
                    reasons,
                    before.tenant,
                    genesis(before.tenant),
                    [s.body for s in sealed],
                    [s.recorded_at for s in sealed],
                    [s.event.actor.kind.value for s in sealed],
                    [s.event.actor.id for s in sealed],
                    [s.event.event_type for s in sealed],
                    before.subject_id,
                ),
                prepare=True,
            ).fetchone()
        if taken is None:
            return False
        run = run_from(taken)
        previous = self.store.steps(run.id) if run.step_index else []
        return run, wf, assessed, values, previous

    def _assessed_event(self, assessed: Degradation) -> tuple[str, Actor, dict[str, Any]]:
        data = {
            "level": assessed.level.value,
            "reasons": list(assessed.reasons),
            "coverage": assessed.coverage,
        }
        return "run.context_assessed", Actor.system(self.owner), data

    def _move(
        self,
        conn: Connection,
        run: Run,
        to: RunState,
        event: str,
        data: dict[str, Any],
        **values: Any,
    ) -> bool:
        """A transition of a run this worker holds (running, leased by us), with its audit event."""
        return self.store.transition(
            conn,
            run,
            to,
            expect=(RunState.RUNNING,),
            owner=self.owner,
            actor=Actor.system(self.owner),
            event=event,
            data=data,
            **values,
        )

    def _end_in(self, conn: Connection, run: Run, to: RunState, event: str, **fields: Any) -> None:
        """End a run inside `conn`, durably: others act on terminal states."""
        if self._pg:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = on")
        values: dict[str, Any] = {}
        if "error" in fields:
            values["error"] = json.dumps(fields["error"], sort_keys=True)
        if "reasons" in fields:
            values.update(level=fields.get("level"), reasons=json.dumps(fields["reasons"]))
        self._move(conn, run, to, event, dict(fields), **values)

    def _steps(
        self,
        run: Run,
        wf: Workflow,
        degradation: Degradation,
        values: Mapping[str, SignalValue],
        previous: list[StepRecord],
    ) -> Run:
        current: BaseModel = wf.input.model_validate(run.inputs)
        decision: dict[str, Any] | None = None
        if previous:
            done = previous[-1]
            current = wf.steps[done.idx].output_type.model_validate(done.output)
            decision = done.decision
        # Only a step that proposed actions has outcomes to carry out and report.
        proposed = bool(previous) and previous[-1].status == "proposed"
        for idx in range(run.step_index, len(wf.steps)):
            if proposed and self.gate is not None:
                outcomes = execute_approved(self, run.id, idx - 1)
                decision = {**(decision or {}), "approvals": outcomes}
            step = wf.steps[idx]
            rounds = load_rounds(self.store.engine, run.id, idx) if step.rounds else []
            while True:
                if rounds and rounds[-1].proposed and self.gate is not None:
                    prefix = f"{run.id}:{idx}:r{rounds[-1].round}:"
                    decision = {"approvals": execute_approved(self, run.id, idx, prefix=prefix)}
                ctx = StepContext(self, run, wf, step, idx, degradation, values, decision, rounds)
                started = self.store.clock()
                try:
                    produced = step.fn(ctx, current)
                except (OperationalError, psycopg.OperationalError, ExecutionError):
                    raise
                except Exception as exc:
                    code = exc.code if isinstance(exc, CopilotError) else "run.step_failed"
                    return self._fail(
                        run,
                        code,
                        f"step {step.name!r} raised {type(exc).__name__}: {exc}",
                        step=step.name,
                    )
                if not isinstance(produced, Again):
                    break
                if not step.rounds:
                    return self._fail(run, "run.bad_step_output",
                                      f"step {step.name!r} returned Again; annotate it -> Model | Again[Model]",
                                      step=step.name)  # fmt: skip
                try:
                    saved = self._checkpoint_round(run, ctx, produced.state)
                except (CopilotError, TypeError, ValueError) as exc:  # not transient: end it
                    code = exc.code if isinstance(exc, CopilotError) else "run.checkpoint_failed"
                    return self._fail(run, code, f"step {step.name!r} round {ctx.round} could "
                                      f"not be checkpointed: {exc}", step=step.name)  # fmt: skip
                degradation, decision = ctx.degradation, None
                if not saved or self.store.get(run.id).state != RunState.RUNNING:
                    return self.store.get(run.id)  # waiting on this round's approvals, or lost
                rounds = load_rounds(self.store.engine, run.id, idx)
            output, request = (
                (produced.output, produced.request)
                if isinstance(produced, Await)
                else (produced, None)
            )
            if request is not None and ctx._proposals:
                return self._fail(
                    run,
                    "run.bad_step_output",
                    f"step {step.name!r} both proposed actions and awaited; a step does one "
                    "or the other (proposals already wait for their decisions)",
                    step=step.name,
                )
            if not isinstance(output, step.output_type):
                return self._fail(
                    run,
                    "run.bad_step_output",
                    f"step {step.name!r} returned {type(output).__name__}, declared "
                    f"{step.output_type.__name__}",
                    step=step.name,
                )
            degradation = ctx.degradation
            finishing = idx == len(wf.steps) - 1 and not ctx._proposals
            try:
                saved = self._checkpoint(run, ctx, output, request, started, last=finishing)
                if saved and ctx._submitted and self.gate is not None:
                    self.gate.notify(ctx._submitted)  # after commit: reviewers hear of it
            except (CopilotError, TypeError, ValueError) as exc:
                # Not transient: an output or request with no canonical form, a bad proposal,
                # an effect that violates a constraint. Retrying would loop; end the run.
                code = exc.code if isinstance(exc, CopilotError) else "run.checkpoint_failed"
                return self._fail(
                    run,
                    code,
                    f"step {step.name!r} could not be checkpointed: {exc}",
                    step=step.name,
                )
            if not saved:
                return self.store.get(run.id)  # lost the lease: another worker owns the run now
            if request is not None or finishing:
                return self.store.get(run.id)
            if ctx._proposals and self.store.get(run.id).state == RunState.WAITING:
                return self.store.get(run.id)  # a person decides; the decision re-queues the run
            current, decision = output, None
            proposed = bool(ctx._proposals)
        # The last step proposed actions: carry out the approved ones, then finish.
        if proposed and self.gate is not None:
            execute_approved(self, run.id, len(wf.steps) - 1)
        return self._complete(run, current, degradation)

    def _complete(self, run: Run, output: BaseModel, degradation: Degradation) -> Run:
        with self.store.engine.begin() as conn:
            self._finish_in(conn, run, output.model_dump(mode="json"), degradation)
        return self.store.get(run.id)

    def _finish_in(
        self, conn: Connection, run: Run, doc: dict[str, Any], degradation: Degradation
    ) -> None:
        data = {"level": degradation.level.value, "reasons": list(degradation.reasons)}
        self._move(
            conn,
            run,
            RunState.COMPLETED,
            "run.completed",
            data,
            result=json.dumps(doc, sort_keys=True),
        )

    def _checkpoint(
        self,
        run: Run,
        ctx: StepContext,
        output: BaseModel,
        request: dict[str, Any] | None,
        started: float,
        *,
        last: bool,
    ) -> bool:
        """Persist a step's output, effects and audit event; False if the lease was lost.

        The last step's checkpoint completes the run in the same transaction. Checkpoints
        that neither pause nor finish the run commit without waiting for the WAL flush on
        PostgreSQL: a database crash that loses one loses its effects and audit event with
        it, and the step simply runs again (executors replay their receipts), while pauses,
        completions and failures, which others act on, always wait for the flush.
        """
        now = self.store.clock()
        doc = output.model_dump(mode="json")
        if (
            self._pg
            and request is None
            and not last
            and not (ctx._effects or ctx._proposals or ctx._withheld)
        ):
            return self._checkpoint_pg(run, ctx, doc, started, now)
        try:
            durable = request is not None or last or bool(ctx._proposals)
            engine = self.store.engine if durable else self.store.async_engine
            with engine.begin() as conn:
                if not self._advance_in(conn, run, ctx, ctx.idx + 1, now):
                    return False
                conn.execute(
                    _SAVE_STEP,
                    {
                        "run_id": run.id,
                        "idx": ctx.idx,
                        "name": ctx.step.name,
                        "status": "awaiting"
                        if request is not None
                        else "proposed"
                        if ctx._proposals
                        else "completed",
                        "output": json.dumps(doc, sort_keys=True),
                        "request": json.dumps(request, sort_keys=True)
                        if request is not None
                        else None,
                        "attempt": run.attempts,
                        "model": ctx.model_name,
                        "prompt_version": ctx.prompt_version,
                        "usage": json.dumps(ctx.usage) if ctx.usage else None,
                        "started_at": started,
                        "finished_at": now,
                    },
                )
                for effect in ctx._effects:
                    effect(conn)
                events = [self._step_event(run, ctx, doc)]
                if ctx._withheld:
                    events.append(_withheld_event(run, ctx))
                self.store.audit.append_in(conn, run.tenant, events)
                pending = self._submit_proposals(conn, run, ctx)
                if request is not None:
                    self._move(
                        conn,
                        run,
                        RunState.WAITING,
                        "run.waiting",
                        {"step": ctx.step.name, "request": request},
                    )
                elif pending:
                    self._move(
                        conn,
                        run,
                        RunState.WAITING,
                        "run.waiting",
                        {"step": ctx.step.name, "approvals": pending},
                    )
                elif last:
                    self._finish_in(conn, run, doc, ctx.degradation)
        except IntegrityError as exc:
            current = self.store.get(run.id)
            if current.lease_owner == self.owner and current.step_index == ctx.idx:
                raise CopilotError(
                    f"an effect violated a constraint: {exc.orig}", code="run.checkpoint_failed"
                ) from exc
            return False  # a zombie of ours: another worker checkpointed this step
        return True

    def _advance_in(
        self, conn: Connection, run: Run, ctx: StepContext, next_idx: int, now: float
    ) -> bool:
        """Move the run to step `next_idx` and renew the lease, if the lease is still ours
        (else roll back: another worker owns the run now)."""
        moved = conn.execute(
            _ADVANCE,
            {
                "rid": run.id,
                "owner": self.owner,
                "idx": ctx.idx,
                "next": next_idx,
                "now": now,
                "expires": now + self.lease_seconds,
                "level": ctx.degradation.level.value,
                "reasons": json.dumps(list(ctx.degradation.reasons)),
            },
        ).rowcount
        if moved != 1:
            conn.rollback()
        return moved == 1

    def _checkpoint_round(self, run: Run, ctx: StepContext, state: BaseModel) -> bool:
        """Commit one round of a multi-round step; False if the lease was lost meanwhile."""
        now = self.store.clock()
        doc = state.model_dump(mode="json")
        try:
            with self.store.engine.begin() as conn:
                if not self._advance_in(conn, run, ctx, ctx.idx, now):  # stays on this step
                    return False
                save_round(
                    conn, run.id, ctx.idx, ctx.round, doc, proposed=bool(ctx._proposals), at=now
                )
                for effect in ctx._effects:
                    effect(conn)
                event = self._step_event(run, ctx, doc)
                event = event.model_copy(update={
                    "event_type": "step.round", "data": {**event.data, "round": ctx.round}})  # fmt: skip
                events = [event] + ([_withheld_event(run, ctx)] if ctx._withheld else [])
                self.store.audit.append_in(conn, run.tenant, events)
                pending = self._submit_proposals(conn, run, ctx)
                if pending:
                    self._move(conn, run, RunState.WAITING, "run.waiting",
                               {"step": ctx.step.name, "round": ctx.round, "approvals": pending})  # fmt: skip
        except IntegrityError as exc:
            current = self.store.get(run.id)
            if current.lease_owner == self.owner and current.state == RunState.RUNNING:
                raise CopilotError(
                    f"an effect violated a constraint: {exc.orig}", code="run.checkpoint_failed"
                ) from exc
            return False  # another worker committed this round first
        if ctx._submitted and self.gate is not None:
            self.gate.notify(ctx._submitted)
        return True

    def _submit_proposals(self, conn: Connection, run: Run, ctx: StepContext) -> list[str]:
        """Submit the step's proposals in its checkpoint transaction; the pending ones' ids."""
        if not ctx._proposals or self.gate is None:
            return []
        pending = []
        for n, p in enumerate(ctx._proposals):
            explanation = ctx.explain(
                p.why or "Proposed by the workflow's rules.", confidence=p.confidence
            )
            req = self.gate.submit(
                tenant=run.tenant,
                workflow=run.workflow,
                kind=p.kind,
                payload=p.payload,
                confidence=p.confidence,
                level=ctx.degradation.level.value,
                triggered_by=run.triggered_by,
                run_id=run.id,
                subject_id=run.subject_id,
                action_id=f"{_prefix(run.id, ctx)}{n:03d}",
                explanation=explanation.model_dump(mode="json"),
                conn=conn,
            )
            ctx._submitted.append(req)
            if req.status == "pending":
                pending.append(req.id)
        return pending

    def _step_event(self, run: Run, ctx: StepContext, doc: dict[str, Any]) -> AuditEvent:
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

    def _checkpoint_pg(
        self, run: Run, ctx: StepContext, doc: dict[str, Any], started: float, now: float
    ) -> bool:
        """An intermediate checkpoint on PostgreSQL: one autocommit call (see copilot_checkpoint)."""
        sealed = seal(self._step_event(run, ctx, doc))
        try:
            with autocommit_driver(self.store.engine) as db:
                ok = db.execute(
                    _PG_CHECKPOINT,
                    (
                        run.id,
                        self.owner,
                        ctx.idx,
                        now,
                        now + self.lease_seconds,
                        ctx.degradation.level.value,
                        json.dumps(list(ctx.degradation.reasons)),
                        ctx.step.name,
                        json.dumps(doc, sort_keys=True),
                        run.attempts,
                        ctx.model_name,
                        ctx.prompt_version,
                        json.dumps(ctx.usage) if ctx.usage else None,
                        started,
                        run.tenant,
                        genesis(run.tenant),
                        sealed.commitment,
                        sealed.body,
                        sealed.recorded_at,
                        sealed.event.actor.kind.value,
                        sealed.event.actor.id,
                        run.subject_id,
                    ),
                    prepare=True,
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            return False  # a zombie of ours already checkpointed this step
        return bool(ok and ok[0])

    def _fail(self, run: Run, code: str, message: str, **details: Any) -> Run:
        error = {"code": code, "message": message, **details}
        with self.store.engine.begin() as conn:
            self._move(
                conn,
                run,
                RunState.FAILED,
                "run.failed",
                {"error": error},
                error=json.dumps(error, sort_keys=True),
            )
        return self.store.get(run.id)

    def requeue(self, run_id: str, reason: str) -> None:
        """Hand a run back after a transient fault (running → queued), for a retry."""
        run = self.store.get(run_id)
        with self.store.engine.begin() as conn:
            self._move(conn, run, RunState.QUEUED, "run.requeued", {"reason": reason})

    def run_inline(self, run_id: str, *, max_advances: int = 100) -> Run:
        """Advance in this process until the run waits or finishes (tests, `--wait` without a worker)."""
        for _ in range(max_advances):
            run = self.advance(run_id) or self.store.get(run_id)
            if run.terminal or run.state == RunState.WAITING:
                return run
            time.sleep(0.01)
        return self.store.get(run_id)


def _prefix(run_id: str, ctx: StepContext) -> str:
    """Action ids of a step's proposals: per round for a multi-round step."""
    return f"{run_id}:{ctx.idx}:r{ctx.round}:" if ctx.step.rounds else f"{run_id}:{ctx.idx}:"


def _withheld_event(run: Run, ctx: StepContext) -> AuditEvent:
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
                for p in ctx._withheld
            ],
        },
    )


def _pinned(assessed: Degradation, run: Run) -> Degradation:
    """The ladder as the run's first advance set it: later advances see the same level."""
    return assessed.model_copy(
        update={"level": Level(run.level or "full"), "reasons": tuple(run.reasons)}
    )
