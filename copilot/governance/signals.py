"""The signal registry: every signal that feeds a workflow is declared before it is used.

A declaration says what the signal is, why it is kept (purpose), its type, how sensitive
it is, how long it is kept, where it comes from, and which workflows may read it.
Ingestion refuses undeclared signals and wrong types and writes nothing of a refused
batch; a workflow that reads a signal not declared for it is refused at start-up.

YAML form (`COPILOT_SIGNALS_PATH`):

    signals:
      - name: usage_trend
        description: Week-over-week change in active usage, percent
        purpose: account health and next actions
        type: number
        sensitivity: internal
        retention: P90D
        source: product analytics
        workflows: [account_health, next_actions]
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, insert

from audit import Actor, AuditEvent, TransactionalAuditLog
from copilot.db.tables import signals as signals_table
from copilot.errors import CopilotError, WorkflowDefinitionError


class SignalError(CopilotError):
    """A batch of signals was refused; nothing of it was written."""

    code = "signal.invalid"


class Sensitivity(StrEnum):
    """Who may see the values: public < internal < personal < special (special categories)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    PERSONAL = "personal"
    SPECIAL = "special"


SignalType = Literal["number", "integer", "string", "boolean", "date", "text"]
_PY: dict[str, tuple[type, ...]] = {
    "number": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,), "text": (str,),
}  # fmt: skip


