"""Gate test helpers: a clock the tests move, and a proposal with the usual fields."""

from __future__ import annotations

from typing import Any

from approvals import ApprovalRequest, Gate


class Clock:
    """A clock that stands still until a test moves `now`."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


REVIEWERS = frozenset({"reviewer"})


def propose(gate: Gate, kind: str, payload: dict[str, Any], **kw: Any) -> ApprovalRequest:
    """Submit `payload` as acme's run-1 on acct-1 would (keywords override the rest)."""
    return gate.submit(
        tenant="acme",
        workflow="next_actions",
        kind=kind,
        payload=payload,
        confidence=0.8,
        level="full",
        triggered_by=kw.pop("triggered_by", "app:crm"),
        run_id="run-1",
        subject_id="acct-1",
        **kw,
    )


EMAIL = {"to": "acct-1", "subject": "Check-in", "body": "Hi Ana, shall we talk on Tuesday?"}
