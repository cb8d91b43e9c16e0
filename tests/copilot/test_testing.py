"""`copilot.testing` unit-tests a workflow: signals from a dict, actions recorded, run inline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from copilot.cli.demo_data import accounts
from copilot.engine.executor import Action
from copilot.engine.runs import RunState
from copilot.errors import WorkflowDefinitionError
from copilot.testing import RecordingExecutor, StaticContext, WorkflowHarness
from copilot.workflow.context import StepContext
from copilot.workflow.definition import Workflow
from tests.support import flows
from tests.support.flows import Start


def test_a_static_context_answers_only_the_names_asked_for() -> None:
    context = StaticContext({"acct-1": {"usage_trend": -12.5, "plan_tier": "pro"}}, observed_at=5.0)
    got = context.fetch("any", "acct-1", ["usage_trend", "open_tickets"])
    assert list(got) == ["usage_trend"]
    assert (got["usage_trend"].value, got["usage_trend"].observed_at) == (-12.5, 5.0)
    assert context.fetch("any", "acct-2", ["usage_trend"]) == {}


def test_the_recording_executor_acts_once_per_key() -> None:
    executor = RecordingExecutor()
    action = Action(tenant="t", run_id="r", kind="post_note", payload={}, idempotency_key="k")
    first, again = executor.execute(action), executor.execute(action)
    assert executor.actions == [action] and executor.kinds() == ["post_note"]
    assert (first.replayed, again.replayed, again.status) == (False, True, "done")


def test_a_test_workflow_proposes_waits_and_its_approved_actions_are_recorded() -> None:
    with WorkflowHarness(flows.proposing, flows) as h:
        run = h.run("proposing", "acct-1")
        # Under the default policy the internal note is approved and the email waits; the
        # note acts when the run parks, not after the email's review.
        assert run.state == RunState.WAITING
        assert [(r.kind, r.status) for r in h.gate.of_run(run.id)] == [
            ("post_note", "approved"),
            ("email_customer", "pending"),
        ]
        assert h.executor.kinds() == ["post_note"]
        (email,) = h.pending(run)
        done = h.approve(email)
        assert done.state == RunState.COMPLETED
        assert h.executor.kinds() == ["post_note", "email_customer"]
        assert "run.completed" in h.events(done)


def test_a_built_in_workflow_ranks_actions_from_the_signals_it_is_given() -> None:
    today = datetime.now(UTC).date()
    at_risk = next(a for a in accounts(20, seed=11, today=today)
                   if a.shape == "rich" and a.health == "at_risk")  # fmt: skip
    with WorkflowHarness("workflows.next_actions") as h:
        h.context.put(at_risk.subject_id, **at_risk.signals)
        run = h.run("next_actions", at_risk.subject_id)
        proposed = [r.kind for r in h.gate.of_run(run.id)]
        assert run.level == "full" and proposed[0] == "escalate_to_owner"
        for req in h.pending(run):
            h.reject(req, "not this week")
        assert not set(h.executor.kinds()) & {
            r.kind for r in h.gate.of_run(run.id) if r.status == "rejected"
        }


def test_the_harness_reads_nothing_of_the_deployments_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit test next to a deployment's COPILOT_* variables must not write to its database."""
    deployment = tmp_path / "prod.db"
    monkeypatch.setenv("COPILOT_DATABASE_URL", f"sqlite:///{deployment}")
    monkeypatch.setenv("COPILOT_ACTION_EXECUTORS", "post_note=webhook")
    monkeypatch.setenv("COPILOT_LLM", "openai:gpt-4o-mini")
    with WorkflowHarness(flows.proposing, flows) as h:
        h.run("proposing", "acct-1")
        assert str(deployment) not in str(h.runtime.engine.url)
        assert h.runtime.settings.llm == "none" and h.runtime.action_routes == {}
    assert not deployment.exists()


def test_the_harness_refuses_what_a_worker_would_refuse_at_start_up() -> None:
    """Declared actions are checked as at start-up: an uncatalogued kind fails the harness."""
    sneaky = Workflow("sneaky_harness", "1", input=Start, actions=["no_such_kind"])

    @sneaky.step
    def only(ctx: StepContext, inp: Start) -> Start:
        return inp

    with pytest.raises(WorkflowDefinitionError, match="no_such_kind"):
        WorkflowHarness(sneaky)
