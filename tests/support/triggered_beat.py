"""What a real worker + beat loads in the end-to-end schedule test: a 6-second period."""

from __future__ import annotations

from datetime import timedelta

from copilot.workflow.triggers import Schedule, Subjects
from tests.support.triggered import SIGNALS, pulse

__all__ = ["FAST", "SIGNALS", "pulse"]

FAST = Schedule(
    name="every_six_seconds",
    workflow="pulse",
    every=timedelta(seconds=6),
    jitter=timedelta(seconds=2),
    subjects=Subjects(having=("pulse_usage",)),
)
