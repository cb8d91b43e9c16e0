"""copilot: the framework — settings, database, runtime, and its edges (CLI, API)."""

from __future__ import annotations

# Action kinds a workflow may propose (defined in approvals; re-exported for authors)
from approvals import ActionKind, Catalog, OnExpiry, Risk

# Database
from copilot.db.engines import make_engine, upgrade

# Errors
from copilot.errors import ConfigError, CopilotError, DatabaseConfigError

# Minimization
from copilot.governance.minimize import Pseudonymizer

# Signals
from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec

# Model access
from copilot.llm import ModelCall

# Outcomes
from copilot.measure.outcomes import GuardrailSpec, OutcomeRegistry, OutcomeSpec

# Configuration
from copilot.settings import Settings

# Writing workflows
from copilot.workflow.context import StepContext
from copilot.workflow.definition import Again, Await, SignalNeed, Workflow

# Degradation and explanations
from copilot.workflow.degradation import Degradation, Explanation, Level, SignalUse

# Proactive triggers
from copilot.workflow.triggers import Condition, EventTrigger, Schedule, Subjects, TriggerRegistry

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
