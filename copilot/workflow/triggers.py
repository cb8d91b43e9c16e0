"""Proactive triggers, declared: schedules (every period, for a set of subjects) and event triggers.

A `Schedule` runs a workflow once per period for every subject its selector finds (all
subjects with a usage signal, say), each at a deterministic jittered moment in the period.
An `EventTrigger` runs a workflow when ingested signals satisfy a condition
(`usage_trend <= -30`, `billing_status becomes "failed"`), at most once per debounce
window per subject. `copilot.proactive` carries them out; this module only says what they
are and checks them at start-up.

YAML form (`COPILOT_TRIGGERS_PATH`):

    schedules:
      - name: weekly_health
        workflow: account_health
        every: P7D                 # ISO 8601 duration; periods start at `anchor` (a Monday)
        jitter: PT6H               # spread the subjects over the first 6 hours of the period
        subjects: {having: [usage_trend, active_seats], seen_within: P30D}
    events:
      - name: billing_failed
        workflow: next_actions
        when: ['billing_status becomes "failed"', "usage_trend <= -30"]   # any of them
        debounce: P1D
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from copilot.errors import CopilotError, WorkflowDefinitionError
from copilot.governance.signals import SignalRegistry
from copilot.workflow.definition import Workflow

Op = Literal["==", "!=", "<", "<=", ">", ">=", "becomes"]
_ORDERED = {"<", "<=", ">", ">="}
_CONDITION = re.compile(r"^\s*([a-z][a-z0-9_.]{0,99})\s+(==|!=|<=|>=|<|>|becomes)\s+(.+?)\s*$")
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # periods of a day or a week start at 00:00 UTC, Monday
MAX_KEY = 200  # runs.idempotency_key


class TriggerError(WorkflowDefinitionError):
    """A schedule or event trigger is declared wrongly; the message names the fix."""

    code = "trigger.invalid"


class Condition(BaseModel):
    """`signal op value`, over one signal's newly ingested value (and, for `becomes`, its last).

    `becomes` holds when the new value equals `value` and the previous one did not (or
    there was none): an edge, so a daily sync repeating "failed" fires once, not daily.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,99}$")
    op: Op
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        """`usage_trend <= -30`, `billing_status becomes "failed"`; the value is JSON."""
        m = _CONDITION.match(text)
        if m is None:
            raise TriggerError(
                f"condition {text!r} is not `signal op value` (op one of == != < <= > >= "
                'becomes), e.g. usage_trend <= -30 or billing_status becomes "failed"'
            )
        signal, op, literal = m.groups()
        try:
            value = json.loads(literal)
        except ValueError:
            raise TriggerError(
                f'condition {text!r}: the value {literal} is not JSON (quote strings: "failed")'
            ) from None
        return cls(signal=signal, op=op, value=value)

    def holds(self, value: Any) -> bool:
        """Whether `value` satisfies the comparison (`becomes` compares as `==`)."""
        if self.op in ("==", "becomes"):
            return bool(value == self.value)
        if self.op == "!=":
            return bool(value != self.value)
        try:
            if self.op == "<":
                return bool(value < self.value)
            if self.op == "<=":
                return bool(value <= self.value)
            if self.op == ">":
                return bool(value > self.value)
            return bool(value >= self.value)
        except TypeError:  # a value of another type than declared never satisfies an order
            return False

    def fires(self, new: Any, previous: Any | None) -> bool:
        """Whether a newly ingested value fires (given the subject's previous value)."""
        if not self.holds(new):
            return False
        return self.op != "becomes" or previous is None or not self.holds(previous)

    def __str__(self) -> str:
        return f"{self.signal} {self.op} {json.dumps(self.value)}"


def _conditions(value: Any) -> Any:
    """Strings, one string, or mappings: all become Conditions."""
    items = [value] if isinstance(value, str | Condition | Mapping) else value
    return [Condition.parse(v) if isinstance(v, str) else v for v in items]


