"""A seeded site for the page tests: runs of the built-in workflows waiting for people."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from copilot.cli.demo_data import accounts
from copilot.runtime import Runtime


@dataclass
class Site:
    """The live server, the runtime that seeded it, and a key per person."""

    url: str
    rt: Runtime
    tokens: dict[str, str] = field(default_factory=dict)

    def pending(self, kind: str) -> list[Any]:
        """Acme's pending requests of one kind, in queue order."""
        items, _ = self.rt.gate.queue("acme", kind=kind, limit=200)
        return items


def seed(rt: Runtime, tenant: str, n: int) -> None:
    """Signals for `n` synthetic accounts, then next-actions and tone-draft runs, advanced
    in-process until they wait for a person (the worker's code path, run inline)."""
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    for acct in accounts(n, seed=11, today=today):
        for values, age in ((acct.signals, 3600), (acct.stale, 60 * 86400)):
            if values:
                rt.registry.signals.ingest(rt.engine, rt.audit, tenant=tenant,
                                           subject_id=acct.subject_id, values=values,
                                           source="crm", observed_at=now - age)  # fmt: skip
        for workflow in ("account_health", "next_actions", "tone_draft"):
            run, _ = rt.runner.trigger(workflow, acct.subject_id, tenant=tenant,
                                       triggered_by="app:crm")  # fmt: skip
            rt.runner.run_inline(run.id)
