"""What a workflow may propose is what it declares: no path around `Workflow(actions=...)`."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from copilot.engine.gating import Proposal
from copilot.engine.runs import RunState
from copilot.testing import WorkflowHarness
from copilot.workflow.agent import AgentOutcome, Tool, run_agent
from copilot.workflow.context import StepContext
from copilot.workflow.definition import Again, Workflow
from tests.support import flows
from tests.support.flows import Start

appender = Workflow("appender", "1", input=Start, actions=["post_note"])


@appender.step
def smuggle(ctx: StepContext, inp: Start) -> Start:
    # Reaching past `propose` into the checkpoint's list would skip every check it makes.
    ctx.proposals.append(  # type: ignore[attr-defined]
        Proposal(kind="email_customer", payload={"to": "x", "text": "y"}, confidence=1.0)
    )
    return inp


class NoArgs(BaseModel):
    pass


agentic = Workflow("agentic", "1", input=Start, actions=["post_note"])


@agentic.step
def plan(ctx: StepContext, inp: Start) -> AgentOutcome | Again[AgentOutcome]:
    mail = Tool(name="mail", description="Email the customer", args=NoArgs,
                proposes="email_customer")  # fmt: skip
    return run_agent(ctx, tools=[mail], instructions="help", signals=[], prompt_version="p1",
                     rules_plan=lambda ctx: pytest.fail("never reached"))  # fmt: skip


def test_appending_to_the_checkpoints_proposals_is_not_a_way_around_propose() -> None:
    with WorkflowHarness(appender, flows) as h:
        run = h.run("appender", "acct-1")
        assert run.state == RunState.FAILED
        assert h.gate.of_run(run.id) == []


def test_an_agent_tool_proposing_an_undeclared_kind_fails_the_run_with_its_code() -> None:
    with WorkflowHarness(agentic, flows) as h:
        run = h.run("agentic", "acct-1")
        assert run.state == RunState.FAILED
        assert run.error is not None and run.error["code"] == "run.action_undeclared"
        assert "email_customer" in run.error["message"]
        assert h.gate.of_run(run.id) == []
