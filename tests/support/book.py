"""A book of synthetic accounts on a real database, the built-in workflows, a fixed clock."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from approvals import ApprovalRequest, Gate, Policy
from audit import SqlAuditStore
from copilot.cli.demo_data import Account, accounts
from copilot.engine.runner import Runner
from copilot.engine.runs import Run
from copilot.llm import ModelAccess
from copilot.workflow.registry import Registry
from tests.support.openai_stub import request_data
from tests.support.runtime import build_runtime

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp()
WORKFLOWS = ("account_health", "next_actions", "tone_draft")


@dataclass
class Book:
    """The accounts, and a runner over them."""

    runner: Runner
    registry: Registry
    gate: Gate
    accounts: list[Account]

    def account(self, shape: str, health: str | None = None) -> Account:
        return next(a for a in self.accounts if a.shape == shape and health in (None, a.health))

    def decide(self, req: ApprovalRequest, decision: str, reason: str | None = None) -> None:
        """A reviewer's decision on the version they saw."""
        self.gate.decide(req.id, reviewer="rev:maya", roles={"reviewer"}, decision=decision,  # type: ignore[arg-type]
                         payload_hash=req.payload_hash, reason=reason)  # fmt: skip

    def run(self, workflow: str, subject_id: str, **inputs: Any) -> Run:
        run, _ = self.runner.trigger(
            workflow, subject_id, tenant="t1", inputs=inputs, triggered_by="app:crm"
        )
        return self.runner.run_inline(run.id)


def seed(
    registry: Registry,
    engine: Engine,
    audit: SqlAuditStore,
    book: list[Account],
    *,
    now: float = NOW,
) -> None:
    """Each account's fresh signals an hour before `now`, its stale ones sixty days before
    (`now`: the fixed clock of `make_book`; worker processes, on the real clock, need theirs)."""
    for a in book:
        if a.signals:
            registry.signals.ingest(engine, audit, tenant="t1", subject_id=a.subject_id,
                                    values=a.signals, source="crm", observed_at=now - 3600)  # fmt: skip
        if a.stale:
            registry.signals.ingest(engine, audit, tenant="t1", subject_id=a.subject_id,
                                    values=a.stale, source="crm", observed_at=now - 60 * 86400)  # fmt: skip


def make_book(
    engine: Engine, model: ModelAccess, *, policy: Policy | None = None, home: Path | None = None
) -> Book:
    """The built-in workflows (entry points) over 20 seeded accounts, on a clock fixed at NOW."""
    rt = build_runtime(engine, home, woken=[], with_flows=False, policy=policy, model=model,
                       clock=lambda: NOW)  # fmt: skip
    book = accounts(20, seed=11, today=datetime.fromtimestamp(NOW, UTC).date())
    seed(rt.registry, engine, rt.audit, book)
    return Book(rt.runner, rt.registry, rt.gate, book)


def scripted_model(request: dict[str, Any]) -> dict[str, Any]:
    """A well-behaved model: answers each of the three prompts from the data it was sent."""
    data = request_data(request)
    system = str(request["messages"][0]["content"])
    facts = data.get("facts", {})
    if "account-health summary" in system:
        drivers = "; ".join(d["detail"] for d in facts.get("drivers", [])[:2])
        text = f"{facts.get('account')} scores {facts.get('score')}/100. Drivers: {drivers}."
        return {"content": json.dumps({"summary": text})}
    if "Re-rank" in system:
        ranking = [{"kind": c["kind"], "why": f"Model: {c['why']}"} for c in facts["candidates"]]
        return {"content": json.dumps({"ranking": ranking[::-1]})}
    if "short email" in system:
        body = "Hi [[contact_name]],\n\nquick check-in: how is everything going? Thanks!"
        return {"content": json.dumps({"subject": "Checking in", "body": body})}
    return {"status": 500}


def numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)


Responder = Callable[[dict[str, Any]], dict[str, Any]]
