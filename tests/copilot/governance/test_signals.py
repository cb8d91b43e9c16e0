"""Declared signals: validated at start-up, refused whole when wrong, fuzzed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from audit import Query, SqlAuditStore
from audit.db import create_engine
from copilot import StepContext
from copilot.db.engines import upgrade
from copilot.db.tables import signals
from copilot.errors import WorkflowDefinitionError
from copilot.governance.signals import SignalError, SignalRegistry
from copilot.workflow.definition import SignalNeed, Workflow
from copilot.workflow.registry import Registry
from tests.support import flows
from tests.support.cli import cli

YAML = """
signals:
  - name: trial_usage
    description: Week-over-week change in active usage, percent
    purpose: account health
    type: number
    sensitivity: internal
    retention: P90D
    source: product analytics
    workflows: [summarize]
  - name: trial_renewal
    description: Next renewal date
    purpose: next actions
    type: date
    sensitivity: internal
    retention: P400D
    source: billing
    workflows: [summarize]
  - name: last_message
    description: The customer's last message
    purpose: tone-matched drafts
    type: text
    sensitivity: personal
    retention: P30D
    source: helpdesk
    max_length: 500
"""


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(signals)).scalar_one())


def test_a_batch_with_any_bad_signal_is_refused_whole(engine: Engine) -> None:
    reg = SignalRegistry.from_yaml(YAML)
    audit = SqlAuditStore(engine)
    with pytest.raises(SignalError) as info:
        reg.ingest(
            engine,
            audit,
            tenant="acme",
            subject_id="a",
            source="crm",
            values={"trial_usage": 12.5, "favourite_colour": "blue"},
        )
    assert info.value.code == "signal.undeclared" and rows(engine) == 0
    with pytest.raises(SignalError) as info:
        reg.ingest(
            engine,
            audit,
            tenant="acme",
            subject_id="a",
            source="crm",
            values={"trial_usage": "lots", "trial_renewal": "soon", "last_message": "x" * 501},
        )
    assert info.value.code == "signal.invalid"
    assert [p["signal"] for p in info.value.details["problems"]] == [
        "trial_usage",
        "trial_renewal",
        "last_message",
    ]
    assert rows(engine) == 0
    n = reg.ingest(
        engine,
        audit,
        tenant="acme",
        subject_id="a",
        source="crm",
        values={"trial_usage": 12.5, "trial_renewal": "2027-03-01", "last_message": "Hi!"},
    )
    assert n == 3 and rows(engine) == 3
    audit.settle("acme")
    event = audit.query("acme", Query(event_type="signals.ingested"))[0]
    assert event.data == {
        "count": 3,
        "names": ["last_message", "trial_renewal", "trial_usage"],
    }  # never values


def test_an_undeclared_name_is_answered_with_the_closest_declared_one(engine: Engine) -> None:
    reg = SignalRegistry.from_yaml(YAML)
    with pytest.raises(SignalError) as info:
        reg.ingest(
            engine,
            SqlAuditStore(engine),
            tenant="acme",
            subject_id="a",
            source="crm",
            values={"trial_usge": 1.0, "shoe_size": 42},
        )
    assert info.value.code == "signal.undeclared"
    assert info.value.details["problems"] == [
        {"signal": "trial_usge", "problem": "undeclared", "did_you_mean": "trial_usage"},
        {"signal": "shoe_size", "problem": "undeclared"},
    ]
    assert "'trial_usge': undeclared (did you mean 'trial_usage'?)" in info.value.message
    assert "'shoe_size': undeclared;" not in info.value.message and rows(engine) == 0


def test_workflows_reading_undeclared_signals_are_refused_at_start_up() -> None:
    r = Registry()
    r.register_module(flows)
    r.check_signals()  # flows declares what summarize reads
    bare = Registry([flows.summarize])
    with pytest.raises(
        WorkflowDefinitionError, match="summarize reads 'trial_usage', which is not declared"
    ):
        bare.check_signals()
    narrow = Registry([flows.summarize])
    for spec in SignalRegistry.from_yaml(YAML).specs():
        narrow.signals.register(spec.model_copy(update={"workflows": ("other",)}))
    with pytest.raises(WorkflowDefinitionError, match="declared only for"):
        narrow.check_signals()


def test_a_declaration_granting_a_workflow_a_signal_it_does_not_read_is_refused() -> None:
    """The two halves agree: a SignalSpec's workflows read it (a SignalNeed), and vice versa."""
    r = Registry()
    r.register_module(flows)
    over = SignalRegistry.from_yaml(YAML).get("trial_renewal")  # summarize does not read it
    assert over is not None and over.workflows == ("summarize",)
    r.signals.register(over)
    with pytest.raises(WorkflowDefinitionError) as caught:
        r.check_signals()
    assert "'trial_renewal' is declared for summarize, which does not read it" in str(caught.value)
    assert caught.value.code == "workflow.invalid"
    assert caught.value.details["problems"] == [
        "'trial_renewal' is declared for summarize, which does not read it (no "
        "SignalNeed(name='trial_renewal'), no trigger of it watches it): drop 'summarize' "
        "from its workflows or add the SignalNeed"
    ]
    # A declaration may name a workflow this deployment does not register.
    elsewhere = Registry()
    elsewhere.register_module(flows)
    elsewhere.signals.register(over.model_copy(update={"workflows": ("another_deployment",)}))
    elsewhere.check_signals()


