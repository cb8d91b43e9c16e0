"""copilot: the framework — settings, database, runtime, and its edges (CLI, API)."""

from __future__ import annotations

# Action kinds a workflow may propose (defined in approvals; re-exported for authors)
from approvals import ActionKind, Catalog, OnExpiry, Risk

# Database
from copilot.db import make_engine, upgrade

# Degradation and explanations
from copilot.degradation import Degradation, Explanation, Level, SignalUse

# Errors
from copilot.errors import ConfigError, CopilotError, DatabaseConfigError

# Model access
from copilot.llm import ModelCall

# Minimization
from copilot.minimize import Pseudonymizer

# Outcomes
from copilot.outcomes import GuardrailSpec, OutcomeRegistry, OutcomeSpec

# Writing workflows
from copilot.runner import StepContext

# Configuration
from copilot.settings import Settings

# Signals
from copilot.signals import Sensitivity, SignalRegistry, SignalSpec

# Proactive triggers
from copilot.triggers import Condition, EventTrigger, Schedule, Subjects, TriggerRegistry
from copilot.workflow import Again, Await, SignalNeed, Workflow

__all__ = [
    # Configuration
    "Settings",
    # Database
    "make_engine",
    "upgrade",
    # Writing workflows
    "Again",
    "Await",
    "SignalNeed",
    "StepContext",
    "Workflow",
    # Action kinds
    "ActionKind",
    "Catalog",
    "OnExpiry",
    "Risk",
    # Outcomes
    "GuardrailSpec",
    "OutcomeRegistry",
    "OutcomeSpec",
    # Signals
    "Sensitivity",
    "SignalRegistry",
    "SignalSpec",
    # Proactive triggers
    "Condition",
    "EventTrigger",
    "Schedule",
    "Subjects",
    "TriggerRegistry",
    # Degradation and explanations
    "Degradation",
    "Explanation",
    "Level",
    "SignalUse",
    # Model access and minimization
    "ModelCall",
    "Pseudonymizer",
    # Errors
    "ConfigError",
    "CopilotError",
    "DatabaseConfigError",
]