class Subjects(BaseModel):
    """Which subjects a schedule runs for: those with any `having` signal, where all `where` hold.

    `seen_within` keeps only subjects with a `having` value observed that recently (active
    accounts); `where` conditions are checked on each subject's latest values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    having: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    seen_within: timedelta | None = None

    @field_validator("where", mode="before")
    @classmethod
    def _parse_where(cls, v: Any) -> Any:
        return _conditions(v)

    @model_validator(mode="after")
    def _some(self) -> Subjects:
        if not self.having and not self.where:
            raise ValueError("subjects needs `having` (signal names) or `where` (conditions)")
        if any(c.op == "becomes" for c in self.where):
            raise ValueError("`becomes` is an edge of an ingested value; use == in `where`")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """The signals that make a subject a candidate."""
        return self.having or tuple(dict.fromkeys(c.signal for c in self.where))


class Schedule(BaseModel):
    """Run `workflow` once per period for each selected subject, at a jittered moment.

    Periods are `every` long and start at `anchor` (default Monday 1970-01-05 00:00 UTC).
    The run's idempotency key is `schedule:<name>:<period start>:<subject>`, so a beat
    that restarts, or runs twice, within a period never runs a subject twice.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    workflow: str
    every: timedelta
    subjects: Subjects
    jitter: timedelta = timedelta(0)
    anchor: datetime = MONDAY
    inputs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _period(self) -> Schedule:
        if self.every.total_seconds() < 1:
            raise ValueError(f"schedule {self.name}: `every` must be at least 1 second")
        if not timedelta(0) <= self.jitter < self.every:
            raise ValueError(
                f"schedule {self.name}: `jitter` must be >= 0 and shorter than `every`"
            )
        if self.anchor.tzinfo is None:
            raise ValueError(f"schedule {self.name}: `anchor` needs a timezone (e.g. ...Z)")
        return self

    @property
    def triggered_by(self) -> str:
        """What runs record as their cause."""
        return f"schedule:{self.name}"

    def period_start(self, now: float) -> float:
        """Start (epoch seconds) of the period that contains `now`."""
        anchor, every = self.anchor.timestamp(), self.every.total_seconds()
        return anchor + math.floor((now - anchor) / every) * every

    def offset(self, tenant: str, subject_id: str, period_start: float) -> float:
        """Seconds into the period at which the subject is due: deterministic, in [0, jitter)."""
        raw = f"{self.name}\x1f{tenant}\x1f{subject_id}\x1f{period_start}".encode()
        fraction = int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") / 2**64
        return fraction * self.jitter.total_seconds()

    def key(self, period_start: float, subject_id: str) -> str:
        """The run's idempotency key for this period and subject."""
        return _key(f"schedule:{self.name}:{iso(period_start)}:", subject_id)


class EventTrigger(BaseModel):
    """Run `workflow` when an ingested batch satisfies any `when` condition, debounced per subject.

    After firing for a subject, the trigger stays quiet for that subject for `debounce`
    (a sliding window from the firing, not a calendar bucket).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    workflow: str
    when: tuple[Condition, ...] = Field(min_length=1)
    debounce: timedelta
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, v: Any) -> Any:
        return _conditions(v)

    @model_validator(mode="after")
    def _positive(self) -> EventTrigger:
        if self.debounce.total_seconds() <= 0:
            raise ValueError(f"trigger {self.name}: `debounce` must be positive (e.g. PT1H)")
        return self

    @property
    def triggered_by(self) -> str:
        """What runs record as their cause."""
        return f"trigger:{self.name}"

    @property
    def signals(self) -> set[str]:
        """The signals the conditions read."""
        return {c.signal for c in self.when}

    def match(
        self, batch: Mapping[str, Any], previous: Mapping[str, Any | None]
    ) -> Condition | None:
        """The first condition the batch fires, or None."""
        for c in self.when:
            if c.signal in batch and c.fires(batch[c.signal], previous.get(c.signal)):
                return c
        return None

    def key(self, window_start: float, subject_id: str) -> str:
        """The run's idempotency key for the debounce window that starts at `window_start`."""
        return _key(f"trigger:{self.name}:{iso(window_start, ms=True)}:", subject_id)


