"""The engine's side of `StepContext`: what one execution of a step sees, and what it collects.

A step reads its run, signals and model through the context and acts only by collecting:
effects for the checkpoint transaction, proposals for the gate, the model calls it made.
`copilot.engine.checkpoint` then commits all of it at once, so nothing the step did is
visible before its checkpoint (and a step that runs again after a crash starts afresh).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection

from approvals import ApprovalRequest
from copilot.engine.executor import DEFAULT_EXECUTOR, Action, Executor, Receipt
from copilot.engine.gating import ActionGate, Proposal, action_id
from copilot.engine.rounds import Round
from copilot.engine.runs import Run
from copilot.errors import CopilotError
from copilot.governance.consent import Consent
from copilot.governance.minimize import LEFTOVER, Pseudonymizer, model_payload
from copilot.governance.signals import SignalRegistry
from copilot.governance.sources import SignalValue
from copilot.llm import ModelAccess, ModelCall
from copilot.workflow.context import ActionOutcome, RunInfo, StepContext
from copilot.workflow.definition import Step, Workflow
from copilot.workflow.degradation import FALLBACK_REASONS, Degradation, Explanation, Level

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class Services:
    """What the engine lends a step: the model, the declared signals, executors, gate, consent."""

    model: ModelAccess
    signals: SignalRegistry
    executors: Mapping[str, Executor]
    actions: ActionGate | None = None
    consent: Consent | None = None


def run_info(run: Run) -> RunInfo:
    """The run as its steps may see it."""
    return RunInfo(
        id=run.id, tenant=run.tenant, workflow=run.workflow, version=run.version,
        subject_id=run.subject_id, inputs=run.inputs, triggered_by=run.triggered_by,
        created_at=run.created_at, attempts=run.attempts, holdout=run.holdout,
    )  # fmt: skip


class EngineContext:
    """The `StepContext` the engine hands a step, collecting what its checkpoint commits."""

    def __init__(
        self,
        services: Services,
        run: Run,
        workflow: Workflow,
        step: Step,
        idx: int,
        degradation: Degradation,
        values: Mapping[str, SignalValue],
        decision: dict[str, Any] | None,
        rounds: Sequence[Round] = (),
        outside: Callable[[], None] | None = None,
    ) -> None:
        self._services = services
        # Called before the step reaches outside the database (an action, the model): a
        # batched workflow commits the steps it holds first (copilot.engine.checkpoint.Batch).
        self._outside = outside
        self.reached_out = False
        self._run = run_info(run)
        self._workflow, self._step, self._idx = workflow, step, idx
        # A multi-round step's stored state from its last committed round, and this round's number.
        self._progress: dict[str, Any] | None = rounds[-1].state if rounds else None
        self._round = len(rounds)
        self._decision = decision
        self._signals = dict(values)
        self._reads = frozenset(n.name for n in workflow.signals)
        self.degradation = degradation
        self.model_name: str | None = None
        self.prompt_version: str | None = None
        self._usage: dict[str, int] = {}
        self._actions = 0
        # What the checkpoint commits. Private, with read-only views below: a step adds to
        # them only through `propose` and `on_commit`, which check what they take (appending
        # to a public list would skip the declared-kind, schema, level and holdout checks).
        self._effects: list[Callable[[Connection], None]] = []
        self._proposals: list[Proposal] = []
        self._withheld: list[Proposal] = []
        self._submitted: list[ApprovalRequest] = []

    # -- what the step reads ----------------------------------------------------------------

    @property
    def run(self) -> RunInfo:
        """The run this step belongs to."""
        return self._run

    @property
    def workflow(self) -> Workflow:
        """The workflow (at the run's pinned version)."""
        return self._workflow

    @property
    def step(self) -> Step:
        """The step being executed."""
        return self._step

    @property
    def idx(self) -> int:
        """The step's position in the workflow, from 0."""
        return self._idx

    @property
    def round(self) -> int:
        """This round's number in a multi-round step (0 for the first, and for plain steps)."""
        return self._round

    @property
    def progress(self) -> dict[str, Any] | None:
        """A multi-round step's state as its last committed round stored it."""
        return self._progress

    @property
    def decision(self) -> dict[str, Any] | None:
        """The outside decision this step resumes on, and `["approvals"]`: proposals' outcomes."""
        return self._decision

    @property
    def signals(self) -> Mapping[str, SignalValue]:
        """The values the context holds for the signals the workflow declares."""
        return self._signals

    @property
    def model(self) -> ModelAccess:
        """The configured model."""
        self._reach_out()
        return self._services.model

    def _reach_out(self) -> None:
        """The step is about to act or send data outside the database: mark it (it is no
        longer one a batch may hold) and let the engine commit what it holds first."""
        self.reached_out = True
        if self._outside is not None:
            self._outside()

    @property
    def usage(self) -> dict[str, int]:
        """Token usage recorded on this step so far."""
        return self._usage

    @property
    def level(self) -> Level:
        """The run's degradation level, as it stands now."""
        return self.degradation.level

    @property
    def id_round(self) -> int | None:
        """The round this execution's action ids name (None for a plain step: ids name no round)."""
        return self._round if self._step.rounds else None

    def value(self, name: str, default: Any = None) -> Any:
        """A signal's value, or `default` when the context does not hold it.

        `name` must be a signal the workflow reads (`signals=[SignalNeed(...)]`): a typo
        would otherwise read the default forever (`run.undeclared_signal`).
        """
        if name not in self._reads:
            declared = ", ".join(sorted(self._reads)) or "none"
            raise CopilotError(
                f"{self._workflow.name} read signal {name!r}, which it does not declare "
                f"(declared: {declared}); add SignalNeed({name!r}) to Workflow(signals=[...]) "
                "or fix the name",
                code="run.undeclared_signal",
                signal=name,
            )
        found = self._signals.get(name)
        return found.value if found is not None else default

    def values(self) -> dict[str, Any]:
        """Every signal the workflow reads, by name (None where the context holds none)."""
        return {n.name: self.value(n.name) for n in self._workflow.signals}

    def consent_refusal(self) -> str | None:
        """Why the subject's preferences now refuse this workflow (opted out, snoozed), or None."""
        consent = self._services.consent
        if consent is None:
            return None
        return consent.refusal(self._run.tenant, self._run.subject_id, self._workflow.name)

    def round_outcomes(self) -> list[ActionOutcome]:
        """Where every action this step has proposed so far stands, over all its rounds."""
        actions = self._services.actions
        if actions is None:
            return []
        return actions.outcomes(self._run.id, action_id(self._run.id, self._idx))

    # -- the model ---------------------------------------------------------------------------

    def degrade(self, level: Level, reason: str) -> None:
        """Lower the run's level (never raise it) and record why."""
        self.degradation = self.degradation.worse(level, reason)

    def used(self, call: ModelCall[Any]) -> None:
        """Record a model call on this step; a fault degrades the run to `partial` with its reason."""
        self.reached_out = True  # a call made with the step's own client went out too
        self.model_name = call.model
        self.prompt_version = call.prompt_version
        for k, v in call.usage.items():
            self._usage[k] = self._usage.get(k, 0) + v
        if call.fault is not None:
            self.degrade(Level.PARTIAL, call.fault)

    def minimized(
        self, signals: Sequence[str], facts: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], Pseudonymizer]:
        """The named signals and facts as a model may see them, and the pseudonymizer to restore."""
        return model_payload(
            self._services.signals,
            self._workflow.name,
            [n.name for n in self._workflow.signals],
            self._signals,
            signals,
            facts or {},
        )

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
        data, pseudo = self.minimized(signals, facts)
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

    # -- acting ------------------------------------------------------------------------------

    def propose(
        self, kind: str, payload: dict[str, Any], *, confidence: float, why: str | None = None
    ) -> str | None:
        """Propose an action for the gate; validated now, submitted with this step's checkpoint.

        The kind must be one the workflow declares (`actions=`) and in the catalog, and the
        payload must fit its schema (else the error is raised here, in the step). At `thin`
        (or `none`) level a customer-facing kind is not proposed: None is returned and the
        run's reasons gain `restricted:<kind>`. Returns the action id, or None for that or
        for a held-out subject (logged for measurement, never submitted). The next step sees
        every outcome in `ctx.decision["approvals"]`.
        """
        actions = self._services.actions
        if actions is None:
            raise CopilotError("this runtime has no approval gate configured", code="run.no_gate")
        if kind not in self._workflow.actions:
            declared = ", ".join(self._workflow.actions) or "none"
            raise CopilotError(
                f"{self._workflow.name} proposed {kind!r}, which it does not declare (declared: "
                f"{declared}); add it to Workflow(actions=[...])",
                code="run.action_undeclared",
                kind=kind,
            )
        action = actions.gate.catalog.get(kind)
        model = action.validate(payload)
        if action.reaches_customer and self.level in (Level.THIN, Level.NONE):
            # The ladder's rule, not the author's fault: the run goes on without it, and the
            # reason code tells reviewers and the app why nothing reached the customer.
            self.degrade(self.level, f"restricted:{kind}")
            return None
        proposal = Proposal(
            kind=kind,
            payload=model.model_dump(mode="json"),
            confidence=self.degradation.cap(confidence),
            why=why,
        )
        if self._run.holdout:  # a held-out subject gets nothing; it is logged for measurement
            self._withheld.append(proposal)
            return None
        self._proposals.append(proposal)
        return action_id(self._run.id, self._idx, round=self.id_round, n=len(self._proposals) - 1)

    def on_commit(self, effect: Callable[[Connection], None]) -> None:
        """Run `effect(conn)` inside this step's checkpoint transaction (exactly once)."""
        self._effects.append(effect)

    # -- what the checkpoint reads (engine-side) ------------------------------------------

    @property
    def effects(self) -> tuple[Callable[[Connection], None], ...]:
        """The effects to run in the checkpoint transaction, in order."""
        return tuple(self._effects)

    @property
    def proposals(self) -> tuple[Proposal, ...]:
        """The checked proposals to submit with the checkpoint."""
        return tuple(self._proposals)

    @property
    def withheld(self) -> tuple[Proposal, ...]:
        """A held-out subject's proposals, logged and never submitted."""
        return tuple(self._withheld)

    @property
    def submitted(self) -> tuple[ApprovalRequest, ...]:
        """The requests the checkpoint submitted (to notify reviewers after commit)."""
        return tuple(self._submitted)

    def mark_submitted(self, requests: Sequence[ApprovalRequest]) -> None:
        """Record what the gate made of this step's proposals."""
        self._submitted.extend(requests)

    def execute(
        self, kind: str, payload: dict[str, Any], *, executor: str | None = None
    ) -> Receipt:
        """Carry out an action through an executor, once: its key is derived from run and step.

        The executor is the kind's route (`COPILOT_ACTION_EXECUTORS`, else outbox) unless named.
        """
        self._reach_out()
        self._actions += 1
        key = f"{self._run.id}:{self._step.name}:{self._actions}"
        executors = self._services.executors
        if executor is None:
            routes = self._services.actions.routes if self._services.actions else {}
            executor = routes.get(kind, DEFAULT_EXECUTOR)
        try:
            chosen = executors[executor]
        except KeyError:
            known = ", ".join(sorted(executors))
            raise CopilotError(
                f"no executor {executor!r} (configured: {known})", code="action.unknown_executor"
            ) from None
        return chosen.execute(
            Action(
                tenant=self._run.tenant,
                run_id=self._run.id,
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
            opt_out=f"opt out of {self._workflow.name} for {self._run.subject_id}: "
            f"PUT /v1/subjects/{self._run.subject_id}/preferences",
        )


# mypy proves here that the engine implements the author's contract in full.
_IMPLEMENTS: type[StepContext] = EngineContext
