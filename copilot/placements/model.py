"""What an app declares: placements, their candidates, priority classes and the caps.

A placement is a slot in the app (`onboarding.next_step`, `tooltip.billing`). It reads
declared signals (each declared *for it* in the signal registry, so minimization and the
"who sees what" rules apply), offers candidates whose content a pydantic model validates
at declaration, ranks the eligible ones with a named policy, holds out a deterministic
share of subjects (they get the app's default experience), and says what to show when
the context is thin (a safe generic candidate, or nothing).
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from copilot.measure.evidence.rules import StopRule
from copilot.placements.errors import PlacementDefinitionError
from copilot.workflow.definition import SignalNeed
from copilot.workflow.triggers import Condition, TriggerError

PLACEMENT_NAME = r"^[a-z][a-z0-9_]{0,49}(\.[a-z][a-z0-9_]{0,49}){0,3}$"
CANDIDATE_ID = r"^[a-z][a-z0-9_]{0,63}$"


class Nudge(BaseModel):
    """The default content model: a title, a body, and an optional call to action."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=120)
    body: str = Field(default="", max_length=1000)
    action_label: str | None = Field(default=None, max_length=40)
    action_url: str | None = Field(default=None, max_length=500)


class PriorityClass(BaseModel):
    """A class of candidates: its rank (higher first) and whether it may bypass the caps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    rank: int = 0
    bypass_caps: bool = False


DEFAULT_CLASSES = (
    PriorityClass(name="normal", rank=0),
    PriorityClass(name="important", rank=10),
    PriorityClass(name="security", rank=100, bypass_caps=True),
)


class Caps(BaseModel):
    """One definition across every placement, per subject.

    `per_day`: at most this many shown items in any rolling 24 hours, across placements
    (a decision that returned an item counts; holdout and empty decisions do not).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_day: int = Field(default=5, ge=0, le=10_000)


class PlacementCandidate(BaseModel):
    """One item a placement may show: id, content, eligibility (all conditions hold), class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=CANDIDATE_ID)
    content: dict[str, Any]
    when: tuple[Condition, ...] = ()
    priority: str = "normal"
    rule: str = Field(default="", max_length=200, description="the rule's name, for explanations")

    @field_validator("when", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else list(value or ())
        try:
            return tuple(Condition.parse(v) if isinstance(v, str) else v for v in items)
        except TriggerError as exc:
            raise ValueError(exc.message) from None

    @property
    def rule_name(self) -> str:
        """The rule that made it eligible, as people read it."""
        return self.rule or (" and ".join(map(str, self.when)) if self.when else "always eligible")


def _content_model(value: Any) -> type[BaseModel]:
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value
    module, _, attr = str(value).partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"content_model {value!r}: use `package.module:Class` ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ValueError(f"content_model {value!r} is not a pydantic model")
    return found


class Placement(BaseModel):
    """A slot in the app and everything that decides what it shows."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(pattern=PLACEMENT_NAME)
    description: str = ""
    candidates: tuple[PlacementCandidate, ...] = Field(min_length=1)
    signals: tuple[SignalNeed, ...] = ()
    content_model: type[BaseModel] = Nudge
    policy: str = "rules"
    holdout: float = Field(default=0.0, ge=0.0, lt=1.0)
    thin_default: str | None = None
    cooldown: timedelta = timedelta(0)
    dismiss_for: timedelta = timedelta(days=30)
    snooze_for: timedelta = timedelta(days=7)
    segment_by: str | None = Field(
        default=None, description="a signal it reads; the report's segments"
    )
    client_signals: tuple[str, ...] = Field(
        default=(),
        description="signals it reads that a browser (a subject token) may send as context; "
        "a stored value still wins over the browser's",
    )
    stop_rules: tuple[StopRule, ...] = Field(
        default=(), description="guardrails over its holdout: a confirmed breach serves control"
    )

    @field_validator("signals", mode="before")
    @classmethod
    def _needs(cls, value: Any) -> Any:
        return tuple({"name": v} if isinstance(v, str) else v for v in value or ())

    @field_validator("content_model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _content_model(value)

    @model_validator(mode="after")
    def _consistent(self) -> Placement:
        ids = [c.id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"candidate ids repeat: {ids}")
        if self.thin_default is not None and self.thin_default not in ids:
            raise ValueError(f"thin_default {self.thin_default!r} is not a candidate ({ids})")
        if self.stop_rules and self.holdout <= 0:
            raise ValueError("stop_rules compare against a holdout; set holdout, e.g. 0.1")
        read = {n.name for n in self.signals}
        if self.segment_by is not None and self.segment_by not in read:
            raise ValueError(f"segment_by {self.segment_by!r} is not a signal the placement reads")
        if set(self.client_signals) - read:
            raise ValueError(f"client_signals {sorted(set(self.client_signals) - read)} are not "
                             "signals the placement reads")  # fmt: skip
        for c in self.candidates:
            unread = sorted({cond.signal for cond in c.when} - read)
            if unread:
                raise ValueError(
                    f"candidate {c.id!r} tests {unread}, which the placement does not read"
                )
            if any(cond.op == "becomes" for cond in c.when):
                raise ValueError(f"candidate {c.id!r}: `becomes` is for event triggers; use ==")
            try:
                self.content_model.model_validate(c.content)
            except ValidationError as exc:
                raise ValueError(f"candidate {c.id!r} content is invalid: {exc}") from None
        return self

    def candidate(self, candidate_id: str) -> PlacementCandidate | None:
        """The candidate of that id, if declared."""
        return next((c for c in self.candidates if c.id == candidate_id), None)

    @property
    def signal_names(self) -> tuple[str, ...]:
        """The signals it reads, in declaration order."""
        return tuple(n.name for n in self.signals)


def placement(**fields: Any) -> Placement:
    """Declare a placement in code; every problem is a PlacementDefinitionError naming it."""
    try:
        return Placement.model_validate(fields)
    except ValidationError as exc:
        raise PlacementDefinitionError(
            f"placement {fields.get('name')!r} is declared wrongly: {exc}",
            placement=fields.get("name"),
        ) from None


__all__ = [
    "DEFAULT_CLASSES",
    "Caps",
    "Nudge",
    "Placement",
    "PlacementCandidate",
    "PriorityClass",
    "placement",
]
