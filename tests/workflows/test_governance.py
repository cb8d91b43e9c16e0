"""Governance over the built-in workflows: consent, retention, erasure, visibility.

On SQLite and PostgreSQL; every scenario ends with the audit trail verifying.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, MetaData, select

from approvals import ApprovalConflictError
from audit import Actor, Query, Trail
from copilot.db.tables import signals
from copilot.engine.runs import RunState
from copilot.erasure import erase_subject
from copilot.governance.access import audit_view, may_see, signal_view
from copilot.governance.consent import Preferences
from copilot.governance.retention import PURGED_EVENT, purge
from copilot.governance.signals import Sensitivity
from tests.support.book import NOW, Book


def verified(book: Book) -> None:
    verdict = Trail(book.runner.store.audit).verify("t1")
    assert verdict.ok, verdict


def treated(book: Book, workflow: str, shape: str = "rich") -> str:
    from copilot.measure.holdouts import held_out

    return next(
        a.subject_id
        for a in book.accounts
        if a.shape == shape and not held_out(a.subject_id, workflow, 0.1, salt="copilot")
    )


class _Runtime:
    """The parts of a Runtime that erasure uses, over the book's database."""

    def __init__(self, book: Book) -> None:
        self.runs = book.runner.store
        self.gate = book.gate
        self.engine = book.runner.store.engine
        self.audit = book.runner.store.audit
        self.consent = book.runner.consent


def test_an_opted_out_subject_gets_no_run_and_it_is_audited(book: Book) -> None:
    subject = treated(book, "tone_draft")
    book.runner.consent.set(  # type: ignore[union-attr]
        Preferences(tenant="t1", subject_id=subject, opt_out_workflows=("tone_draft",)),
        actor=Actor.human("app:crm"),
    )
    run = book.run("tone_draft", subject)
    assert run.state == RunState.SKIPPED and run.reasons == ["opted_out:tone_draft"]
    assert book.gate.of_run(run.id) == []
    assert book.run("account_health", subject).state == RunState.COMPLETED  # only that one
    events = book.runner.store.audit.query("t1", Query(run_id=run.id))
    assert [e.event_type for e in events] == ["run.created"]
    assert events[0].data["reason"] == "opted_out:tone_draft"
    verified(book)


def test_opting_out_while_a_draft_waits_means_it_is_never_sent(book: Book) -> None:
    subject = treated(book, "tone_draft")
    run = book.run("tone_draft", subject)
    (req,) = book.gate.of_run(run.id)
    assert req.status == "pending"
    book.runner.consent.set(  # type: ignore[union-attr]
        Preferences(tenant="t1", subject_id=subject, opt_out_all=True), actor=Actor.human("app")
    )
    book.decide(req, "approve")
    done = book.runner.run_inline(run.id)
    (after,) = book.gate.of_run(run.id)
    assert after.status == "cancelled" and "consent withdrawn" in (after.reason or "")
    assert done.state == RunState.COMPLETED and (done.result or {})["sent_body"] is None
    with book.runner.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar() == 0
    verified(book)


def test_retention_purges_expired_values_and_audits_counts_only(book: Book) -> None:
    engine = book.runner.store.engine
    audit = book.runner.store.audit
    subject = book.account("rich").subject_id
    book.registry.signals.ingest(engine, audit, tenant="t1", subject_id=subject,
                                 values={"usage_trend": -3.5, "nps": 4}, source="old export",
                                 observed_at=NOW - 400 * 86400)  # fmt: skip
    with engine.begin() as conn:  # a value whose declaration has since been withdrawn
        conn.execute(signals.insert().values(tenant="t1", subject_id=subject, name="shoe_size",
                                             value="44", observed_at=NOW, source="legacy"))  # fmt: skip
    assert "(undeclared)" not in purge(engine, audit, book.registry.signals, now=NOW - 10**9)["t1"]
    report = purge(engine, audit, book.registry.signals, now=NOW, undeclared=True)
    # usage_trend keeps 90 days, nps 365: both old values go, the fresh ones stay.
    assert report["t1"] == {"usage_trend": 1, "nps": 1, "(undeclared)": 1}
    assert purge(engine, audit, book.registry.signals, now=NOW, undeclared=True) == {"t1": {}}
    with engine.connect() as conn:
        left = (
            conn.execute(select(signals.c.name).where(signals.c.subject_id == subject))
            .scalars()
            .all()
        )
    assert "usage_trend" in left and "shoe_size" not in left
    audit.settle("t1")  # an append that found the chain busy was queued: chain it first
    (event,) = audit.query("t1", Query(event_type=PURGED_EVENT, with_personal=True))
    assert event.data["counts"] == report["t1"] and "-3.5" not in json.dumps(event.data)
    assert event.personal is None
    verified(book)


def _everything(engine: Engine) -> str:
    """Every row of every table, as text (to search for what must be gone)."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return json.dumps(
            {
                t.name: [list(map(str, r)) for r in conn.execute(t.select())]
                for t in meta.sorted_tables
            }
        )


def test_erasure_forgets_the_subject_everywhere_and_the_trail_verifies(book: Book) -> None:
    acct = next(a for a in book.accounts if a.subject_id == treated(book, "tone_draft"))
    health = book.run("account_health", acct.subject_id)
    draft = book.run("tone_draft", acct.subject_id)
    (pending,) = book.gate.of_run(draft.id)
    assert health.state == RunState.COMPLETED and pending.status == "pending"
    engine = book.runner.store.engine
    assert acct.email in _everything(engine)

    counts = erase_subject(_Runtime(book), "t1", acct.subject_id, actor=Actor.human("dpo"))  # type: ignore[arg-type]

    assert counts["runs_cancelled"] == 1 and counts["approvals_cancelled"] == 1
    assert counts["signals"] == len(acct.signals) and counts["audit_payloads"] >= 1
    dump = _everything(engine)
    for value in (acct.email, acct.contact):  # unique to this account in the book
        assert value not in dump, value
    try:
        book.decide(pending, "approve")
        raise AssertionError("an erased subject's draft was approvable")
    except ApprovalConflictError:
        pass
    verified(book)
    # The suppression record keeps an erased subject from being personalized again.
    again = book.run("account_health", acct.subject_id)
    assert again.state == RunState.SKIPPED


def test_visibility_by_role_and_grant(book: Book) -> None:
    values = {"contact_email": "ana@x.example", "plan_tier": "growth", "mystery": 1}
    reg = book.registry.signals
    assert signal_view(values, reg, "reviewer")["contact_email"] == "ana@x.example"
    auditor = signal_view(values, reg, "auditor")
    assert auditor == {"contact_email": "[redacted:personal]", "plan_tier": "growth",
                       "mystery": "[redacted:special]"}  # fmt: skip
    granted = signal_view(values, reg, "auditor", grants={"personal"})
    assert granted["contact_email"] == "ana@x.example"
    assert not may_see("admin", Sensitivity.SPECIAL)
    assert may_see("admin", Sensitivity.SPECIAL, grants={"special"})
    entry = {"seq": 3, "hash": "ab", "commitment": "cd", "personal": {"payload": {"to": "x"}}}
    hidden = audit_view(entry, "auditor")
    assert hidden["personal"] == "[redacted:personal]" and hidden["commitment"] == "cd"
    assert audit_view(entry, "auditor", grants={"personal"}) == entry
    assert audit_view(entry, "reviewer") == entry
