"""Runs as records: the state machine's states and the stored run and step.

queued ──lease──▶ running ──pause──▶ waiting ──resume──▶ queued
                  running ──▶ completed | failed | skipped
queued | running | waiting ──cancel──▶ cancelled
running ──transient error──▶ queued (retried with backoff)

`store.py` reads and writes them (compare-and-set transitions, each audited in the same
transaction).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from audit import Actor


class RunState(StrEnum):
    """Where a run is."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.SKIPPED, RunState.CANCELLED})


class Run(BaseModel):
    """A run as stored."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    workflow: str
    version: str
    subject_id: str
    state: RunState
    inputs: dict[str, Any]
    idempotency_key: str | None
    triggered_by: str
    principal: str | None = None  # whose request caused it (see copilot.db.tables.runs)
    created_at: float
    updated_at: float
    attempts: int
    step_index: int
    level: str | None
    reasons: list[str]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    holdout: bool = False
    # Why the stored input cannot be read (not a JSON object), else None: listings still
    # show such a run, and the runner fails it `run.bad_input` at its first advance.
    _unreadable: str | None = PrivateAttr(default=None)

    @property
    def unreadable(self) -> str | None:
        """Why the stored input is not a JSON object, or None."""
        return self._unreadable

    @property
    def terminal(self) -> bool:
        """Whether the run is finished for good."""
        return self.state in TERMINAL


class StepRecord(BaseModel):
    """A checkpointed step."""

    model_config = ConfigDict(frozen=True)

    idx: int
    name: str
    status: str  # completed | awaiting | resolved
    output: dict[str, Any]
    request: dict[str, Any] | None
    decision: dict[str, Any] | None
    attempt: int
    model: str | None
    prompt_version: str | None
    usage: dict[str, Any] | None
    started_at: float
    finished_at: float


def loads_column(value: str | None) -> Any:
    """A JSON text column decoded (None stays None)."""
    return json.loads(value) if value is not None else None


def run_from(m: Any) -> Run:
    """A Run from a mapping of the `runs` columns (input that is not JSON: see `unreadable`)."""
    inputs, problem = _inputs(m["inputs"])
    run = Run(
        **{
            k: m[k]
            for k in (
                "id",
                "tenant",
                "workflow",
                "version",
                "subject_id",
                "state",
                "idempotency_key",
                "triggered_by",
                "principal",
                "created_at",
                "updated_at",
                "attempts",
                "step_index",
                "level",
                "lease_owner",
                "lease_expires_at",
                "holdout",
            )
        },
        inputs=inputs,
        reasons=loads_column(m["reasons"]) or [],
        result=loads_column(m["result"]),
        error=loads_column(m["error"]),
    )
    run._unreadable = problem
    return run


def _inputs(text: str) -> tuple[dict[str, Any], str | None]:
    """The stored input, or ({}, why) when it is not a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {}, f"not JSON ({exc})"
    return (value, None) if isinstance(value, dict) else ({}, "not a JSON object")


def acquired_event(before: Run, owner: str) -> tuple[str, Actor, dict[str, Any]]:
    """The audit event of taking a run's lease: (event type, actor, data)."""
    event = "run.started" if before.state == RunState.QUEUED else "run.lease_recovered"
    data = {
        "from": before.state.value,
        "to": "running",
        "attempt": before.attempts + 1,
        "previous_owner": before.lease_owner,
    }
    return event, Actor.system(owner), data
