"""What every command needs: the process's Runtime, built once from Settings at the edge."""

from __future__ import annotations

from copilot.runtime import Runtime

Env = Runtime

__all__ = ["Env"]
