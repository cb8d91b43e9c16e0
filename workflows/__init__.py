"""workflows: the built-in workflows, written against copilot's public API only."""

from __future__ import annotations

__all__: list[str] = []
