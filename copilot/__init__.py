"""copilot: the framework — settings, database, runtime, and its edges (CLI, API)."""

from __future__ import annotations

# Database
from copilot.db import make_engine, upgrade

# Errors
from copilot.errors import ConfigError, CopilotError, DatabaseConfigError

# Configuration
from copilot.settings import Settings

__all__ = [
    # Configuration
    "Settings",
    # Database
    "make_engine",
    "upgrade",
    # Errors
    "ConfigError",
    "CopilotError",
    "DatabaseConfigError",
]
