"""Action kinds: the catalog of what agents may propose, each with its schema and risk.

Risk is computed by the kind from the validated payload, never read from model output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from approvals.errors import InvalidPayloadError, UnknownActionKindError


class Risk(StrEnum):
    """How much harm a wrong action could do."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0 low, 1 medium, 2 high."""
        return list(Risk).index(self)


class OnExpiry(StrEnum):
    """What happens when a pending request reaches its deadline."""

    EXPIRE = "expire"  # the run continues on its fallback path
    ESCALATE = "escalate"  # another role, a new deadline
    AUTO_APPROVE_LOW = "auto_approve_low"  # approve only if the risk is low, else expire


@dataclass(frozen=True)
class ActionKind:
    """One kind of action: payload schema, risk function, audience and expiry behaviour."""

    name: str
    payload: type[BaseModel]
    risk: Callable[[Any], Risk]
    reaches_customer: bool = False
    expires_after: timedelta = timedelta(hours=72)
    on_expiry: OnExpiry = OnExpiry.EXPIRE
    escalate_to: str = "admin"
    description: str = ""
    # A person must approve, whatever a policy or an expiry rule says (e.g. sending a message).
    requires_person: bool = False

    def validate(self, payload: dict[str, Any]) -> BaseModel:
        """The payload as the kind's model, or InvalidPayloadError naming the fields."""
        try:
            return self.payload.model_validate(payload)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            fields = ", ".join(e["field"] or "(payload)" for e in errors)
            raise InvalidPayloadError(
                f"payload for {self.name} is invalid ({fields}); fix those fields",
                kind=self.name,
                errors=errors,
            ) from exc

    def score(self, model: BaseModel) -> Risk:
        """The risk of this validated payload."""
        return Risk(self.risk(model))


class Catalog:
    """The registered action kinds. Unknown kinds are refused, never guessed."""

    def __init__(self, kinds: Iterable[ActionKind] = ()) -> None:
        self._kinds: dict[str, ActionKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: ActionKind) -> ActionKind:
        """Add a kind (a second kind of the same name is an error)."""
        if kind.name in self._kinds and self._kinds[kind.name] is not kind:
            raise ValueError(f"action kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> ActionKind:
        """The kind, or UnknownActionKindError."""
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownActionKindError(
                f"action kind {name!r} is not in the catalog; register it before proposing it",
                kind=name,
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self._kinds)
