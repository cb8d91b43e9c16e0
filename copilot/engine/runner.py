"""The durable runner: advance a run under a lease, checkpoint every step, pause as a value.

One call to `Runner.advance(run_id)` takes the run's lease, executes every due step,
persists each output (with the step's effects and audit event, in one transaction that
also re-checks the lease), and then finishes the run, parks it in `waiting`, or fails
it. A completed step is never executed again: on resume, redelivery or recovery after a
crash, execution continues after the last checkpoint. A step interrupted before its
checkpoint committed runs again, so its outside effects go through `ctx.execute`
(idempotent executors) or `ctx.on_commit` (the checkpoint transaction).

The parts: `lease` (taking and holding a run), `step` (the context a step sees),
`checkpoint` (committing a step or round), `gating` (the approval gate inside runs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from approvals import Gate
from audit import Actor
from audit.dberrors import transient
from copilot.delivery import DeliveryStore
from copilot.engine.checkpoint import Batch, Checkpointer, FlushFailed, LeaseLost
from copilot.engine.executor import ExecutionError, Executor
from copilot.engine.faults import Faults, StepTimeout, step_deadline
from copilot.engine.gating import ActionGate, action_id
from copilot.engine.lease import Lease, Taken
from copilot.engine.rounds import load as load_rounds
from copilot.engine.runs import Run, RunState
from copilot.engine.step import EngineContext, Services
from copilot.engine.store import RunStore
from copilot.errors import CopilotError, TransientError
from copilot.governance.consent import Consent
from copilot.governance.sources import ContextSource
from copilot.llm import ModelAccess
from copilot.measure.holdouts import fraction_for, held_out
from copilot.workflow.definition import Again, Await, Step, Workflow
from copilot.workflow.degradation import Degradation
from copilot.workflow.registry import Registry

log = logging.getLogger(__name__)

Enqueue = Callable[[str, float], None]


def _transient(exc: BaseException) -> bool:
    """A fault of the database (audit.dberrors decides) or of an executor's endpoint: the
    run is handed back and retried."""
    return isinstance(exc, ExecutionError) or transient(exc)


class Runner:
    """Advances runs. One per process; cheap to build from settings at the edge.

    `executors` maps executor names to executors; `action_executors` routes action kinds
    to executor names (unrouted kinds go to the outbox); with `deliveries`, each approved
    action's delivery is tracked (copilot.delivery).
    """

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
        deliveries: DeliveryStore | None = None,
        step_timeout: float = 0.0,
        max_timeouts: int = 2,
    ) -> None:
        self.store = store
        self.registry = registry
        self.context = context
        self.model = model
        self.executors = dict(executors)
        self.enqueue = enqueue
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.gate = gate
        self.action_executors = dict(action_executors or {})
        self.max_attempts = max_attempts
        self.consent = consent
        self.holdouts = dict(holdouts or {})
        self.holdout_salt = holdout_salt
        self.lease = Lease(store, self.owner, lease_seconds)
        # Shares the runner's executor and route mappings: one place to add an executor.
        self.actions = (
            ActionGate(gate, consent, self.executors, self.action_executors, deliveries)
            if gate
            else None
        )
        self.checkpoints = Checkpointer(self.lease, self.actions)
        self.step_timeout = step_timeout  # seconds; a workflow's own step_timeout wins
        self.faults = Faults(self.lease, max_timeouts=max_timeouts)

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
        principal: str | None = None,
    ) -> tuple[Run, bool]:
        """Create a queued run (the same idempotency key returns the same run) and enqueue it.

        `cause` (a schedule or event trigger: its name, period or window) goes into the
        `run.created` audit event, whose actor is then the system rather than a person.
        `principal` is whose request caused the run (`key:<id>`, `schedule:<name>`): the
        gate refuses its decisions on the run's actions.
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
        # The arm is the subject's whether or not the run is skipped: no bias in the lift.
        holdout = held_out(subject_id, wf.name, fraction, salt=self.holdout_salt)
        fields: dict[str, Any] = dict(
            tenant=tenant, workflow=wf.name, version=wf.version, subject_id=subject_id,
            inputs=data, idempotency_key=idempotency_key, triggered_by=triggered_by,
            holdout=holdout, actor=actor, principal=principal,
        )  # fmt: skip
        # One round trip on PostgreSQL, unless the subject has stored preferences to read.
        fast = self.store.create_queued(**fields, data=why, consult=self.consent is not None)
        if fast is not None:
            if fast[1] and self.enqueue is not None:
                self.enqueue(fast[0].id, 0.0)
            return fast
        refusal = self.consent.refusal(tenant, subject_id, wf.name) if self.consent else None
        if refusal is not None:  # opted out or snoozed: a skipped run, with the reason, audited
            return self.store.create(
                **fields, state=RunState.SKIPPED, reasons=[refusal],
                data={"reason": refusal, **why},
            )  # fmt: skip
        run, created = self.store.create(**fields, data=why)
        if created and self.enqueue is not None:
            self.enqueue(run.id, 0.0)
        return run, created

    # -- advancing --------------------------------------------------------------------------

    def advance(self, run_id: str) -> Run | None:
        """Execute every due step of the run under its lease; None when it was not ours to run."""
        try:
            taken = self.lease.take(
                run_id, self.registry, self.context, max_attempts=self.max_attempts
            )
            if taken is None:
                return None
            if taken.ended:
                return self.store.get(taken.run.id)
            return self._steps(taken)
        except Exception as exc:
            if not _transient(exc):
                raise
            # The database or an executor's endpoint is away: hand the run back and retry.
            # (An executor failure leaves no receipt, so the retry acts with the same key.)
            raise TransientError(str(exc)) from exc

    def requeue(self, run_id: str, reason: str) -> None:
        """Hand a run back after a transient fault (running → queued), for a retry."""
        self.lease.requeue(run_id, reason)

    def run_inline(self, run_id: str, *, max_advances: int = 100) -> Run:
        """Advance in this process until the run waits or finishes (tests, `--wait` without a worker)."""
        for _ in range(max_advances):
            run = self.advance(run_id) or self.store.get(run_id)
            if run.terminal or run.state == RunState.WAITING:
                return run
            time.sleep(0.01)
        return self.store.get(run_id)

    def _services(self) -> Services:
        # Read at each advance: a runner's model may be swapped (tests, a reconfigured process).
        return Services(self.model, self.registry.signals, self.executors, self.actions,
                        self.consent)  # fmt: skip

    def _steps(self, taken: Taken) -> Run:
        run, wf, degradation = taken.run, taken.workflow, taken.degradation
        assert wf is not None and degradation is not None  # `taken.ended` was handled
        if run.unreadable is not None:  # stored input that is not JSON: poison
            return self.faults.bad_input(run, "inputs", run.unreadable)
        try:
            current: BaseModel = wf.input.model_validate(run.inputs)
        except ValidationError as exc:  # stored before the input model changed: poison
            return self.faults.bad_input(run, "inputs", _problem(exc))
        decision: dict[str, Any] | None = None
        if taken.previous:
            done = taken.previous[-1]
            try:
                current = wf.steps[done.idx].output_type.model_validate(done.output)
            except ValidationError as exc:
                return self.faults.bad_input(run, f"output of step {done.name!r}", _problem(exc))
            decision = done.decision
        # Only a step that proposed actions has outcomes to carry out and report.
        proposed = bool(taken.previous) and taken.previous[-1].status == "proposed"
        services = self._services()
        batch = (
            Batch(time.monotonic())
            if wf.durability == "batched" and (self.lease.pg or self.lease.sqlite)
            else None
        )
        for idx in range(run.step_index, len(wf.steps)):
            if proposed and self.actions is not None:
                outcomes = self.actions.execute_approved(run.id, action_id(run.id, idx - 1))
                decision = {**(decision or {}), "approvals": outcomes}
            try:
                ran = self._execute(run, wf, idx, services, degradation, taken, decision, current,
                                    batch)  # fmt: skip
            except Exception:
                # A transient fault: the attempt is retried. Keep what ran before it, if the
                # database still answers (else those steps run again, as `Batch` says).
                with contextlib.suppress(Exception):
                    self._flush(run, batch)
                raise
            if isinstance(ran, Run):
                return ran
            ctx, produced, started = ran
            ended = self._checkpoint(run, wf, ctx, produced, started, batch)
            if ended is not None:
                return ended
            current = produced.output if isinstance(produced, Await) else produced
            degradation, decision, proposed = ctx.degradation, None, bool(ctx.proposals)
        # The last step proposed actions: carry out the approved ones, then finish.
        if proposed and self.actions is not None:
            self.actions.execute_approved(run.id, action_id(run.id, len(wf.steps) - 1))
        return self.checkpoints.complete(run, current, degradation)

    def _execute(
        self,
        run: Run,
        wf: Workflow,
        idx: int,
        services: Services,
        degradation: Degradation,
        taken: Taken,
        decision: dict[str, Any] | None,
        current: BaseModel,
        batch: Batch | None,
    ) -> Run | tuple[EngineContext, Any, float]:
        """Run step `idx` (every round of a multi-round one) up to its result, or end the run.

        A Run when the step ended the advance (failed, waiting on a round's approvals, lease
        lost); else the last round's context, what the step returned and when it started.
        The steps `batch` holds are committed before anything else is: a round's checkpoint
        or the run's failure.
        """
        step = wf.steps[idx]
        if step.rounds and (lost := self._flush(run, batch)) is not None:
            return lost
        rounds = load_rounds(self.store.engine, run.id, idx) if step.rounds else []
        while True:
            if rounds and rounds[-1].proposed and self.actions is not None:
                prefix = action_id(run.id, idx, round=rounds[-1].round)
                decision = {"approvals": self.actions.execute_approved(run.id, prefix)}
            outside = None if batch is None else (lambda: self._flush_before_outside(run, batch))
            ctx = EngineContext(services, run, wf, step, idx, degradation, taken.values,
                                decision, rounds, outside=outside)  # fmt: skip
            started = self.store.clock()
            limit = wf.step_timeout or self.step_timeout
            try:
                with step_deadline(limit):
                    produced = step.fn(ctx, current)
            except LeaseLost:
                return self.store.get(run.id)  # another worker owns the run now
            except FlushFailed as failed:
                raise failed.error from None  # as if the step's checkpoint had raised it
            except StepTimeout:
                if (lost := self._flush(run, batch)) is not None:
                    return lost
                ended, backoff = self.faults.timed_out(run, step.name, limit)
                if backoff is not None and self.enqueue is not None:
                    self.enqueue(run.id, backoff)
                return ended
            except Exception as exc:
                if _transient(exc):
                    raise
                code = exc.code if isinstance(exc, CopilotError) else "run.step_failed"
                if (lost := self._flush(run, batch)) is not None:
                    return lost
                return self.lease.fail(run, code, f"step {step.name!r} raised "
                                       f"{type(exc).__name__}: {exc}", step=step.name)  # fmt: skip
            if not isinstance(produced, Again):
                return ctx, produced, started
            if not step.rounds:
                if (lost := self._flush(run, batch)) is not None:
                    return lost
                return self.lease.fail(run, "run.bad_step_output",
                                       f"step {step.name!r} returned Again; annotate it -> Model | Again[Model]",
                                       step=step.name)  # fmt: skip
            try:
                saved = self.checkpoints.round(run, ctx, produced.state)
            except (CopilotError, TypeError, ValueError) as exc:  # not transient: end it
                code = exc.code if isinstance(exc, CopilotError) else "run.checkpoint_failed"
                return self.lease.fail(run, code, f"step {step.name!r} round {ctx.round} could "
                                       f"not be checkpointed: {exc}", step=step.name)  # fmt: skip
            degradation, decision = ctx.degradation, None
            if not saved or self.store.get(run.id).state != RunState.RUNNING:
                if saved and ctx.proposals:  # waiting: what the policy approved acts now
                    self._act_early(run, action_id(run.id, idx, round=ctx.id_round))
                return self.store.get(run.id)  # waiting on this round's approvals, or lost
            rounds = load_rounds(self.store.engine, run.id, idx)

    def _checkpoint(
        self,
        run: Run,
        wf: Workflow,
        ctx: EngineContext,
        produced: Any,
        started: float,
        batch: Batch | None,
    ) -> Run | None:
        """Check and commit what step `ctx.idx` returned; the Run when that ends the advance."""
        step = ctx.step
        output, request = (
            (produced.output, produced.request) if isinstance(produced, Await) else (produced, None)
        )
        problem = _bad_output(step, output, request, ctx)
        if problem is not None:
            if (lost := self._flush(run, batch)) is not None:
                return lost
            return self.lease.fail(run, "run.bad_step_output", problem, step=step.name)
        finishing = ctx.idx == len(wf.steps) - 1 and not ctx.proposals
        try:
            saved = self.checkpoints.step(run, ctx, output, request, started, last=finishing,
                                          batch=batch)  # fmt: skip
            if saved:
                self.checkpoints.notify(ctx)
        except (CopilotError, TypeError, ValueError) as exc:
            # Not transient: an output or request with no canonical form, a bad proposal,
            # an effect that violates a constraint. Retrying would loop; end the run.
            code = exc.code if isinstance(exc, CopilotError) else "run.checkpoint_failed"
            if (lost := self._flush(run, batch)) is not None:
                return lost
            return self.lease.fail(run, code, f"step {step.name!r} could not be checkpointed: "
                                   f"{exc}", step=step.name)  # fmt: skip
        if saved is False:
            return self.store.get(run.id)  # lost the lease: another worker owns the run now
        if isinstance(saved, Run):
            return saved  # it paused or finished, and the checkpoint returned the run
        if request is not None or finishing:
            return self.store.get(run.id)
        if ctx.proposals and self.store.get(run.id).state == RunState.WAITING:
            # A person decides the rest; the decision re-queues the run. What the policy
            # approved already acts now, not after the slowest reviewer.
            self._act_early(run, action_id(run.id, ctx.idx, round=ctx.id_round))
            return self.store.get(run.id)
        return None

    def _flush(self, run: Run, batch: Batch | None) -> Run | None:
        """Commit the steps `batch` holds before the run moves otherwise; the run as it
        stands if the lease was lost meanwhile (nothing written), else None."""
        if batch is None or not batch.steps or self.checkpoints.flush(run, batch):
            return None
        return self.store.get(run.id)  # another worker owns the run now

    def _flush_before_outside(self, run: Run, batch: Batch) -> None:
        """Commit what `batch` holds before a step acts or calls the model: LeaseLost into
        the step if that commit finds the lease gone, FlushFailed if it raised (both
        BaseExceptions, so a step's own `except Exception` cannot swallow them and act)."""
        try:
            kept = self.checkpoints.flush(run, batch)
        except Exception as exc:
            raise FlushFailed(exc) from exc
        if not kept:
            raise LeaseLost(run.id)

    def _act_early(self, run: Run, prefix: str) -> None:
        """Carry out the approved actions under `prefix` while the run waits on the others.

        Each acts once (its key is the approval id): the resumed run's own pass reports
        them as executed. A failed attempt is left to that pass, which retries it.
        """
        if self.actions is None:
            return
        try:
            self.actions.execute_approved(run.id, prefix)
        except ExecutionError as exc:
            log.info("run %s: an approved action will be retried on resume: %s", run.id, exc)


def _problem(exc: ValidationError) -> str:
    """A validation error in one line, without pydantic's documentation links."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


def _bad_output(
    step: Step, output: Any, request: dict[str, Any] | None, ctx: EngineContext
) -> str | None:
    """Why a step's result cannot be checkpointed as it is, or None."""
    if request is not None and ctx.proposals:
        return (
            f"step {step.name!r} both proposed actions and awaited; a step does one "
            "or the other (proposals already wait for their decisions)"
        )
    if not isinstance(output, step.output_type):
        return (
            f"step {step.name!r} returned {type(output).__name__}, declared "
            f"{step.output_type.__name__}"
        )
    return None
