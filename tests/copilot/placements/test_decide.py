"""Decide on SQLite and PostgreSQL: caps, consent, holdout, dismiss, thin context, erasure, the log."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from audit import Actor, Query
from copilot.db.tables import placement_decisions, placement_events
from copilot.erasure import erase_subject
from copilot.governance.consent import Preferences
from copilot.governance.sources import put_signals
from copilot.placements import EventIn
from copilot.placements.store import decision_row, logged
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.support.placements import MODULE

ACTOR = Actor.system("test")


def _race(db_url: str, home: str, placement: str, subject: str, out: Any) -> None:
    """One process: its own runtime and engine (on the migrated database), one decide."""
    rt = Runtime(Settings(database_url=db_url, home=home, placement_modules=MODULE))
    try:
        d = rt.decider.decide("acme", placement, subject)
        out.put(d.item.id if d.item else f"none:{d.why}")
    except Exception as exc:  # reported to the parent, which fails the test
        out.put(f"error:{exc!r}")
    finally:
        rt.close()


def _count(rt: Runtime, table: Any, subject: str) -> int:
    with rt.engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(table.c.subject_id == subject)
        return int(conn.execute(stmt).scalar_one())


def test_caps_hold_under_twenty_concurrent_decides_in_processes(rt: Runtime, sid: str) -> None:
    # Given a daily cap of 3 across placements, when 20 processes decide at once for one subject
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [
        ctx.Process(
            target=_race, args=(rt.settings.database_url, str(rt.settings.home), "t.daily", sid, q)
        )
        for _ in range(20)
    ]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in range(20)]
    for p in procs:
        p.join()
    # Then exactly three are shown and the rest are told the cap
    assert Counter(results) == Counter({"first": 3, "none:cap:per_day:3": 17}), results
    assert _count(rt, placement_decisions, sid) == 20
    # And a security notice bypasses the spent cap; an ordinary placement does not
    assert rt.decider.decide("acme", "t.secure", sid).item is not None
    assert rt.decider.decide("acme", "t.cool", sid).why == "cap:per_day:3"
    rt.audit.settle("acme")
    assert rt.trail.verify("acme").ok


def test_a_cooldown_holds_under_twenty_concurrent_threads(rt: Runtime, sid: str) -> None:
    got: list[str | None] = []
    lock = threading.Lock()

    def one() -> None:
        d = rt.decider.decide("acme", "t.cool", sid)
        with lock:
            got.append(d.item.id if d.item else d.why)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got.count("cool") == 1
    assert all(g is not None and g.startswith("cooldown_until:") for g in got if g != "cool")


@pytest.mark.parametrize("prefs", [{"opt_out_all": True}, {"opt_out_workflows": ("t.steps",)},
                                   {"snooze_until": 4102444800.0}])  # fmt: skip
def test_an_opted_out_or_snoozed_subject_gets_nothing_and_the_reason(
    rt: Runtime, prefs: dict[str, Any], sid: str
) -> None:
    rt.consent.set(Preferences(tenant="acme", subject_id=sid, **prefs), actor=ACTOR)
    d = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0})
    assert d.item is None and d.why is not None and d.why.startswith("consent:")
    assert (
        "opt out" in rt.decider.decide("acme", "t.daily", sid + "-other").explanation
    )  # others unaffected
    explained = rt.decider.explain("acme", "t.steps", sid)
    assert all(any(r.startswith("consent:") for r in c.excluded_by) for c in explained.candidates)


def test_a_snooze_event_silences_the_placement_until_it_ends(rt: Runtime, sid: str) -> None:
    d = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0})
    assert d.item is not None
    rt.placement_events.record(
        "acme", d.decision_id, EventIn(event_id=sid + "e1", kind="snooze"), actor=ACTOR
    )
    again = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0})
    assert again.item is None and again.why is not None and again.why.startswith("snoozed_until:")


def test_a_holdout_subject_always_gets_control(rt: Runtime, sid: str) -> None:
    placement = rt.placements.get("t.held")
    held = [f"{sid}-{i}" for i in range(40) if rt.decider.held(placement, f"{sid}-{i}")]
    free = [f"{sid}-{i}" for i in range(40) if not rt.decider.held(placement, f"{sid}-{i}")]
    assert held and free
    for _ in range(3):
        d = rt.decider.decide("acme", "t.held", held[0], {"t.plan": "trial"})
        assert (d.item, d.holdout, d.why, d.probability) == (None, True, "holdout", 1.0)
    shown = rt.decider.decide("acme", "t.held", free[0], {"t.plan": "trial"})
    assert shown.item is not None and not shown.holdout
    with rt.engine.connect() as conn:  # a holdout decision spends no budget
        row = decision_row(conn, "acme", d.decision_id)
    assert row is not None and row.counted is False and row.holdout is True


def test_a_dismiss_is_honoured_by_the_next_decide(rt: Runtime, sid: str) -> None:
    d = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0})
    assert d.item is not None and d.item.id == "step_one"
    rt.placement_events.record(
        "acme", d.decision_id, EventIn(event_id=sid + "x1", kind="dismiss"), actor=ACTOR
    )
    nxt = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0})
    assert nxt.item is not None and nxt.item.id == "step_two"
    why = {
        c.id: c.excluded_by
        for c in rt.decider.explain("acme", "t.steps", sid, {"t.level": 0}).candidates
    }
    assert why["step_one"][0].startswith("dismissed_until:")


def test_events_are_idempotent_by_event_id(rt: Runtime, sid: str) -> None:
    d = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0})
    first = rt.placement_events.record(
        "acme", d.decision_id, EventIn(event_id=sid + "ev-1", kind="impression"), actor=ACTOR
    )
    again = rt.placement_events.record(
        "acme", d.decision_id, EventIn(event_id=sid + "ev-1", kind="impression"), actor=ACTOR
    )
    assert not first.duplicate and again.duplicate and again.at == first.at
    assert _count(rt, placement_events, sid) == 1
    rt.audit.settle("acme")
    assert len(rt.audit.query("acme", Query(event_type="placement.event", subject_id=sid))) == 1
    from copilot.placements import EventError

    with pytest.raises(EventError) as err:
        rt.placement_events.record(
            "acme", d.decision_id, EventIn(event_id=sid + "ev-1", kind="accept"), actor=ACTOR
        )
    assert err.value.code == "placement.event_conflict"
    assert _count(rt, placement_events, sid) == 1


def test_thin_context_gets_the_safe_default_with_its_reasons(rt: Runtime, sid: str) -> None:
    d = rt.decider.decide("acme", "t.steps", sid)  # no signals at all
    assert d.item is not None and d.item.id == "generic"
    assert d.level == "none" and "missing:t.level" in d.reasons
    why = {c.id: c.excluded_by for c in rt.decider.explain("acme", "t.steps", sid).candidates}
    assert "thin_context:none" in why["step_one"] and why["generic"] == ()


def test_stored_signals_feed_eligibility_and_the_explanation_names_them(
    rt: Runtime, sid: str
) -> None:
    put_signals(
        rt.engine,
        "acme",
        sid,
        {"t.level": 1, "t.flag": True},
        observed_at=rt.decider.clock() - 7200,
    )
    d = rt.decider.decide("acme", "t.steps", sid)
    assert d.item is not None and d.item.id == "step_two"
    assert "t.level (2 h old)" in d.explanation and "rules@1" in d.explanation
    assert "opt out of t.steps" in d.explanation


def test_the_logged_decision_is_what_learning_reads(rt: Runtime, sid: str) -> None:
    d = rt.decider.decide("acme", "t.steps", sid, {"t.level": 0, "t.flag": True})
    with rt.engine.connect() as conn:
        row = decision_row(conn, "acme", d.decision_id)
    assert row is not None
    rec = logged(row)
    assert rec.features == {"t.level": 0, "t.flag": True}
    assert list(rec.candidates) == ["step_one", "step_two", "step_flag", "generic"]
    assert (rec.chosen, rec.propensity, rec.policy, rec.version, rec.holdout) == (
        "step_one",
        1.0,
        "rules",
        "1",
        False,
    )
    rt.audit.settle("acme")
    (entry,) = rt.audit.query(
        "acme", Query(event_type="placement.decided", subject_id=sid, with_personal=True)
    )
    assert entry.data["decision_id"] == d.decision_id and entry.data["candidates"] == list(
        rec.candidates
    )
    assert entry.personal is not None and entry.personal["features"] == rec.features


def test_erasure_removes_the_decisions_personal_parts_and_keeps_the_log_verifiable(
    rt: Runtime, sid: str
) -> None:
    d = rt.decider.decide("acme", "t.held", sid, {"t.plan": "enterprise"})
    other = rt.decider.decide("acme", "t.held", sid + "-kept", {"t.plan": "trial"})
    counts = erase_subject(rt, "acme", sid, actor=ACTOR)
    assert counts["placement_decisions"] == 1
    with rt.engine.connect() as conn:
        row, kept = (
            decision_row(conn, "acme", d.decision_id),
            decision_row(conn, "acme", other.decision_id),
        )
    assert row is not None and json.loads(row.features) == {"erased": True}
    assert row.segment is None and row.explanation == ""
    assert kept is not None and json.loads(kept.features) == {"t.plan": "trial"}
    rt.audit.settle("acme")
    entries = rt.audit.query(
        "acme", Query(event_type="placement.decided", subject_id=sid, with_personal=True)
    )
    assert entries and all(e.erased and e.personal is None for e in entries)
    assert rt.trail.verify("acme").ok
    # And the erased subject is suppressed from then on
    assert rt.decider.decide("acme", "t.held", sid).why == "consent:opted_out:all"
