"""What a workflow author needs to unit-test a workflow, on a throwaway SQLite database.

    >>> from copilot.testing import WorkflowHarness
    >>> with WorkflowHarness("workflows.next_actions") as h:  # doctest: +SKIP
    ...     h.context.put("acct-1", usage_trend=-30.0, days_since_login=21)
    ...     run = h.run("next_actions", "acct-1")        # advanced inline, in this process
    ...     for req in h.pending(run):
    ...         h.approve(req)                           # resumes the run inline
    ...     assert [a.kind for a in h.executor.actions]  # what would have been carried out

Signals come from a `StaticContext` (a dict, no ingestion), actions go to a
`RecordingExecutor` (nothing leaves the process), and the rest is the product itself:
the real runner, gate, policy and audit trail on SQLite. Holdouts are off unless asked for.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Literal

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from approvals import ApprovalRequest, Gate, Policy
from audit import Query
from copilot.db.engines import upgrade
from copilot.engine.executor import Action, Receipt
from copilot.engine.runs import Run
from copilot.governance.sources import SignalValue
from copilot.runtime import Runtime
from copilot.settings import Settings
from copilot.workflow.definition import Workflow
from copilot.workflow.registry import Registry

__all__ = ["RecordingExecutor", "StaticContext", "WorkflowHarness"]


class StaticContext:
    """A `ContextSource` over fixed values: `{subject_id: {signal: value}}`."""

    def __init__(
        self,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        observed_at: float | None = None,
        source: str = "test",
    ) -> None:
        self.values = {subject: dict(signals) for subject, signals in (values or {}).items()}
        # One instant for every value unless told: fresh, so no signal is stale by accident.
        self.observed_at = observed_at
        self.source = source

    def put(self, subject_id: str, **values: Any) -> None:
        """Set (or replace) signal values of a subject."""
        self.values.setdefault(subject_id, {}).update(values)

    def fetch(self, tenant: str, subject_id: str, names: Sequence[str]) -> dict[str, SignalValue]:
        """The subject's values among `names` (any tenant: a test has one)."""
        held = self.values.get(subject_id, {})
        at = time.time() if self.observed_at is None else self.observed_at
        return {
            name: SignalValue(name=name, value=held[name], observed_at=at, source=self.source)
            for name in names
            if name in held
        }


class RecordingExecutor:
    """An `Executor` that records each action it is asked to carry out and returns a receipt."""

    name = "recording"

    def __init__(self) -> None:
        self.actions: list[Action] = []
        self._receipts: dict[str, Receipt] = {}

    def execute(self, action: Action) -> Receipt:
        """Record the action once per idempotency key; a repeat replays the first receipt."""
        first = self._receipts.get(action.idempotency_key)
        if first is not None:
            return first.model_copy(update={"replayed": True})
        self.actions.append(action)
        receipt = Receipt(
            idempotency_key=action.idempotency_key,
            executor=self.name,
            status="done",
            detail={"recorded": len(self.actions)},
        )
        self._receipts[action.idempotency_key] = receipt
        return receipt

    def kinds(self) -> list[str]:
        """The kinds of the recorded actions, in order."""
        return [a.kind for a in self.actions]


class WorkflowHarness:
    """Workflows (objects, modules or dotted names) on a throwaway database, run inline."""

    def __init__(
        self,
        *workflows: Workflow | ModuleType | str,
        context: StaticContext | None = None,
        executor: RecordingExecutor | None = None,
        policy: Policy | None = None,
        home: Path | None = None,
        tenant: str = "test",
        holdouts: Mapping[str, float] | None = None,
    ) -> None:
        registry = _registry(workflows)  # first: a refused workflow leaves nothing behind
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if home is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="copilot-")
            home = Path(self._tmp.name)
        self.context = context or StaticContext()
        self.executor = executor or RecordingExecutor()
        self.tenant = tenant
        off = {wf.name: 0.0 for wf in registry}  # a unit test wants every run treated
        holdout_text = ",".join(f"{k}={v}" for k, v in {**off, **(holdouts or {})}.items())
        self.runtime = Runtime(
            _Isolated(home=home, checkpoint_every=0, holdouts=holdout_text),
            enqueue=lambda run_id, countdown: None,  # runs advance inline, never on a worker
            registry=registry,
        )
        # The runtime's parts are cached properties: one set before first use replaces the
        # default, so the runner, gate and `on_settled` wiring stay the product's own.
        if policy is not None:
            self.runtime.policy = policy
        self.runtime.executors = {"outbox": self.executor, "webhook": self.executor}
        upgrade(self.runtime.engine)
        self.runner = self.runtime.runner
        self.runner.context = self.context

    @property
    def gate(self) -> Gate:
        """The approval gate (the product's, on this database)."""
        return self.runtime.gate

    def run(self, workflow: str, subject_id: str, **inputs: Any) -> Run:
        """Trigger a run and advance it inline until it waits or finishes."""
        run, _ = self.runner.trigger(
            workflow, subject_id, tenant=self.tenant, inputs=inputs, triggered_by="test"
        )
        return self.runner.run_inline(run.id)

    def pending(self, run: Run) -> list[ApprovalRequest]:
        """The run's requests waiting for a person."""
        return [r for r in self.runtime.gate.of_run(run.id) if r.status == "pending"]

    def approve(self, req: ApprovalRequest, *, reviewer: str = "test:reviewer") -> Run:
        """Approve the version shown, then advance its run inline."""
        return self._decide(req, "approve", reviewer, None)

    def reject(self, req: ApprovalRequest, reason: str, *, reviewer: str = "test:reviewer") -> Run:
        """Reject with a reason, then advance its run inline."""
        return self._decide(req, "reject", reviewer, reason)

    def _decide(
        self,
        req: ApprovalRequest,
        decision: Literal["approve", "reject"],
        reviewer: str,
        reason: str | None,
    ) -> Run:
        self.runtime.gate.decide(req.id, reviewer=reviewer, roles={req.role}, decision=decision,
                                 payload_hash=req.payload_hash, reason=reason)  # fmt: skip
        assert req.run_id is not None, "a request proposed by a run names it"
        return self.runner.run_inline(req.run_id)

    def events(self, run: Run) -> list[str]:
        """The run's audit event types, in order."""
        audit = self.runtime.audit
        audit.settle(self.tenant)
        return [e.event_type for e in audit.query(self.tenant, Query(run_id=run.id, limit=1000))]

    def close(self) -> None:
        """Release the database and remove the temporary home (if the harness made it)."""
        self.runtime.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> WorkflowHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Isolated(Settings):
    """Settings from the harness's arguments alone: a unit test never reads the deployment's
    COPILOT_* environment (its database, model, policy, notifier or routes)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _registry(workflows: Sequence[Workflow | ModuleType | str]) -> Registry:
    """A registry of these workflows and what their modules declare, checked as at start-up."""
    registry = Registry()
    for item in workflows:
        if isinstance(item, Workflow):
            registry.register(item)
        else:
            registry.register_module(item)
    registry.check()
    return registry
