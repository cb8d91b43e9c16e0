"""Errors raised by copilot's framework layer.

    CopilotError                 (audit.errors) root: code, message, details
    ├── AuditError               audit.*             (audit.errors)
    └── ConfigError              config.*            settings or environment are wrong
        └── DatabaseConfigError  config.database     database URL unusable

HTTP and CLI map codes to statuses and exit codes in one place each; messages say the fix.
"""

from __future__ import annotations

from audit.errors import CopilotError


class ConfigError(CopilotError):
    """Configuration or environment is wrong; the message names the setting to change."""

    code = "config.invalid"


class DatabaseConfigError(ConfigError):
    """The database URL cannot be used (driver missing, unreachable, wrong scheme)."""

    code = "config.database"


__all__ = ["ConfigError", "CopilotError", "DatabaseConfigError"]
