"""The `copilot` command line."""

from __future__ import annotations

from copilot.cli.app import app, main

__all__ = ["app", "main"]
