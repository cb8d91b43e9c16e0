"""Policy and ladder surprises a newcomer hit (issue 19, points 6 and 7), on both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from copilot import StepContext, Workflow
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from copilot.errors import ConfigError, WorkflowDefinitionError
from copilot.governance.sources import put_signals
from copilot.workflow.definition import SignalNeed
from copilot.workflow.registry import Registry
from tests.support import flows
from tests.support.flows import Plan, Start
from tests.support.kinds import POLICY
from tests.support.runtime import build_runtime

EMAIL = {"to": "acct-1", "subject": "Check-in", "body": "Hi Ana, a quick call?"}

# A workflow whose required signal is missing (its other one is there): it runs at `thin`.
thin_mail = Workflow(
    "thin_mail", "1", input=Start, actions=["post_note", "email_customer"],
    signals=[SignalNeed(name="trial_usage", required=True, freshness=timedelta(days=7)),
             SignalNeed(name="trial_nps", freshness=timedelta(days=7))],
)  # fmt: skip


@thin_mail.step
def mail(ctx: StepContext, inp: Start) -> Plan:
    sent = ctx.propose("email_customer", EMAIL, confidence=0.8)
    ctx.propose("post_note", {"account": inp.subject_id, "text": "check in"}, confidence=0.9)
    return Plan(subject_id=inp.subject_id, proposals=0 if sent is None else 1)


misread = Workflow("misread", "1", input=Start, signals=[SignalNeed(name="trial_nps")])


@misread.step
def read(ctx: StepContext, inp: Start) -> Plan:
    name = "trial_" + "nsp"  # built at run time: no start-up check can see it
    return Plan(subject_id=inp.subject_id, proposals=int(ctx.value(name, 0)))


@pytest.fixture
def ladder(engine: Engine, tmp_path: Path) -> Iterator[Runner]:
    registry = Registry()
    registry.register_module(flows)
    registry.register(thin_mail)
    registry.register(misread)
    rt = build_runtime(engine, tmp_path, woken=[], registry=registry, policy=POLICY)
    put_signals(engine, "acme", "acct-1", {"trial_nps": 40})
    yield rt.runner
    rt.runs.close()


def test_point6_a_policy_file_auto_approving_customer_kinds_without_allow_customer_is_refused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A rule that would auto-approve `email_customer` but lacks allow_customer used to
    become "one reviewer" silently; now the policy file is refused at load, with the fix."""
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - id: low-anything\n    when: {risk_at_most: low}\n"
                    "    then: {action: auto_approve}\n")  # fmt: skip
    rt = build_runtime(sqlite_url, tmp_path, policy_path=path)
    with pytest.raises(ConfigError, match=r"rule 'low-anything' auto-approves .*email_customer") as e:
        rt.policy  # noqa: B018 - built at start-up (Runtime.check_startup)
    assert "allow_customer: true" in e.value.message and e.value.code == "config.invalid"
    rt.close()
    path.write_text(path.read_text().replace("{risk_at_most: low}", "{risk_at_most: low, "
                                             "reaches_customer: false}"))  # fmt: skip
    rt = build_runtime(sqlite_url, tmp_path, policy_path=path)
    assert rt.policy.rules[0].id == "low-anything"
    rt.close()


def test_point6_an_auto_approved_action_acts_while_the_run_waits_for_a_person(
    runner: Runner,
) -> None:
    """`proposing` proposes a note (auto-approved) and an email (a person decides) in one
    step: the note is carried out when the run parks, not after the email's review."""
    run, _ = runner.trigger("proposing", "acct-1", tenant="acme", triggered_by="app:crm")
    waited = runner.run_inline(run.id)
    assert waited.state == RunState.WAITING
    assert runner.gate is not None
    by_kind = {r.kind: r for r in runner.gate.of_run(run.id)}
    assert (by_kind["post_note"].status, by_kind["post_note"].execution_status) == ("approved", "done")
    assert by_kind["email_customer"].status == "pending"


def test_point7_a_customer_facing_proposal_at_thin_is_skipped_with_a_reason_not_a_failure(
    ladder: Runner,
) -> None:
    run, _ = ladder.trigger("thin_mail", "acct-1", tenant="acme", triggered_by="app:crm")
    done = ladder.run_inline(run.id)
    assert done.state == RunState.COMPLETED, done.error
    assert done.level == "thin" and "restricted:email_customer" in done.reasons
    assert ladder.gate is not None
    assert [r.kind for r in ladder.gate.of_run(run.id)] == ["post_note"]  # the internal one only


def test_point7_ctx_value_refuses_an_undeclared_name(ladder: Runner) -> None:
    run, _ = ladder.trigger("misread", "acct-1", tenant="acme", triggered_by="app:crm")
    failed = ladder.run_inline(run.id)
    assert failed.state == RunState.FAILED and failed.error is not None
    assert failed.error["code"] == "run.undeclared_signal"
    assert "'trial_nsp', which it does not declare (declared: trial_nps)" in failed.error["message"]


def test_point7_kind_and_signal_typos_in_a_step_are_found_at_start_up() -> None:
    typo = Workflow("typo", "1", input=Start, actions=["email_customer"],
                    signals=[SignalNeed(name="trial_usage")])  # fmt: skip

    @typo.step
    def send(ctx: StepContext, inp: Start) -> Plan:
        if ctx.value("trial_usage"):
            ctx.propose("emial_customer", EMAIL, confidence=0.8)
        return Plan(subject_id=inp.subject_id, proposals=1)

    registry = Registry()
    registry.register_module(flows)
    registry.register(typo)
    with pytest.raises(WorkflowDefinitionError, match=r"step 'send' \(line \d+\) proposes "
                       r"'emial_customer', which it does not declare") as info:  # fmt: skip
        registry.check_literals()
    assert info.value.code == "workflow.invalid"
