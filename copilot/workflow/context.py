"""What a step sees of its run, and the ways it may act: the author's contract with the engine.

`StepContext` is a Protocol: the author API declares what it needs and the engine
(`copilot.engine.step`) implements it, so nothing here imports the engine (Temporal's
author API declares the `_Runtime` its worker implements in the same way). A step is
written against this contract only:

>>> from pydantic import BaseModel
>>> from copilot import StepContext, Workflow
>>> class Ask(BaseModel):
...     subject_id: str
>>> class Answer(BaseModel):
...     text: str
>>> hello = Workflow("hello", "1", input=Ask)
>>> @hello.step
... def greet(ctx: StepContext, inp: Ask) -> Answer:
...     return Answer(text=f"hello {inp.subject_id} of {ctx.run.tenant}")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from copilot.governance.minimize import Pseudonymizer
from copilot.governance.sources import SignalValue
from copilot.llm import ModelAccess, ModelCall
from copilot.workflow.definition import Step, Workflow
from copilot.workflow.degradation import Degradation, Explanation, Level

T = TypeVar("T", bound=BaseModel)


class RunInfo(BaseModel):
    """The run a step belongs to, as the step may see it (read-only)."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    workflow: str
    version: str
    subject_id: str
    inputs: dict[str, Any]
    triggered_by: str
    created_at: float
    attempts: int  # how many times a worker has taken the run, this time included
    holdout: bool = False  # a held-out subject: proposals are logged, never submitted


class ActionOutcome(BaseModel):
    """Where an action this step proposed stands at the gate (pending, approved, rejected...)."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    approval_id: str
    kind: str
    status: str
    reason: str | None = None


class ActionReceipt(Protocol):
    """What `StepContext.execute` hands back: the executor's proof the action was carried out."""

    @property
    def idempotency_key(self) -> str:
        """The key that made the action happen once."""
        ...

    @property
    def executor(self) -> str:
        """The executor that acted."""
        ...

    @property
    def status(self) -> str:
        """`done`, or `refused` (definitively)."""
        ...

    @property
    def detail(self) -> dict[str, Any]:
        """What the executor recorded."""
        ...

    @property
    def replayed(self) -> bool:
        """True when this is the stored receipt of an earlier execution with the same key."""
        ...


@runtime_checkable  # `isinstance(ctx, StepContext)` keeps working as it did for the class
class StepContext(Protocol):
    """What a step sees of its run, and the few ways it may act.

    The engine builds one per execution of a step (per round, for a multi-round step);
    a step that runs again after a crash gets a fresh one.
    """

    # The model and prompt the step used, recorded on its checkpoint (set by `used`/`ask`).
    model_name: str | None
    prompt_version: str | None

    @property
    def run(self) -> RunInfo:
        """The run this step belongs to."""
        ...

    @property
    def workflow(self) -> Workflow:
        """The workflow (at the run's pinned version)."""
        ...

    @property
    def step(self) -> Step:
        """The step being executed."""
        ...

    @property
    def idx(self) -> int:
        """The step's position in the workflow, from 0."""
        ...

    @property
    def round(self) -> int:
        """This round's number in a multi-round step (0 for the first, and for plain steps)."""
        ...

    @property
    def progress(self) -> dict[str, Any] | None:
        """A multi-round step's state as its last committed round stored it (None at first)."""
        ...

    @property
    def decision(self) -> dict[str, Any] | None:
        """The outside decision this step resumes on, and `["approvals"]`: proposals' outcomes."""
        ...

    @property
    def degradation(self) -> Degradation:
        """The run's degradation: level, reasons, coverage, the signals' standing."""
        ...

    @property
    def level(self) -> Level:
        """The run's degradation level, as it stands now."""
        ...

    @property
    def signals(self) -> Mapping[str, SignalValue]:
        """The values the context holds for the signals the workflow declares."""
        ...

    @property
    def model(self) -> ModelAccess:
        """The configured model (check `model.available`)."""
        ...

    @property
    def usage(self) -> dict[str, int]:
        """Token usage recorded on this step so far (add to it for calls made by hand)."""
        ...

    def value(self, name: str, default: Any = None) -> Any:
        """A signal's value, or `default` when the context does not hold it.

        `name` must be a signal the workflow declares in `signals=` (else
        `run.undeclared_signal`); `Registry.check` finds literal typos at start-up.
        """
        ...

    def values(self) -> dict[str, Any]:
        """Every signal the workflow reads, by name (None where the context holds none)."""
        ...

    def degrade(self, level: Level, reason: str) -> None:
        """Lower the run's level (never raise it) and record why."""
        ...

    def used(self, call: ModelCall[Any]) -> None:
        """Record a model call on this step; a fault degrades the run to `partial` with its reason."""
        ...

    def minimized(
        self, signals: Sequence[str], facts: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], Pseudonymizer]:
        """The named signals and facts as a model may see them, and the pseudonymizer to restore.

        Only signals this workflow declares may be named (else `model.undeclared_signal`);
        personal values travel as tokens.
        """
        ...

    def ask(
        self,
        schema: type[T],
        instructions: str,
        *,
        signals: Sequence[str],
        facts: Mapping[str, Any] | None = None,
        prompt_version: str,
    ) -> ModelCall[T]:
        """Ask the model for a `schema` object about the named signals, minimized; check `.ok`."""
        ...

    def propose(
        self, kind: str, payload: dict[str, Any], *, confidence: float, why: str | None = None
    ) -> str | None:
        """Propose an action for the gate; its action id, or None when it was not proposed:
        a held-out subject (withheld, logged), or a customer-facing kind at `thin`/`none`
        level (the run's reasons gain `restricted:<kind>`; check `ctx.level` to pick an
        internal action instead).

        The kind must be one the workflow declares in `actions=` (else `run.action_undeclared`).
        """
        ...

    def round_outcomes(self) -> list[ActionOutcome]:
        """Where every action this step has proposed so far stands, over all its rounds."""
        ...

    def consent_refusal(self) -> str | None:
        """Why the subject's preferences now refuse this workflow (opted out, snoozed), or None."""
        ...

    def on_commit(self, effect: Callable[[Connection], None]) -> None:
        """Run `effect(conn)` inside this step's checkpoint transaction (exactly once)."""
        ...

    def execute(
        self, kind: str, payload: dict[str, Any], *, executor: str = "outbox"
    ) -> ActionReceipt:
        """Carry out an action through an executor, once: its key is derived from run and step."""
        ...

    def explain(self, why: str, *, confidence: float, method: str | None = None) -> Explanation:
        """ "Why am I seeing this": one sentence plus the evidence, capped by the level."""
        ...