def test_every_registered_version_of_a_workflow_counts_as_its_reads() -> None:
    """v1 still runs (pinned runs resume on it), so what v1 reads must be declared too."""
    v2 = Workflow("summarize", "2", input=flows.Start, signals=[
        SignalNeed(name="trial_usage", freshness=timedelta(days=7))])  # fmt: skip
    v2.step(_noop)
    undeclared = Workflow("summarize", "3", input=flows.Start)
    undeclared.step(_noop)
    r = Registry([flows.summarize, v2])
    for spec in flows.SIGNALS.specs():
        r.signals.register(spec)
    r.check_signals()  # trial_nps and trial_tickets are read by v1: no over-grant
    v1 = Workflow("summarize", "1", input=flows.Start, signals=[SignalNeed(name="trial_secret")])
    v1.step(_noop)
    bare = Registry([v1, undeclared])
    with pytest.raises(WorkflowDefinitionError, match="summarize reads 'trial_secret'"):
        bare.check_signals()


def _noop(ctx: StepContext, inp: flows.Start) -> flows.Start:
    return inp


def test_signals_list_is_the_document_a_privacy_reviewer_reads(tmp_path: Path) -> None:
    (tmp_path / "signals.yaml").write_text(YAML)
    out = cli(
        tmp_path, "signals", "list", "--json", COPILOT_SIGNALS_PATH=str(tmp_path / "signals.yaml")
    )
    doc = {s["name"]: s for s in json.loads(out.stdout)}
    # The YAML's declarations beside the built-in workflows' own (from their entry points).
    assert {"last_message", "trial_renewal", "trial_usage", "contact_email"} <= set(doc)
    assert doc["last_message"]["sensitivity"] == "personal"
    assert doc["last_message"]["purpose"] == "tone-matched drafts"
    assert doc["contact_email"]["workflows"] == ["next_actions", "tone_draft", "save_plan"]
    bad = cli(tmp_path, "signals", "list", COPILOT_SIGNALS_PATH=str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and "COPILOT_SIGNALS_PATH" in bad.stderr


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=600),
    st.dates().map(lambda d: d.isoformat()),
)
batches = st.dictionaries(
    st.sampled_from(["trial_usage", "trial_renewal", "last_message", "trial_nps", "x"]),
    values,
    min_size=1,
    max_size=4,
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
@given(batch=batches)
def test_fuzzed_ingestion_never_accepts_a_violation_or_half_writes(
    fuzz_db: Engine, batch: dict[str, Any]
) -> None:
    reg = SignalRegistry.from_yaml(YAML)
    before = rows(fuzz_db)
    try:
        n = reg.ingest(
            fuzz_db,
            SqlAuditStore(fuzz_db),
            tenant="fuzz",
            subject_id="s",
            values=batch,
            source="fuzz",
        )
    except SignalError:
        assert rows(fuzz_db) == before  # refused: nothing written
        return
    assert n == len(batch) and rows(fuzz_db) == before + n  # accepted: everything written
    for name, value in batch.items():
        spec = reg.get(name)
        assert spec is not None and spec.accepts(value)  # nothing undeclared, nothing mistyped
