"""An API app on a real database: its runtime, and a key for every (tenant, role)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from approvals import ApprovalRequest
from audit import Actor
from copilot.engine.runs import Run
from copilot.governance.keys import ROLES
from copilot.runtime import Runtime

TENANTS = ("acme", "globex")


@dataclass
class Api:
    """An app on a real database, its runtime, and a key for every (tenant, role)."""

    rt: Runtime
    client: TestClient
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    woken: list[str] = field(default_factory=list)

    def auth(self, tenant: str, role: str) -> dict[str, str]:
        """The Authorization header of that tenant's key with that role."""
        return {"Authorization": f"Bearer {self.tokens[tenant, role]}"}

    def waiting_run(self, tenant: str = "acme", subject: str = "acct-1", **kw: Any) -> Run:
        """A `proposing` run advanced in-process to waiting: under the default policy its
        `post_note` (low risk, internal) is auto-approved and its `email_customer` waits for a person."""
        run, _ = self.rt.runner.trigger(
            "proposing", subject, tenant=tenant, triggered_by=f"{tenant}-app", **kw
        )
        return self.rt.runner.run_inline(run.id)

    def pending(self, run: Run) -> ApprovalRequest:
        """The run's one request waiting for a person."""
        (found,) = [r for r in self.rt.gate.of_run(run.id) if r.status == "pending"]
        return found


def make_keys(rt: Runtime) -> dict[tuple[str, str], str]:
    """One key per (tenant, role); each key's principal is `<tenant>-<role>`."""
    tokens = {}
    for tenant in TENANTS:
        for role in ROLES:
            _, token = rt.keys.create(
                tenant=tenant, roles=[role], name=f"{tenant}-{role}", actor=Actor.system("test")
            )
            tokens[tenant, role] = token
    return tokens
