"""approvals: policies, approval requests and decisions. Depends only on `audit`."""

from __future__ import annotations

__all__: list[str] = []
