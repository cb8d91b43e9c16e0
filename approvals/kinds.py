"""Action kinds: the catalog of what agents may propose, each with its schema and risk.

Risk is computed by the kind from the validated payload, never read from model output.
The payload fields that name the action's subject (`subject_fields`, dotted for nested
models) are bound to the subject of the request: a proposal naming another subject is
refused, and so is an edit that changes one (see `bind_subject`, `keep_subject`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from approvals.errors import (
    InvalidPayloadError,
    SubjectLockedError,
    SubjectMismatchError,
    UnknownActionKindError,
)


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
    # The payload fields that name whom the action is about or acts on (`account_id`,
    # `customer.account_id`): each must equal the request's subject, and no edit changes it.
    subject_fields: tuple[str, ...] = ()
    # Fields that say whom the action reaches without being the subject's id (a recipient
    # address read from the subject's signals): no edit changes them either.
    locked_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for path in (*self.subject_fields, *self.locked_fields):
            _check_path(self.name, self.payload, path)

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


def _check_path(kind: str, model: type[BaseModel], path: str) -> None:
    """A declared subject field must be a field of the payload model (nested: a model field)."""
    current: Any = model
    for part in path.split("."):
        fields = getattr(current, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            raise ValueError(
                f"action kind {kind!r}: subject field {path!r} is not a field of "
                f"{model.__name__} (nested fields are dotted: `customer.account_id`)"
            )
        current = fields[part].annotation


def _value(payload: Any, path: str) -> Any:
    for part in path.split("."):
        payload = payload.get(part) if isinstance(payload, dict) else None
    return payload


def subjects_of(kind: ActionKind, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's subject fields and what each names (None where it names nothing)."""
    return {path: _value(payload, path) for path in kind.subject_fields}


def bind_subject(kind: ActionKind, payload: dict[str, Any], subject_id: str | None) -> None:
    """Refuse a (validated) payload whose subject fields do not all name `subject_id`."""
    for path, named in subjects_of(kind, payload).items():
        if subject_id is None or named != subject_id:
            raise SubjectMismatchError(
                f"{kind.name}'s `{path}` names {named!r}, but the action is for subject "
                f"{subject_id!r}: an action acts only on its run's subject",
                kind=kind.name,
                field=path,
                subject_id=subject_id,
            )


def keep_subject(
    kind: ActionKind, before: dict[str, Any], after: dict[str, Any], subject_id: str | None
) -> None:
    """Refuse an edit that changes a subject or locked field (then check the result is bound)."""
    paths = (*kind.subject_fields, *kind.locked_fields)
    changed = sorted(p for p in paths if _value(after, p) != _value(before, p))
    if changed:
        raise SubjectLockedError(
            f"an edit cannot change {', '.join(f'`{p}`' for p in changed)} of {kind.name}: "
            "it says whom the action is for, which is the run's subject; reject and let a "
            "run for the other subject propose it",
            kind=kind.name,
            fields=changed,
        )
    bind_subject(kind, after, subject_id)


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
