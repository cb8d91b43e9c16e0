"""The stored documents behind the queue: exact after every change the gate makes, never stale.

The queue is served by joining each request's stored JSON (`approval_requests.doc`). These
tests make every kind of change (insert, policy outcomes, votes short of a quorum, reject,
approve, edit, claim, cancel, escalate, expire, execution receipts) and require each stored
document to be byte for byte the request `Gate.get` reads from the columns; a change made
behind the gate's back (a hand-written UPDATE, a vote inserted directly) must leave no
stale document, and the page must still be exact.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from typing import Any

from sqlalchemy import delete, insert, select, text, update

from approvals import ApprovalRequest, Gate
from approvals.queue import QueueQuery
from approvals.tables import requests, votes
from audit import Actor, SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from tests.support.gate import EMAIL, REVIEWERS, Clock, propose
from tests.support.kinds import CATALOG, POLICY

STATUSES = ("pending", "approved", "rejected", "expired", "cancelled", "superseded", None)


def every_change(gate: Gate, clock: Clock) -> dict[str, Any]:
    """Requests in every state, reached by every write path; the interesting ones by name."""
    escalated = propose(gate, "trial_credit", {"account": "acct-1", "amount": 300})
    expired = propose(gate, "email_customer", {**EMAIL, "subject": "old"})
    clock.now += 5 * 3600
    gate.expire_due()  # the credit escalates to admin
    clock.now += 24 * 3600
    gate.expire_due()  # both expire
    propose(gate, "post_note", {"account": "acct-1", "text": "Usage up 12%"})  # policy approves
    gate.submit(
        tenant="acme", workflow="w", kind="no_such_kind", payload={}, confidence=0.5,
        level="full", triggered_by="app",
    )  # fmt: skip
    quorum = propose(gate, "email_customer", {**EMAIL, "attachments": 1})
    half = gate.decide(
        quorum.id, reviewer="maya", roles=REVIEWERS, decision="approve",
        payload_hash=quorum.payload_hash,
    )  # fmt: skip
    rejected = propose(gate, "email_customer", {**EMAIL, "subject": "no"})
    gate.decide(
        rejected.id, reviewer="li", roles=REVIEWERS, decision="reject",
        payload_hash=rejected.payload_hash, reason="too pushy",
    )  # fmt: skip
    credit = propose(gate, "trial_credit", {"account": "acct-1", "amount": 200})
    edited = gate.edit(
        credit.id, reviewer="maya", roles=REVIEWERS, edits={"amount": 900},
        payload_hash=credit.payload_hash,
    )  # fmt: skip
    gate.claim(edited.id, reviewer="li", seconds=60)
    cancelled = propose(gate, "email_customer", {**EMAIL, "subject": "bye"})
    gate.cancel(cancelled.id, reason="opted out", actor=Actor.system("consent"))
    done = propose(gate, "email_customer", {**EMAIL, "subject": "yes"})
    gate.decide(
        done.id, reviewer="li", roles=REVIEWERS, decision="approve",
        payload_hash=done.payload_hash,
    )  # fmt: skip
    gate.record_execution(done.id, ok=False, detail={"error": "smtp down"})
    gate.record_execution(done.id, ok=True, detail={"receipt": "r-1"})
    return {"quorum": half, "edited": edited, "escalated": escalated, "expired": expired}


def stored(gate: Gate) -> dict[str, str | None]:
    with gate.engine.connect() as conn:
        return dict(conn.execute(select(requests.c.id, requests.c.doc)).all())  # type: ignore[arg-type]


def assert_pages_exact(gate: Gate) -> None:
    """Every status's queue, whole and paged by 2, is exactly the requests `get` reads."""
    for status in STATUSES:
        whole = json.loads(gate.queue_page("acme", QueueQuery(status=status, limit=200)))
        assert whole["next_cursor"] is None
        assert whole["items"] == [
            json.loads(gate.get(i["id"]).model_dump_json()) for i in whole["items"]
        ]
        paged, cursor = [], None
        while True:
            page = json.loads(
                gate.queue_page("acme", QueueQuery(status=status, cursor=cursor, limit=2))
            )
            paged += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == whole["items"]


