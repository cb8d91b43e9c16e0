"""copilot: the framework — settings, database, runtime, and its edges (CLI, API).

Names are imported on first use (PEP 562), so `import copilot.client` or `copilot.testing`
loads only what those need; `from copilot import Workflow` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from copilot.workflow.triggers import (
        Condition,
        EventTrigger,
        Schedule,
        Subjects,
        TriggerRegistry,
    )

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

_HOME = {  # public name -> the module that defines it
    "ActionKind": "approvals",
    "Catalog": "approvals",
    "OnExpiry": "approvals",
    "Risk": "approvals",
    "make_engine": "copilot.db.engines",
    "upgrade": "copilot.db.engines",
    "StepContext": "copilot.workflow.context",
    "ConfigError": "copilot.errors",
    "CopilotError": "copilot.errors",
    "DatabaseConfigError": "copilot.errors",
    "Pseudonymizer": "copilot.governance.minimize",
    "Sensitivity": "copilot.governance.signals",
    "SignalRegistry": "copilot.governance.signals",
    "SignalSpec": "copilot.governance.signals",
    "ModelCall": "copilot.llm",
    "GuardrailSpec": "copilot.measure.outcomes",
    "OutcomeRegistry": "copilot.measure.outcomes",
    "OutcomeSpec": "copilot.measure.outcomes",
    "Settings": "copilot.settings",
    "Again": "copilot.workflow.definition",
    "Await": "copilot.workflow.definition",
    "SignalNeed": "copilot.workflow.definition",
    "Workflow": "copilot.workflow.definition",
    "Degradation": "copilot.workflow.degradation",
    "Explanation": "copilot.workflow.degradation",
    "Level": "copilot.workflow.degradation",
    "SignalUse": "copilot.workflow.degradation",
    "Condition": "copilot.workflow.triggers",
    "EventTrigger": "copilot.workflow.triggers",
    "Schedule": "copilot.workflow.triggers",
    "Subjects": "copilot.workflow.triggers",
    "TriggerRegistry": "copilot.workflow.triggers",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
