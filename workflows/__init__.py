"""workflows: the built-in workflows, written against copilot's public API only.

copilot finds them through the `copilot.workflows` entry points (pyproject.toml), exactly
as it finds a user's own: `account_health`, `next_actions`, `tone_draft`.
"""

from __future__ import annotations

__all__: list[str] = []