def test_every_change_the_gate_makes_keeps_the_stored_document_exact(
    gate: Gate, clock: Clock
) -> None:
    made = every_change(gate, clock)
    docs = stored(gate)
    statuses = {gate.get(i).status for i in docs}
    assert statuses == {"pending", "approved", "rejected", "expired", "cancelled", "superseded"}
    for request_id, doc in docs.items():
        assert doc == gate.get(request_id).model_dump_json(), request_id
    assert_pages_exact(gate)
    # The queue shows who already approved a request that needs two people.
    (item,) = [
        i
        for i in json.loads(gate.queue_page("acme", QueueQuery(limit=200)))["items"]
        if i["id"] == made["quorum"].id
    ]
    assert item["approvals"] == ["maya"] and item["required_n"] == 2
    assert gate.get(made["escalated"].id).role == "admin"


def test_a_change_behind_the_gates_back_leaves_no_stale_document(gate: Gate, clock: Clock) -> None:
    made = every_change(gate, clock)
    quorum, edited = made["quorum"], made["edited"]
    with gate.engine.begin() as conn:
        conn.execute(
            update(requests).where(requests.c.id == edited.id).values(reason="changed by hand")
        )
        conn.execute(
            insert(votes).values(
                request_id=quorum.id, reviewer="zoe", decision="approve", created_at=clock.now
            )
        )
    docs = stored(gate)
    assert docs[edited.id] is None and docs[quorum.id] is None  # the triggers' doing
    assert sum(d is None for d in docs.values()) == 2
    # A vote moved from one request to another changes both.
    escalated = made["escalated"]
    assert docs[escalated.id] is not None
    with gate.engine.begin() as conn:
        conn.execute(
            update(votes)
            .where(votes.c.request_id == quorum.id, votes.c.reviewer == "zoe")
            .values(request_id=escalated.id)
        )
    assert stored(gate)[escalated.id] is None
    assert_pages_exact(gate)
    with gate.engine.begin() as conn:  # and back, for what follows
        conn.execute(
            update(votes)
            .where(votes.c.request_id == escalated.id, votes.c.reviewer == "zoe")
            .values(request_id=quorum.id)
        )
    assert_pages_exact(gate)  # rendered from the columns instead, the same bytes
    items = {
        i["id"]: i for i in json.loads(gate.queue_page("acme", QueueQuery(limit=200)))["items"]
    }
    assert items[quorum.id]["approvals"] == ["maya", "zoe"]
    assert items[edited.id]["reason"] == "changed by hand"
    # The next change through the gate writes the document again.
    gate.decide(
        quorum.id, reviewer="li", roles=REVIEWERS, decision="approve",
        payload_hash=quorum.payload_hash,
    )  # fmt: skip
    assert stored(gate)[quorum.id] == gate.get(quorum.id).model_dump_json()
    assert gate.get(quorum.id).status == "approved"


def test_truncating_the_votes_leaves_no_document_naming_an_approver(
    gate: Gate, clock: Clock
) -> None:
    made = every_change(gate, clock)
    with gate.engine.begin() as conn:
        if gate.engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE approval_votes"))
        else:  # SQLite has no TRUNCATE: its DELETE without WHERE fires the row triggers
            conn.execute(delete(votes))
    assert stored(gate)[made["quorum"].id] is None
    assert_pages_exact(gate)
    assert gate.get(made["quorum"].id).approvals == []