class SignalSpec(BaseModel):
    """One declared signal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,99}$")
    description: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    type: SignalType
    sensitivity: Sensitivity
    retention: timedelta
    source: str = Field(min_length=1)
    workflows: tuple[str, ...] = ()
    max_length: int = Field(default=2000, ge=1, le=100_000)

    def accepts(self, value: Any) -> bool:
        """Whether `value` fits the declaration."""
        return not isinstance(self.check(value), _Bad)

    def check(self, value: Any) -> Any:
        """The value if it fits the declared type, else a reason string."""
        if self.type == "date":
            try:
                return (
                    date.fromisoformat(value).isoformat()
                    if isinstance(value, str)
                    else _bad(self, value)
                )
            except ValueError:
                return _bad(self, value)
        allowed = _PY[self.type]
        if isinstance(value, bool) and self.type != "boolean":
            return _bad(self, value)
        if not isinstance(value, allowed):
            return _bad(self, value)
        if isinstance(value, float) and value != value:  # NaN
            return _bad(self, value)
        if isinstance(value, str) and len(value) > self.max_length:
            return _Bad(f"{self.name}: longer than {self.max_length} characters")
        return value


class _Bad(str):
    """A refusal reason (a distinct type, so a string value is never mistaken for one)."""


def _bad(spec: SignalSpec, value: Any) -> _Bad:
    return _Bad(f"{spec.name}: expected {spec.type}, got {type(value).__name__}")


class SignalRegistry:
    """The declared signals."""

    def __init__(self, specs: Iterable[SignalSpec] = ()) -> None:
        self._specs: dict[str, SignalSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: SignalSpec) -> SignalSpec:
        """Declare a signal (declaring a different spec under the same name is an error)."""
        if self._specs.get(spec.name, spec) != spec:
            raise WorkflowDefinitionError(f"signal {spec.name!r} is declared twice, differently")
        self._specs[spec.name] = spec
        return spec

    @classmethod
    def from_yaml(cls, text: str) -> SignalRegistry:
        """Load the YAML form; every problem is named."""
        doc = yaml.safe_load(text) or {}
        try:
            return cls(SignalSpec.model_validate(item) for item in doc.get("signals", []))
        except ValidationError as exc:
            raise WorkflowDefinitionError(f"signal declarations are invalid: {exc}") from exc

    def specs(self) -> list[SignalSpec]:
        """All declarations, by name."""
        return [self._specs[n] for n in sorted(self._specs)]

    def get(self, name: str) -> SignalSpec | None:
        """The declaration, if any."""
        return self._specs.get(name)

    def check_workflows(
        self,
        needs: Mapping[str, Iterable[str]],
        watched: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """Refuse a disagreement between the declarations and what the workflows read.

        `needs` maps every registered workflow to the signals it reads (its SignalNeeds);
        `watched`, to those its schedules and event triggers watch (which need a
        declaration, not a grant, and justify one).
        Both halves must agree (start-up validation): a workflow reads only signals
        declared for it, and a declaration grants a registered workflow only a signal it
        reads, so `copilot signals list` never tells a privacy reviewer that a workflow
        reads what it does not. A declaration may name workflows that are not registered
        here (another deployment's).
        """
        problems = []
        reads = {workflow: set(names) for workflow, names in needs.items()}
        for workflow, names in reads.items():
            for name in sorted(names):
                spec = self._specs.get(name)
                if spec is None:
                    problems.append(f"{workflow} reads {name!r}, which is not declared")
                elif workflow not in spec.workflows:
                    problems.append(
                        f"{workflow} reads {name!r}, declared only for {list(spec.workflows)}"
                    )
        for workflow, more in (watched or {}).items():
            if workflow in reads:
                reads[workflow] |= set(more)
        for spec in self.specs():
            for workflow in spec.workflows:
                if workflow in reads and spec.name not in reads[workflow]:
                    problems.append(
                        f"{spec.name!r} is declared for {workflow}, which does not read it "
                        f"(no SignalNeed(name={spec.name!r}), no trigger of it watches it): "
                        f"drop {workflow!r} from its workflows or add the SignalNeed"
                    )
        if problems:
            raise WorkflowDefinitionError(
                "signal declarations and workflows disagree: "
                + "; ".join(problems)
                + ". A signal a workflow reads is declared for it (name, purpose, type, "
                "sensitivity, retention, source, workflows) and read by it (a SignalNeed).",
                problems=problems,
            )

    def ingest(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        *,
        tenant: str,
        subject_id: str,
        values: Mapping[str, Any],
        source: str,
        observed_at: float | None = None,
    ) -> int:
        """Validate the whole batch, then write it and its audit event in one transaction.

        Any undeclared signal or wrong type refuses the whole batch (SignalError listing
        every problem) and writes nothing. The audit event records names and a count,
        never values.
        """
        problems: list[dict[str, str]] = []
        clean: dict[str, Any] = {}
        for name, value in values.items():
            spec = self._specs.get(name)
            if spec is None:
                problems.append(_undeclared(name, self._specs))
                continue
            checked = spec.check(value)
            if isinstance(checked, _Bad):
                problems.append({"signal": name, "problem": str(checked)})
            else:
                clean[name] = checked
        if problems:
            code = (
                "signal.undeclared"
                if all(p["problem"] == "undeclared" for p in problems)
                else "signal.invalid"
            )
            raise SignalError(
                f"batch refused, nothing written: {_describe(problems)}",
                code=code,
                problems=problems,
            )
        at = time.time() if observed_at is None else observed_at
        rows = [{"tenant": tenant, "subject_id": subject_id, "name": k, "value": json.dumps(v),
                 "observed_at": at, "source": source} for k, v in clean.items()]  # fmt: skip
        with engine.begin() as conn:
            if rows:
                conn.execute(insert(signals_table), rows)
            audit.append_in(conn, tenant, [AuditEvent(
                event_type="signals.ingested", actor=Actor.system(source), subject_id=subject_id,
                data={"count": len(rows), "names": sorted(clean)})])  # fmt: skip
        return len(rows)


def _undeclared(name: str, specs: Mapping[str, Any]) -> dict[str, str]:
    """The problem entry for an undeclared name, with the closest declared one if any is near."""
    close = difflib.get_close_matches(name, list(specs), n=1)
    problem = {"signal": name, "problem": "undeclared"}
    return {**problem, "did_you_mean": close[0]} if close else problem


def _describe(problems: list[dict[str, str]]) -> str:
    """One clause per problem: `name: problem (did you mean x?)`."""
    parts = []
    for p in problems:
        hint = f" (did you mean {p['did_you_mean']!r}?)" if "did_you_mean" in p else ""
        parts.append(f"{p['signal']!r}: {p['problem']}{hint}")
    return "; ".join(parts)
