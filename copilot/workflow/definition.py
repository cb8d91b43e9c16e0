"""Declaring workflows: a named, versioned sequence of typed steps.

>>> from pydantic import BaseModel
>>> from copilot import StepContext
>>> class Ask(BaseModel):
...     subject_id: str
>>> class Answer(BaseModel):
...     text: str
>>> hello = Workflow("hello", "1", input=Ask)
>>> @hello.step
... def greet(ctx: StepContext, inp: Ask) -> Answer:
...     return Answer(text=f"hello {inp.subject_id}")
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from copilot.errors import WorkflowDefinitionError
from copilot.measure.evidence.rules import StopRule

T = TypeVar("T", bound=BaseModel)
# A step function, typed `(ctx: StepContext, inp: Model) -> ...` by its author; `@step` keeps
# its type (naming StepContext here would make the contract and the definitions a circle).
F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,49}$")
DURABILITY = ("step", "batched")  # Workflow(durability=...): when a plain step commits


class SignalNeed(BaseModel):
    """A signal a workflow uses: how much it weighs in coverage and how fresh it must be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,99}$")
    weight: float = Field(default=1.0, gt=0)
    required: bool = False
    freshness: timedelta = timedelta(days=30)
    # Present only in some situations (an overdue amount): its absence is not a gap.
    conditional: bool = False


@dataclass(frozen=True)
class Await(Generic[T]):
    """Pause the run after this step, durably, until an outside decision resumes it.

    A step returns `Await(output, request)` instead of its output: `output` is stored as
    the step's result, `request` says what is being waited for (an approval, say). The
    run parks in `waiting`; nothing holds a worker. `resume(run_id, decision)` stores
    the decision and queues the run; the next step then runs with `output` as its input
    and the decision as `ctx.decision`.

    What re-runs on resume: nothing that completed. Every step before and including the
    awaiting one has its output checkpointed and is never executed again; execution
    continues with the step after it. (LangGraph's `interrupt()` re-runs the interrupted
    node on resume; here the pause is a step boundary, so there is nothing to re-run.)
    """

    output: T
    request: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Again(Generic[T]):
    """Checkpoint this round's progress and run the same step again (a multi-round step).

    A step annotated `-> Model | Again[Model]` returns `Again(state)` to end a round: `state` (any
    pydantic model) is stored, with the round's proposals and effects, in one transaction;
    when the round's proposals are decided (at once, if the policy settles them), the step
    runs again with the same input, `ctx.progress` holding the stored state and
    `ctx.decision["approvals"]` the round's outcomes. It finishes by returning `Model`.

    What re-runs after a crash: only the round that had not committed. Each committed
    round is never repeated, so a tool-calling agent that checkpoints every model turn
    and every batch of tool results never re-asks a turn or repeats a tool call.
    """

    state: BaseModel


@dataclass(frozen=True)
class Step:
    """One step: a function from one pydantic model to another (or to `Await` of one)."""

    name: str
    fn: Callable[..., Any]
    input_type: type[BaseModel]
    output_type: type[BaseModel]
    awaits: bool
    rounds: bool = False