def test_a_vote_added_while_the_gate_writes_the_document_is_not_lost(
    gate: Gate, clock: Clock
) -> None:
    """Another session adds a vote while the gate holds the request and has read its votes:
    it waits for the gate's commit, then leaves the document NULL, never stale."""
    quorum = propose(gate, "email_customer", {**EMAIL, "attachments": 1})  # needs two
    with gate.engine.begin() as conn:  # behind the gate's back: the document is NULL
        conn.execute(update(requests).where(requests.c.id == quorum.id).values(level="full"))
    check, voter = gate._check_may_decide, None

    def add_vote() -> None:
        with gate.engine.begin() as conn:
            conn.execute(
                insert(votes).values(
                    request_id=quorum.id, reviewer="zoe", decision="approve", created_at=1.0
                )
            )

    def check_then_someone_votes(*args: Any, **kwargs: Any) -> None:
        nonlocal voter
        check(*args, **kwargs)
        voter = threading.Thread(target=add_vote)
        voter.start()
        voter.join(0.5)  # it blocks on the gate's lock until the gate commits
        assert voter.is_alive()

    gate._check_may_decide = check_then_someone_votes  # type: ignore[method-assign]
    gate.decide(
        quorum.id, reviewer="maya", roles=REVIEWERS, decision="approve",
        payload_hash=quorum.payload_hash,
    )  # fmt: skip
    assert voter is not None
    voter.join(30)
    assert gate.get(quorum.id).approvals == ["maya", "zoe"]
    assert stored(gate)[quorum.id] in (None, gate.get(quorum.id).model_dump_json())
    assert_pages_exact(gate)


def test_the_stored_documents_format_is_pinned() -> None:
    """The documents are ApprovalRequest's JSON: if what it serializes changes, the stored
    ones are stale. Then write a migration that sets every approval_requests.doc to NULL
    (they are rendered from the columns until rewritten), and update the digest here."""
    schema = json.dumps(ApprovalRequest.model_json_schema(), sort_keys=True).encode()
    assert hashlib.sha256(schema).hexdigest()[:16] == "f2697cbc4a01046a"  # 0012 rebuilt the documents (principal)


def test_requests_from_before_the_documents_get_theirs_on_upgrade(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, "0010_web_sessions")
        row = {
            "id": "a" * 32, "tenant": "acme", "workflow": "w", "run_id": None,
            "subject_id": "acct-1", "action_id": "b" * 32, "version": 1,
            "kind": "email_customer", "payload": json.dumps(EMAIL), "payload_hash": "0" * 64,
            "risk": "high", "risk_rank": 2, "confidence": 0.5, "level": "full",
            "required_n": 2, "role": "reviewer", "status": "pending", "policy_rule": "high",
            "policy_version": "test@1", "shadow": "[]", "explanation": None,
            "triggered_by": "app", "created_at": 1.5, "updated_at": 1.5, "deadline": 99.25,
        }  # fmt: skip
        with engine.begin() as conn:
            conn.execute(insert(requests), row)
            conn.execute(
                insert(votes).values(
                    request_id=row["id"], reviewer="maya", decision="approve", created_at=2.0
                )
            )
        upgrade(engine)
        gate = Gate(engine, SqlAuditStore(engine), CATALOG, POLICY)
        assert stored(gate)[row["id"]] == gate.get(row["id"]).model_dump_json()
        assert gate.get(row["id"]).approvals == ["maya"]
    finally:
        engine.dispose()


def test_the_pending_summary_counts_the_whole_queue(gate: Gate, clock: Clock) -> None:
    every_change(gate, clock)
    for i in range(5):
        propose(gate, "email_customer", {**EMAIL, "subject": f"more {i}"})
    pending, cursor = [], None
    while True:  # the whole queue, a page of 2 at a time
        page, cursor = gate.queue("acme", cursor=cursor, limit=2)
        pending += page
        if cursor is None:
            break
    summary = gate.pending_summary("acme")
    assert summary.total == len(pending) > 2
    assert summary.by_risk == dict(Counter(r.risk.value for r in pending))
    assert summary.claimed == sum(1 for r in pending if r.claimed_by) == 1
    assert summary.workflows == {r.workflow for r in pending}
    assert summary.kinds == {r.kind for r in pending}
    assert gate.pending_summary("globex").total == 0
