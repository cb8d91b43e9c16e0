"""Declared outcomes: refused whole when wrong (stable codes), written with their audit events, fuzzed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from approvals import Gate
from audit import Query, SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.db.tables import outcomes
from copilot.engine.store import RunStore
from copilot.errors import WorkflowDefinitionError
from copilot.measure.outcomes import OutcomeError, OutcomeRegistry, OutcomeSpec, record_outcomes
from copilot.workflow.registry import Registry
from tests.support.kinds import CATALOG, POLICY

YAML = """
outcomes:
  - name: replied
    description: The customer replied to a message we sent
    polarity: good
  - name: complained
    description: The customer complained about a message
    polarity: bad
    guardrail: {max_increase: 0.005}
  - name: revenue
    description: Expansion revenue booked, in euros
    polarity: good
    kind: number
"""
NOW = 1_800_000_000.0


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outcomes)).scalar_one())


def record(engine: Engine, events: list[dict[str, Any]], tenant: str = "acme") -> int:
    return record_outcomes(
        engine,
        SqlAuditStore(engine),
        OutcomeRegistry.from_yaml(YAML),
        tenant=tenant,
        events=events,
        source="crm",
        clock=lambda: NOW,
    )


def refused(engine: Engine, events: list[dict[str, Any]]) -> OutcomeError:
    with pytest.raises(OutcomeError) as info:
        record(engine, events)
    assert rows(engine) == 0
    return info.value


def test_a_batch_with_any_bad_outcome_is_refused_whole(engine: Engine) -> None:
    undeclared = refused(engine, [{"subject_id": "a", "name": "replied"},
                                  {"subject_id": "b", "name": "loved_it"}])  # fmt: skip
    assert undeclared.code == "outcome.undeclared"
    assert undeclared.details["problems"] == [
        {"index": 1, "name": "loved_it", "problem": "undeclared"}
    ]
    bad = refused(
        engine,
        [
            {"subject_id": "a", "name": "replied", "value": 3},
            {"subject_id": "a", "name": "revenue", "value": float("inf")},
            {"subject_id": "a", "name": "replied", "observed_at": NOW + 3600},
            {"subject_id": "a", "name": "replied", "observed_at": "2027-01-05T10:00:00"},
            {"subject_id": "", "name": "replied"},
            {"subject_id": "a", "name": "replied", "colour": "blue"},
            {"subject_id": "a", "name": "loved_it"},
        ],
    )
    assert bad.code == "outcome.invalid"
    problems = bad.details["problems"]
    assert [p["index"] for p in problems] == [0, 1, 2, 3, 4, 5, 6]
    assert "1 (happened) or 0" in problems[0]["problem"]
    assert "finite" in problems[1]["problem"] and "future" in problems[2]["problem"]
    assert "timezone" in problems[3]["problem"] and "malformed" in problems[4]["problem"]
    assert refused(engine, []).code == "outcome.invalid"
    too_many = [{"subject_id": "a", "name": "replied"}] * 1001
    assert "more than 1000" in str(refused(engine, too_many).details["problems"])


def test_an_accepted_batch_and_its_audit_events_commit_together(engine: Engine) -> None:
    n = record(
        engine,
        [
            {"subject_id": "a", "name": "replied"},
            {"subject_id": "a", "name": "revenue", "value": 1200.5, "observed_at": NOW - 60},
            {"subject_id": "b", "name": "complained",
             "observed_at": datetime.fromtimestamp(NOW - 3600, UTC)},
        ],
    )  # fmt: skip
    assert n == 3 and rows(engine) == 3
    with engine.connect() as conn:
        stored = conn.execute(
            select(outcomes.c.subject_id, outcomes.c.name, outcomes.c.value,
                   outcomes.c.observed_at, outcomes.c.recorded_at).order_by(outcomes.c.id)
        ).all()  # fmt: skip
    assert [tuple(r) for r in stored] == [
        ("a", "replied", 1.0, NOW, NOW),
        ("a", "revenue", 1200.5, NOW - 60, NOW),
        ("b", "complained", 1.0, NOW - 3600, NOW),
    ]
    audit = SqlAuditStore(engine)
    audit.settle("acme")
    events = audit.query("acme", Query(event_type="outcomes.recorded"))
    assert [(e.subject_id, e.data) for e in events] == [
        ("a", {"count": 2, "names": ["replied", "revenue"]}),  # names and counts, never values
        ("b", {"count": 1, "names": ["complained"]}),
    ]
    assert "1200" not in str([e.model_dump() for e in events])


def test_runs_and_actions_named_must_be_the_subjects_own(engine: Engine) -> None:
    audit = SqlAuditStore(engine)
    run, _ = RunStore(engine, audit).create(
        tenant="acme", workflow="next_actions", version="1", subject_id="a",
        inputs={}, idempotency_key=None, triggered_by="app",
    )  # fmt: skip
    other, _ = RunStore(engine, audit).create(
        tenant="globex", workflow="next_actions", version="1", subject_id="a",
        inputs={}, idempotency_key=None, triggered_by="app",
    )  # fmt: skip
    req = Gate(engine, audit, CATALOG, POLICY).submit(
        tenant="acme", workflow="next_actions", kind="post_note",
        payload={"account": "a", "text": "hi"}, confidence=0.9, level="full",
        triggered_by="app", run_id=run.id, subject_id="a",
    )  # fmt: skip
    bad = refused(
        engine,
        [
            {"subject_id": "b", "name": "replied", "run_id": run.id},  # another subject's run
            {"subject_id": "a", "name": "replied", "run_id": other.id},  # another tenant's run
            {"subject_id": "a", "name": "replied", "run_id": "nope"},
            {"subject_id": "b", "name": "replied", "action_id": req.action_id},
            {"subject_id": "a", "name": "replied", "action_id": req.action_id, "run_id": "nope"},
        ],
    )
    assert bad.code == "outcome.invalid"
    assert [p["index"] for p in bad.details["problems"]] == [0, 1, 2, 3, 4, 4]
    ok = [{"subject_id": "a", "name": "replied", "run_id": run.id, "action_id": req.action_id}]
    assert record(engine, ok) == 1


def test_declarations_in_code_and_yaml() -> None:
    reg = OutcomeRegistry.from_yaml(YAML)
    assert [s.name for s in reg.specs()] == ["complained", "replied", "revenue"]
    complained = reg.require("complained")
    assert complained.sign == -1 and reg.require("replied").sign == 1
    guard = complained.as_guardrail()
    assert guard is not None and guard.max_increase == 0.005 and guard.metric == "complained_rate"
    with pytest.raises(OutcomeError) as info:
        reg.require("nps")
    assert info.value.code == "outcome.undeclared" and "complained, replied, revenue" in str(
        info.value
    )
    with pytest.raises(WorkflowDefinitionError, match="guardrail watches a rate"):
        OutcomeRegistry.from_yaml(
            "outcomes: [{name: x, description: d, polarity: good, guardrail: {max_rate: 0.1}}]"
        )
    with pytest.raises(WorkflowDefinitionError, match="declared twice"):
        OutcomeRegistry([reg.require("replied"), reg.require("replied").model_copy(
            update={"description": "else"})])  # fmt: skip
    r = Registry()
    r.register_module(__import__("tests.support.flows", fromlist=["x"]))
    spec = OutcomeSpec(name="renewed", description="Renewed", polarity="good")
    r.outcomes.register(spec)
    assert r.outcomes.get("renewed") == spec


events = st.lists(
    st.fixed_dictionaries(
        {
            "subject_id": st.sampled_from(["a", "b", ""]),
            "name": st.sampled_from(["replied", "complained", "revenue", "nps"]),
        },
        optional={
            "value": st.one_of(st.integers(-2, 2), st.floats(allow_nan=True), st.booleans()),
            "observed_at": st.floats(NOW - 1e6, NOW + 1e4),
        },
    ),
    min_size=1,
    max_size=5,
)


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'f.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=events)
def test_fuzzed_batches_are_written_whole_or_not_at_all(
    fuzz_db: Engine, batch: list[dict[str, Any]]
) -> None:
    before = rows(fuzz_db)
    reg = OutcomeRegistry.from_yaml(YAML)
    try:
        n = record(fuzz_db, batch)
    except OutcomeError as exc:
        assert rows(fuzz_db) == before and exc.code in {"outcome.invalid", "outcome.undeclared"}
        return
    assert n == len(batch) and rows(fuzz_db) == before + n
    for event in batch:
        spec = reg.require(event["name"])  # nothing undeclared got in
        value = event.get("value", 1)
        assert spec.kind == "number" or value in (0, 1)
        assert event.get("observed_at", NOW) <= NOW + 300