class Workflow:
    """A named, versioned sequence of steps, with the signals it reads and actions it may propose.

    Register steps in order with the `@workflow.step` decorator; each is checked when it
    is declared (at import time), with a message that names the fix.
    """

    def __init__(
        self,
        name: str,
        version: str,
        *,
        input: type[BaseModel],
        signals: Sequence[SignalNeed] = (),
        actions: Sequence[str] = (),
        description: str = "",
        holdout: float = 0.0,
        step_timeout: float | None = None,
        stop_rules: Sequence[StopRule] = (),
        durability: str = "step",
    ) -> None:
        if not _NAME.match(name):
            raise WorkflowDefinitionError(
                f"workflow name {name!r} must be lowercase letters, digits and underscores, "
                "starting with a letter (e.g. 'account_health')"
            )
        if not _VERSION.match(version):
            raise WorkflowDefinitionError(
                f"workflow {name!r} version {version!r} must be a short token like '1' or '2.1'"
            )
        if not (isinstance(input, type) and issubclass(input, BaseModel)):
            raise WorkflowDefinitionError(
                f"workflow {name!r}: input= must be a pydantic model class, got {input!r}"
            )
        if not 0 <= holdout < 1:
            raise WorkflowDefinitionError(
                f"workflow {name!r}: holdout={holdout!r} must be a fraction in [0, 1), e.g. 0.1"
            )
        if step_timeout is not None and not step_timeout > 0:
            raise WorkflowDefinitionError(
                f"workflow {name!r}: step_timeout={step_timeout!r} must be seconds > 0 "
                "(or None for COPILOT_STEP_TIMEOUT)"
            )
        if durability not in DURABILITY:
            raise WorkflowDefinitionError(
                f"workflow {name!r}: durability={durability!r} must be one of "
                f"{', '.join(map(repr, DURABILITY))} ('step' commits every step; 'batched' "
                "commits steps without effects with the next checkpoint)"
            )
        names = [s.name for s in signals]
        if len(set(names)) != len(names):
            raise WorkflowDefinitionError(f"workflow {name!r} declares a signal twice: {names}")
        self.name = name
        self.version = version
        self.input = input
        # Seconds one step may run before the engine interrupts it (None: the runtime's default).
        self.step_timeout = step_timeout
        # "step": every step's checkpoint commits as it finishes (the default). "batched": a
        # step with no effects, proposals or pause commits with the next checkpoint that
        # commits anyway; a crash before it runs those steps again (copilot.engine.checkpoint.Batch).
        self.durability = durability
        self.signals: tuple[SignalNeed, ...] = tuple(signals)
        self.actions: tuple[str, ...] = tuple(actions)
        self.description = description
        self.holdout = holdout
        # Guardrails that pause the workflow when the sequential test confirms a breach
        # (copilot.measure.rollout); they need a holdout to compare against.
        if stop_rules and holdout <= 0:
            raise WorkflowDefinitionError(
                f"workflow {name!r}: stop_rules compare against a holdout; set holdout=, e.g. 0.1"
            )
        self.stop_rules: tuple[StopRule, ...] = tuple(stop_rules)
        self.steps: list[Step] = []

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, {self.version!r}, steps={[s.name for s in self.steps]})"

    @property
    def key(self) -> tuple[str, str]:
        """(name, version): what a run pins."""
        return (self.name, self.version)

    def step(self, fn: F) -> F:
        """Append `fn` as the next step; checks its signature against the step before it."""
        where = f"workflow {self.name!r} step {getattr(fn, '__name__', fn)!r}"
        if not inspect.isfunction(fn):
            raise WorkflowDefinitionError(f"{where}: @step decorates plain functions")
        params = list(inspect.signature(fn).parameters.values())
        if len(params) != 2 or any(
            p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
        ):
            raise WorkflowDefinitionError(
                f"{where}: a step takes exactly (ctx, inp): the run's StepContext and one "
                "pydantic model; put options on the model, not in extra parameters"
            )
        try:
            hints = typing.get_type_hints(fn)
        except NameError as exc:
            raise WorkflowDefinitionError(
                f"{where}: cannot resolve its annotations ({exc}); define the models at module level"
            ) from exc
        inp = hints.get(params[1].name)
        if not (isinstance(inp, type) and issubclass(inp, BaseModel)):
            raise WorkflowDefinitionError(
                f"{where}: annotate {params[1].name!r} with the pydantic model the step takes"
            )
        out, awaits, rounds = _output_type(hints.get("return"))
        if out is None:
            raise WorkflowDefinitionError(
                f"{where}: annotate the return type with a pydantic model "
                "(or Await[Model], or Model | Again[Model] for a multi-round step)"
            )
        expected = self.steps[-1].output_type if self.steps else self.input
        before = (
            f"the step before it ({self.steps[-1].name!r}) returns"
            if self.steps
            else "the workflow's input is"
        )
        if inp is not expected:
            raise WorkflowDefinitionError(
                f"{where}: takes {inp.__name__} but {before} {expected.__name__}; "
                f"change the annotation of {params[1].name!r} to {expected.__name__} or reorder the steps"
            )
        if any(s.name == fn.__name__ for s in self.steps):
            raise WorkflowDefinitionError(f"{where}: a step of that name is already declared")
        self.steps.append(Step(fn.__name__, fn, inp, out, awaits, rounds))
        return fn


def _output_type(hint: Any) -> tuple[type[BaseModel] | None, bool, bool]:
    """(output model, awaits, rounds) of a step's return annotation."""
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint, False, False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # `Model | Again[Model]`
        args = typing.get_args(hint)
        rounds = [a for a in args if typing.get_origin(a) is Again]
        plain = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(args) == 2 and len(rounds) == 1 and plain == list(typing.get_args(rounds[0])):
            return plain[0], False, True
        return None, False, False
    if origin is Await or origin is Again:
        (arg,) = typing.get_args(hint)
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, origin is Await, origin is Again
    return None, False, False