class TriggerRegistry:
    """The declared schedules and event triggers (one namespace of names)."""

    def __init__(self, items: Iterable[Schedule | EventTrigger] = ()) -> None:
        self._schedules: dict[str, Schedule] = {}
        self._events: dict[str, EventTrigger] = {}
        for item in items:
            self.register(item)

    def register(self, item: Schedule | EventTrigger) -> Schedule | EventTrigger:
        """Declare one (the same name declared differently is an error)."""
        known = self._schedules.get(item.name) or self._events.get(item.name)
        if known is not None and known != item:
            raise TriggerError(f"trigger {item.name!r} is declared twice, differently")
        if isinstance(item, Schedule):
            self._schedules[item.name] = item
        else:
            self._events[item.name] = item
        return item

    @classmethod
    def from_yaml(cls, text: str) -> TriggerRegistry:
        """Load the YAML form (`schedules:` and `events:`); every problem is named."""
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise TriggerError(f"trigger declarations are not YAML: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) - {"schedules", "events"}:
            raise TriggerError("trigger declarations take two lists: `schedules:` and `events:`")
        try:
            return cls(
                [Schedule.model_validate(s) for s in doc.get("schedules") or []]
                + [EventTrigger.model_validate(e) for e in doc.get("events") or []]
            )
        except ValidationError as exc:
            raise TriggerError(f"trigger declarations are invalid: {exc}") from exc

    def schedules(self) -> list[Schedule]:
        """All schedules, by name."""
        return [self._schedules[n] for n in sorted(self._schedules)]

    def events(self) -> list[EventTrigger]:
        """All event triggers, by name."""
        return [self._events[n] for n in sorted(self._events)]

    def items(self) -> list[Schedule | EventTrigger]:
        """Schedules, then event triggers."""
        found: list[Schedule | EventTrigger] = [*self.schedules(), *self.events()]
        return found

    def schedule(self, name: str) -> Schedule:
        """The schedule `name`, or TriggerError naming those that exist."""
        if name not in self._schedules:
            known = ", ".join(sorted(self._schedules)) or "none"
            raise TriggerError(f"no schedule {name!r} (declared: {known})", schedule=name)
        return self._schedules[name]

    def check(self, workflow: Callable[[str], Workflow], signals: SignalRegistry) -> None:
        """Start-up validation: workflows exist and take the inputs, conditions fit their signals."""
        problems: list[str] = []
        for item in self.items():
            try:
                wf = workflow(item.workflow)
            except CopilotError as exc:  # workflow.unknown
                problems.append(f"{item.name}: {exc.message}")
                continue
            try:
                wf.input.model_validate({"subject_id": "x", **item.inputs})
            except ValidationError as exc:
                problems.append(f"{item.name}: inputs do not fit {wf.input.__name__}: {exc}")
            names, conditions = _watched(item)
            problems += _signal_problems(item.name, names, conditions, signals)
        if problems:
            raise TriggerError("triggers are declared wrongly: " + "; ".join(problems))


def _watched(item: Schedule | EventTrigger) -> tuple[list[str], list[Condition]]:
    """The signals a schedule selects subjects by, or the conditions an event trigger checks."""
    if isinstance(item, Schedule):
        return list(item.subjects.having), list(item.subjects.where)
    return [], list(item.when)


def watched_signals(item: Schedule | EventTrigger) -> set[str]:
    """Every signal a schedule or event trigger reads to decide whether its workflow runs."""
    names, conditions = _watched(item)
    return {*names, *(c.signal for c in conditions)}


def _signal_problems(
    owner: str, names: list[str], conditions: list[Condition], signals: SignalRegistry
) -> list[str]:
    problems = []
    for name in [*names, *(c.signal for c in conditions)]:
        if signals.get(name) is None:
            problems.append(f"{owner}: signal {name!r} is not declared")
    for c in conditions:
        spec = signals.get(c.signal)
        if spec is None:
            continue
        if not spec.accepts(c.value):
            problems.append(f"{owner}: {c} compares {spec.type} {c.signal} with {c.value!r}")
        elif c.op in _ORDERED and spec.type not in ("number", "integer", "date"):
            problems.append(f"{owner}: {c} orders a {spec.type}; use == or != (or becomes)")
    return problems


def iso(ts: float, *, ms: bool = False) -> str:
    """`2026-11-02T00:00:00Z` (with milliseconds when `ms`)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{dt.microsecond // 1000:03d}" if ms else "") + "Z"


def _key(prefix: str, subject_id: str) -> str:
    """prefix + subject, or prefix + a digest of the subject when that would not fit the column."""
    key = prefix + subject_id
    if len(key) <= MAX_KEY:
        return key
    return prefix + "#" + hashlib.sha256(subject_id.encode()).hexdigest()
