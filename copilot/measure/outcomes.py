"""Outcomes: what happened to a subject after a run, declared like signals, recorded all or nothing.

An outcome is an event about a subject (replied, activated, renewed, churned, complained,
opted out), timestamped, optionally tied to the run or action it followed. Its declaration
says what it means and which way is better (`polarity`), so a report knows whether a rise
is a gain or a harm; an outcome declared with a `guardrail` is watched for regressions.

YAML form (`COPILOT_OUTCOMES_PATH`):

    outcomes:
      - name: replied
        description: The customer replied to a message we sent
        polarity: good
      - name: complained
        description: The customer complained about a message
        polarity: bad
        guardrail: {max_increase: 0.005}
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Connection, Engine, insert, select

from approvals.queue import action_owners
from audit import Actor, AuditEvent, TransactionalAuditLog
from copilot.db.tables import outcomes as outcomes_table
from copilot.db.tables import runs
from copilot.errors import CopilotError, WorkflowDefinitionError
from copilot.measure.guardrails import Guardrail

MAX_BATCH = 1000
FUTURE_SKEW = 300.0  # seconds an observation may lie ahead of our clock (clock skew)


class OutcomeError(CopilotError):
    """A batch of outcomes was refused; nothing of it was written."""

    code = "outcome.invalid"


class GuardrailSpec(BaseModel):
    """How far an outcome may worsen before a report flags it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_increase: float | None = Field(default=None, ge=0, le=1)
    max_rate: float | None = Field(default=None, ge=0, le=1)


class OutcomeSpec(BaseModel):
    """One declared outcome."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,99}$")
    description: str = Field(min_length=1)
    polarity: Literal["good", "bad"]  # good: more of it is better (replied); bad: churned
    kind: Literal["event", "number"] = "event"  # event: happened (1) or not (0)
    guardrail: GuardrailSpec | None = None

    @model_validator(mode="after")
    def _guardrail_fits(self) -> OutcomeSpec:
        if self.guardrail is not None and (self.kind != "event" or self.polarity != "bad"):
            raise ValueError(
                f"{self.name}: a guardrail watches a rate that must not rise; declare it on "
                "an event outcome with polarity bad"
            )
        return self

    @property
    def sign(self) -> int:
        """1 when a rise is better, -1 when a rise is worse."""
        return 1 if self.polarity == "good" else -1

    def as_guardrail(self) -> Guardrail | None:
        """The guardrail to check on this outcome's rate, if declared."""
        g = self.guardrail
        if g is None:
            return None
        return Guardrail(
            metric=f"{self.name}_rate", max_increase=g.max_increase, max_rate=g.max_rate
        )


