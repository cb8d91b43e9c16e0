"""The HTTP API's wire schema: request and response models `copilot.client.Client` shares.

Light on purpose: pydantic and the domain records only, never FastAPI, the engine, the
gate or the audit stores, so `import copilot.client` loads nothing of the server. The
models of API keys (which need the key store) are in `copilot.api.models`.

Domain records go over the wire as they are (`ApprovalRequest`, `Entry`, `Policy`); the rest are shaped here. Request models forbid unknown fields and bound
every string, list and JSON value, so what reaches the core is already sane: no NUL
characters or lone surrogates, no NaN or Infinity, no integer the audit trail's
canonical JSON cannot hold exactly.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from approvals.kinds import Risk
from approvals.policy import Policy

# Records that go over the wire as they are (re-exported for the client)
from approvals.request import ApprovalRequest as ApprovalRequest
from audit.model import Entry as Entry
from copilot.api.depth import MAX_DEPTH
from copilot.engine.runs import RunState as RunState

# -- bounded scalars ------------------------------------------------------------------------

HEX_ID = r"^[0-9a-f]{32}$"
NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$"
# Subject ids come from the customer's systems: any printable text without control characters.
SUBJECT = r"^[^\x00-\x1f\x7f]{1,200}$"
SubjectId = Annotated[str, Field(pattern=SUBJECT, examples=["acct-042"])]
Name = Annotated[str, Field(pattern=NAME)]
Text = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]
_MAX_INT = 2**53 - 1


def _clean(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{path or 'value'}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise ValueError(
                f"{path}: integers must be within ±(2^53-1); send larger ones as strings"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, str):
        _clean_text(value, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            _clean_text(k, f"{path}.<key>")
            _clean(v, f"{path}.{k}" if path else k, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _clean(v, f"{path}[{i}]", depth + 1)
    else:  # pragma: no cover - JSON parsing yields nothing else
        raise ValueError(f"{path}: not a JSON value")


def _clean_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise ValueError(f"{path or 'value'}: text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{path or 'value'}: text must be valid Unicode (no lone surrogates)"
        ) from None


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    _clean(value, "", 0)
    return value


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str | datetime):  # lax pydantic would take epoch numbers
        raise ValueError("an ISO 8601 date-time string with a timezone, e.g. 2026-11-27T09:00:00Z")
    return value


# A point in time as the document says: an ISO 8601 string with its timezone, nothing else.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text)]

JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_json_object),
    Field(
        max_length=100, description=f"A JSON object (at most 100 keys, {MAX_DEPTH} levels deep)."
    ),
]
Scalar = Annotated[
    str | int | float | bool,
    AfterValidator(lambda v: _clean(v, "value", 0) or v),
]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message that says what to do, and details."""

    code: str = Field(examples=["approval.conflict"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error response: `{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


# -- runs -----------------------------------------------------------------------------------


class RunCreate(RequestModel):
    """Trigger a run of a workflow for a subject."""

    workflow: Name = Field(examples=["account_health"])
    subject_id: SubjectId
    inputs: JsonObject = Field(default_factory=dict)
    idempotency_key: (
        Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")] | None
    ) = Field(default=None, description="The same key returns the same run (per tenant).")

    @field_validator("inputs")
    @classmethod
    def _no_subject_in_inputs(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "subject_id" in v:
            raise ValueError("subject_id goes at the top level of the request, not in inputs")
        return v


class RunOut(BaseModel):
    """A run as the API shows it."""

    id: str
    workflow: str
    version: str
    subject_id: str
    state: RunState
    level: str | None
    reasons: list[str]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    triggered_by: str
    principal: str | None = Field(
        default=None,
        description="Whose request caused the run: `key:<key id>` (the key that triggered "
        "it, or ingested the signals that fired its event trigger), `schedule:<name>`, `cli`. "
        "That principal cannot decide the run's actions.",
    )
    idempotency_key: str | None
    attempts: int
    step_index: int
    created_at: float
    updated_at: float

    @property
    def terminal(self) -> bool:
        """Whether the run is finished for good."""
        return self.state in (
            RunState.COMPLETED,
            RunState.FAILED,
            RunState.SKIPPED,
            RunState.CANCELLED,
        )


class RunAccepted(RunOut):
    """The triggered run; `created` is false when the idempotency key named an existing run."""

    created: bool


class ActionExplanation(BaseModel):
    """One proposed action of the run, with the explanation its step gave."""

    approval_id: str
    kind: str
    status: str
    risk: str
    explanation: dict[str, Any] | None


class RunExplanation(BaseModel):
    """ "Why am I seeing this?" for a run: one sentence, how it was made, and how to opt out."""

    run_id: str
    workflow: str
    subject_id: str
    state: RunState
    why: str
    method: str
    level: str | None
    reasons: list[str]
    confidence_cap: float | None
    model: str | None
    prompt_version: str | None
    signals: list[str]
    actions: list[ActionExplanation]
    opt_out: str


# -- approvals ------------------------------------------------------------------------------

ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "cancelled", "superseded"]


class QueueParams(BaseModel):
    """The queue's query parameters (`GET /v1/approvals`), validated in one pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ApprovalStatus = Field(default="pending", description="Requests in this state.")
    workflow: Annotated[str | None, Field(pattern=NAME, description="Only this workflow's.")] = None
    kind: Annotated[str | None, Field(pattern=NAME, description="Only this action kind.")] = None
    risk: Risk | None = Field(default=None, description="Only this risk.")
    subject_id: Annotated[
        str | None, Field(pattern=SUBJECT, description="Only this subject's.")
    ] = None
    cursor: Annotated[
        str | None,
        Field(pattern=r"^[A-Za-z0-9_=-]{1,200}$", description="`next_cursor` of the last page."),
    ] = None
    limit: Annotated[int, Field(ge=1, le=200, description="Page size.")] = 50


class ApprovalPage(BaseModel):
    """A page of the queue; pass `next_cursor` as `cursor` for the next one."""

    items: list[ApprovalRequest]
    next_cursor: str | None


class DecisionIn(RequestModel):
    """A reviewer's decision on the payload version they saw (the reviewer is the key)."""

    decision: Literal["approve", "reject"]
    payload_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    reason: Text | None = Field(default=None, description="Required to reject; a note to approve.")
    edits: JsonObject | None = Field(
        default=None, description="Edit then approve: fields to change (approve only)."
    )


# -- outcomes -------------------------------------------------------------------------------


class OutcomeIn(RequestModel):
    """One observed outcome of a subject (optionally tied to the run or action it followed)."""

    subject_id: Annotated[str, Field(pattern=SUBJECT)]
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,99}$")]
    value: Annotated[float, Field(allow_inf_nan=False)] = 1.0
    observed_at: Instant | None = Field(default=None, description="Default: now.")
    run_id: Annotated[str | None, Field(pattern=HEX_ID)] = None
    action_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9:_.-]{1,64}$")] = None


class OutcomeBatch(RequestModel):
    """Observed outcomes, recorded all or nothing."""

    events: list[OutcomeIn] = Field(min_length=1, max_length=1000)
    source: Annotated[str, Field(pattern=NAME)] = "api"


class OutcomesRecorded(BaseModel):
    """How many outcome events were written."""

    recorded: int


# -- audit ----------------------------------------------------------------------------------


class EventPage(BaseModel):
    """Entries ascending by seq; pass `next_after_seq` as `after_seq` for the next page."""

    items: list[Entry]
    next_after_seq: int | None


class VerifyOut(BaseModel):
    """The outcome of walking the tenant's chain."""

    stream: str
    ok: bool
    entries: int
    checkpoints: int
    unsigned: int
    bad_seq: int | None
    reason: str | None
    detail: str
    line: str = Field(examples=["OK 42 entries"])


# -- signals and subjects -------------------------------------------------------------------


class SignalBatch(RequestModel):
    """Signal values observed for one subject; all or nothing."""

    subject_id: SubjectId
    values: Annotated[dict[Name, Scalar], Field(min_length=1, max_length=100)]
    source: Name = "api"
    observed_at: Instant | None = None


class FiredRun(BaseModel):
    """A run an event trigger started (or found already started: `created` false)."""

    cause: str
    subject_id: str
    run_id: str
    state: str
    created: bool


class SignalsAccepted(BaseModel):
    """How many values were written, and the runs the event triggers they satisfied started."""

    accepted: int
    fired: list[FiredRun] = Field(default_factory=list)
    failed: list[dict[str, str]] = Field(
        default_factory=list, description="Triggers that could not start their run (logged)."
    )


class PreferencesIn(RequestModel):
    """A subject's controls, replaced as a whole."""

    opt_out_all: bool = False
    opt_out_workflows: Annotated[list[Name], Field(max_length=100)] = Field(default_factory=list)
    snooze_until: Instant | None = None
    consent_basis: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,49}$")] | None = Field(
        default=None, examples=["contract"]
    )


class Erased(BaseModel):
    """What erasing a subject cancelled, deleted and redacted, by kind."""

    subject_id: str
    counts: dict[str, int]


class PreferencesOut(BaseModel):
    """A subject's controls as stored."""

    subject_id: str
    opt_out_all: bool
    opt_out_workflows: list[str]
    snooze_until: datetime | None
    consent_basis: str | None


class ShadowFigure(BaseModel):
    """How often a shadow rule agreed with what people decided."""

    rule: str
    decided: int
    agreed: int
    agreement: float


class PolicyOut(BaseModel):
    """The approval policy this server applies, and its shadow rules' agreement."""

    policy: Policy
    shadow_agreement: list[ShadowFigure]


# -- actions (the feed) ---------------------------------------------------------------------

ActionState = Literal["ready", "claimed", "delivered", "failed", "dead", "cancelled"]
MAX_WAIT = 20.0  # seconds a long-poll may hold a request open (a larger `wait` is capped)


class ActionParams(BaseModel):
    """The feed's query parameters (`GET /v1/actions`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ActionState | Literal["all"] = Field(
        default="ready",
        description="`ready` claims what is claimable (ready, due for retry, or an expired "
        "claim) for you; any other value lists without claiming.",
    )
    kind: Annotated[str | None, Field(pattern=NAME, description="Only this action kind.")] = None
    subject_id: Annotated[
        str | None, Field(pattern=SUBJECT, description="Only this subject's.")
    ] = None
    cursor: Annotated[
        int | None,
        Field(ge=0, le=2**53 - 1, description="`next_cursor` of the last page: ids above it."),
    ] = None
    wait: Annotated[
        float, Field(ge=0, le=3600, description=f"Long-poll: hold up to this many seconds "
                     f"(capped at {MAX_WAIT:g}) until something is claimable.")
    ] = 0.0  # fmt: skip
    limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 10


class ActionOut(BaseModel):
    """An approved action on its way to the app, and where its delivery stands."""

    id: int
    idempotency_key: str = Field(description="Stable per action: deduplicate on it.")
    kind: str
    subject_id: str | None
    run_id: str | None
    approval_id: str | None
    route: str = Field(description="The executor it goes through (`outbox`: this feed).")
    payload: dict[str, Any]
    state: ActionState
    attempts: int
    max_attempts: int
    last_error: str | None
    receipt: dict[str, Any] | None
    claim: str | None = Field(
        description="Your claim's token (ack with it); only its holder sees it."
    )
    claimed_by: str | None
    claim_expires_at: float | None
    next_attempt_at: float | None
    created_at: float
    updated_at: float


class ActionPage(BaseModel):
    """A page of actions by id; pass `next_cursor` as `cursor` for the next one."""

    items: list[ActionOut]
    next_cursor: int | None


class AckIn(RequestModel):
    """Settle your claim: `delivered` (done: the detail is the receipt) or `failed` (retry later)."""

    claim: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="The claim's token.")]
    status: Literal["delivered", "failed"]
    detail: JsonObject = Field(default_factory=dict, description="Receipt, or what went wrong.")


MAX_ACKS = 100


class AckItem(AckIn):
    """One ack of a batch: the action's id beside what `POST /v1/actions/{id}/ack` takes."""

    id: Annotated[int, Field(ge=1, le=2**53 - 1, description="The action's id.")]


class AckManyIn(RequestModel):
    """Settle the claims of a batch in one call (each action at most once per batch)."""

    acks: Annotated[list[AckItem], Field(min_length=1, max_length=MAX_ACKS)]

    @model_validator(mode="after")
    def _distinct(self) -> AckManyIn:
        ids = [a.id for a in self.acks]
        if len(set(ids)) != len(ids):
            raise ValueError("each action at most once per batch")
        return self


class AckResult(BaseModel):
    """One ack's result: the action as `ack` returns it, or the error `ack` would answer."""

    id: int
    action: ActionOut | None
    error: ErrorDetail | None


class AckManyOut(BaseModel):
    """The batch's results, in the order of the acks."""

    results: list[AckResult]


class CancelIn(RequestModel):
    """Give up on an action's delivery, with the reason."""

    reason: Text


# -- operations -----------------------------------------------------------------------------


class Health(BaseModel):
    """Database and broker reachable, and which broker and queue this process sends to."""

    status: Literal["ok"]
    database: str
    broker: str
    broker_url: str = Field(
        default="", description="The broker this process sends runs to (no password)."
    )
    queue: str = Field(default="", description="The Celery queue its workers must consume.")
