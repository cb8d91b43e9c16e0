"""The proactive tests' `pulse` workflow and signals, with an event trigger declared beside them."""

from __future__ import annotations

from datetime import timedelta

from copilot.workflow.triggers import EventTrigger
from tests.support.triggered import SIGNALS, pulse  # noqa: F401 - registered with this module

USAGE_DROP = EventTrigger(
    name="usage_drop",
    workflow="pulse",
    when=("pulse_usage <= -30",),
    debounce=timedelta(hours=1),
)