class OutcomeEvent(BaseModel):
    """One observed outcome, as a caller sends it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=100)
    value: float = 1.0
    observed_at: datetime | float | None = None  # default: now; a datetime needs a timezone
    run_id: str | None = Field(default=None, max_length=32)
    action_id: str | None = Field(default=None, max_length=64)


class OutcomeRegistry:
    """The declared outcomes."""

    def __init__(self, specs: Iterable[OutcomeSpec] = ()) -> None:
        self._specs: dict[str, OutcomeSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: OutcomeSpec) -> OutcomeSpec:
        """Declare an outcome (declaring a different spec under the same name is an error)."""
        if self._specs.get(spec.name, spec) != spec:
            raise WorkflowDefinitionError(f"outcome {spec.name!r} is declared twice, differently")
        self._specs[spec.name] = spec
        return spec

    @classmethod
    def from_yaml(cls, text: str) -> OutcomeRegistry:
        """Load the YAML form; every problem is named."""
        doc = yaml.safe_load(text) or {}
        try:
            return cls(OutcomeSpec.model_validate(item) for item in doc.get("outcomes", []))
        except ValidationError as exc:
            raise WorkflowDefinitionError(f"outcome declarations are invalid: {exc}") from exc

    def specs(self) -> list[OutcomeSpec]:
        """All declarations, by name."""
        return [self._specs[n] for n in sorted(self._specs)]

    def get(self, name: str) -> OutcomeSpec | None:
        """The declaration, if any."""
        return self._specs.get(name)

    def require(self, name: str) -> OutcomeSpec:
        """The declaration, or OutcomeError(outcome.undeclared) naming those that exist."""
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self._specs)) or "none"
            raise OutcomeError(
                f"outcome {name!r} is not declared (declared: {known})",
                code="outcome.undeclared",
                outcome=name,
            )
        return spec


def record_outcomes(
    engine: Engine,
    audit: TransactionalAuditLog,
    registry: OutcomeRegistry,
    *,
    tenant: str,
    events: Iterable[OutcomeEvent | Mapping[str, Any]],
    source: str = "api",
    clock: Callable[[], float] = time.time,
) -> int:
    """Validate the whole batch, then write it and its audit events in one transaction.

    Refused whole, with every problem listed (`details["problems"]`, each with the
    event's index): an undeclared name (`outcome.undeclared` when that is the only kind of
    problem), a malformed event, a value that does not fit the declaration, a time in the
    future, a run or action that is not this subject's in this tenant (`outcome.invalid`).
    One audit event per subject records the names and a count, never values.

    >>> record_outcomes(engine, audit, registry, tenant="acme",
    ...                 events=[{"subject_id": "acct-1", "name": "replied"}])  # doctest: +SKIP
    1
    """
    now = clock()
    rows, problems = _validate(list(events), registry, tenant=tenant, now=now, source=source)
    if not problems and not rows:
        problems.append({"index": None, "problem": "the batch is empty"})
    with engine.begin() as conn:
        if not problems:
            problems = _check_references(conn, tenant, rows)
        if problems:
            code = (
                "outcome.undeclared"
                if all(p["problem"] == "undeclared" for p in problems)
                else "outcome.invalid"
            )
            raise OutcomeError(
                f"batch refused, nothing written: {problems}", code=code, problems=problems
            )
        conn.execute(insert(outcomes_table), rows)
        by_subject: dict[str, list[str]] = {}
        for row in rows:
            by_subject.setdefault(row["subject_id"], []).append(row["name"])
        audit.append_in(
            conn,
            tenant,
            [
                AuditEvent(
                    event_type="outcomes.recorded",
                    actor=Actor.system(source),
                    subject_id=subject,
                    data={"count": len(names), "names": sorted(set(names))},
                )
                for subject, names in sorted(by_subject.items())
            ],
        )
    return len(rows)


def _validate(
    events: list[OutcomeEvent | Mapping[str, Any]],
    registry: OutcomeRegistry,
    *,
    tenant: str,
    now: float,
    source: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if len(events) > MAX_BATCH:
        return [], [{"index": None, "problem": f"more than {MAX_BATCH} events in one batch"}]
    rows, problems = [], []
    for i, raw in enumerate(events):
        try:
            event = raw if isinstance(raw, OutcomeEvent) else OutcomeEvent.model_validate(raw)
        except ValidationError as exc:
            where = ", ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors())
            problems.append({"index": i, "problem": f"malformed: {where}"})
            continue
        spec = registry.get(event.name)
        if spec is None:
            problems.append({"index": i, "name": event.name, "problem": "undeclared"})
            continue
        at, why = _epoch(event.observed_at, now)
        why = why or _value_problem(spec, event.value)
        if why:
            problems.append({"index": i, "name": event.name, "problem": why})
            continue
        rows.append(
            {
                "tenant": tenant,
                "subject_id": event.subject_id,
                "run_id": event.run_id,
                "action_id": event.action_id,
                "name": event.name,
                "value": float(event.value),
                "observed_at": at,
                "recorded_at": now,
                "source": source,
            }
        )
    return rows, problems


def _epoch(observed: datetime | float | None, now: float) -> tuple[float, str | None]:
    if observed is None:
        return now, None
    if isinstance(observed, datetime):
        if observed.tzinfo is None:
            return 0.0, "observed_at needs a timezone (e.g. 2027-01-05T10:00:00Z)"
        observed = observed.timestamp()
    if not math.isfinite(observed) or observed < 0:
        return 0.0, "observed_at must be a time"
    if observed > now + FUTURE_SKEW:
        return 0.0, "observed_at is in the future"
    return observed, None


def _value_problem(spec: OutcomeSpec, value: float) -> str | None:
    if not math.isfinite(value):
        return "value must be a finite number"
    if spec.kind == "event" and value not in (0, 1):
        return f"{spec.name} is an event: its value is 1 (happened) or 0 (did not)"
    return None


def _check_references(
    conn: Connection, tenant: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Runs and actions named must exist in this tenant and belong to the same subject."""
    run_ids = {r["run_id"] for r in rows if r["run_id"]}
    action_ids = {r["action_id"] for r in rows if r["action_id"]}
    run_owner: dict[str, str] = {}
    if run_ids:
        stmt = select(runs.c.id, runs.c.subject_id)
        for run_id, subject in conn.execute(
            stmt.where(runs.c.tenant == tenant, runs.c.id.in_(run_ids))
        ):
            run_owner[run_id] = subject
    action_owner = action_owners(conn, tenant, action_ids) if action_ids else {}
    problems = []
    for i, r in enumerate(rows):
        if r["run_id"] and run_owner.get(r["run_id"]) != r["subject_id"]:
            problems.append(
                {
                    "index": i,
                    "name": r["name"],
                    "problem": f"run {r['run_id']} is not this subject's run",
                }
            )
        if r["action_id"]:
            subject, run_id = action_owner.get(r["action_id"], (None, None))
            if subject != r["subject_id"] or (r["run_id"] and run_id != r["run_id"]):
                problems.append(
                    {
                        "index": i,
                        "name": r["name"],
                        "problem": f"action {r['action_id']} is not this subject's action"
                        + (" in that run" if r["run_id"] else ""),
                    }
                )
    return problems
