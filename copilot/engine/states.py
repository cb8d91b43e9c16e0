"""Where a run is: its states, in a module of their own so the HTTP client needs no SQL."""

from __future__ import annotations

from enum import StrEnum


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


__all__ = ["TERMINAL", "RunState"]
