"""Reviewers hear of pending requests (signed webhook); shadow rules are measured against people."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from approvals import Gate, WebhookNotifier
from audit import SqlAuditStore
from tests.support.kinds import CATALOG, POLICY
from tests.support.receiver import SECRET, Receiver

REVIEWERS = frozenset({"reviewer"})
EMAIL = {"to": "acct-1", "subject": "Check-in", "body": "Hi Ana"}


def submit(gate: Gate, kind: str, payload: dict[str, object]):  # type: ignore[no-untyped-def]
    return gate.submit(
        tenant="acme",
        workflow="w",
        kind=kind,
        payload=payload,
        confidence=0.8,
        level="full",
        triggered_by="app",
        subject_id="acct-1",
    )


def test_a_pending_request_is_announced_signed_and_without_its_payload(
    engine: Engine, receiver: Receiver
) -> None:
    gate = Gate(
        engine,
        SqlAuditStore(engine),
        CATALOG,
        POLICY,
        notifier=WebhookNotifier(receiver.url, SECRET),
    )
    auto = submit(gate, "post_note", {"account": "a", "text": "fine"})
    assert auto.status == "approved" and receiver.seen == []  # nothing for a person to do
    req = submit(gate, "email_customer", EMAIL)
    assert len(receiver.seen) == 1 and receiver.seen[0]["valid"]
    announced = receiver.seen[0]["body"]
    assert announced["approval_id"] == req.id and "payload" not in announced


def test_a_notifier_that_is_down_never_fails_the_proposal(engine: Engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    gate = Gate(
        engine,
        SqlAuditStore(engine),
        CATALOG,
        POLICY,
        notifier=WebhookNotifier(f"http://127.0.0.1:{port}/hook", SECRET),
    )
    assert submit(gate, "email_customer", EMAIL).status == "pending"


def test_shadow_rules_are_scored_against_what_people_decided(engine: Engine) -> None:
    gate = Gate(engine, SqlAuditStore(engine), CATALOG, POLICY)
    small = [submit(gate, "trial_credit", {"account": f"a{i}", "amount": 20}) for i in range(4)]
    for req, decision in zip(small, ["approve", "approve", "approve", "reject"], strict=True):
        gate.decide(
            req.id,
            reviewer="maya",
            roles=REVIEWERS,
            decision=decision,  # type: ignore[arg-type]
            payload_hash=req.payload_hash,
            reason="no" if decision == "reject" else None,
        )
    figures = gate.shadow_agreement("acme")
    assert figures == [{"rule": "shadow-auto-low", "decided": 4, "agreed": 3, "agreement": 0.75}]


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()
