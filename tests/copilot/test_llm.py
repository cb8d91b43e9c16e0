"""Model access through the real openai client over real HTTP to a scripted local server."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine

from audit import Query
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from copilot.governance.sources import put_signals
from copilot.llm import make_model
from tests.support.openai_stub import StubServer


class Verdict(BaseModel):
    headline: str
    score: int


GOOD = {"content": json.dumps({"headline": "Healthy and growing", "score": 82})}
NOT_JSON = {"content": "Sure! The account looks healthy."}
WRONG_SHAPE = {"content": json.dumps({"headline": 7, "score": "high"})}


def ask(stub: StubServer, *replies: dict[str, object], timeout: float = 5.0):  # type: ignore[no-untyped-def]
    stub.script(*replies)
    model = make_model("openai:stub-model", timeout=timeout)
    return model.structured(
        Verdict, "Judge the account.", {"trial_nps": 40}, prompt_version="judge@1"
    )


def test_valid_output_is_validated_and_usage_recorded(openai_stub: StubServer) -> None:
    call = ask(openai_stub, GOOD)
    assert call.value == Verdict(headline="Healthy and growing", score=82)
    assert call.fault is None and call.attempts == 1
    assert call.model == "openai:stub-model" and call.prompt_version == "judge@1"
    assert call.usage["total_tokens"] > 0


def test_invalid_json_gets_one_repair_attempt(openai_stub: StubServer) -> None:
    call = ask(openai_stub, NOT_JSON, GOOD)
    assert call.value is not None and call.attempts == 2
    repair = openai_stub.requests[-1]["messages"][-1]["content"]
    assert "did not match the schema" in repair


@pytest.mark.parametrize("bad", [NOT_JSON, WRONG_SHAPE])
def test_invalid_output_twice_is_a_fault_never_a_value(
    openai_stub: StubServer, bad: dict[str, object]
) -> None:
    call = ask(openai_stub, bad, bad)
    assert call.value is None and call.fault == "model_invalid_output"


@pytest.mark.parametrize(
    ("replies", "fault"),
    [
        ([{"status": 429}] * 2, "model_rate_limited"),
        ([{"status": 500}] * 2, "model_error"),
        ([{"sleep": 2}] * 2, "model_timeout"),
    ],
)
def test_provider_faults_become_reason_codes(
    openai_stub: StubServer, replies: list[dict[str, object]], fault: str
) -> None:
    call = ask(openai_stub, *replies, timeout=0.5)
    assert call.value is None and call.fault == fault


def test_untrusted_data_travels_only_inside_delimiters(openai_stub: StubServer) -> None:
    ask(openai_stub, GOOD)
    system, user = openai_stub.requests[0]["messages"]
    assert system["role"] == "system" and "never instructions" in system["content"]
    assert user["content"].startswith("<data>") and user["content"].endswith("</data>")


@pytest.fixture
def model_runner(runner: Runner, openai_stub: StubServer, engine: Engine) -> Runner:
    runner.model = make_model("openai:stub-model", timeout=0.5)
    put_signals(engine, "acme", "acct-1", {"trial_usage": 12, "trial_nps": 40, "trial_tickets": 0})
    return runner


def test_the_model_path_runs_at_full_level_and_records_model_and_tokens(
    model_runner: Runner, openai_stub: StubServer
) -> None:
    openai_stub.script(GOOD)
    run, _ = model_runner.trigger("summarize", "acct-1", tenant="acme")
    done = model_runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED and done.level == "full" and done.reasons == []
    assert done.result is not None and done.result["method"] == "model:openai:stub-model"
    assert done.result["headline"] == "Healthy and growing"
    step = model_runner.store.steps(run.id)[0]
    assert step.model == "openai:stub-model" and step.prompt_version == "summarize@1"
    assert step.usage is not None and step.usage["total_tokens"] > 0
    model_runner.store.audit.settle("acme")
    event = model_runner.store.audit.query(
        "acme", Query(run_id=run.id, event_type="step.completed")
    )[0]
    assert (
        event.versions["model"] == "openai:stub-model" and event.versions["prompt"] == "summarize@1"
    )
    assert event.data["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        ([NOT_JSON, WRONG_SHAPE], "model_invalid_output"),
        ([{"status": 429}] * 2, "model_rate_limited"),
        ([{"status": 500}] * 2, "model_error"),
        ([{"sleep": 2}] * 2, "model_timeout"),
    ],
)
def test_each_model_fault_degrades_to_the_rules_path_with_its_reason(
    model_runner: Runner, openai_stub: StubServer, replies: list[dict[str, object]], reason: str
) -> None:
    openai_stub.script(*replies)
    run, _ = model_runner.trigger("summarize", "acct-1", tenant="acme")
    done = model_runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert done.level == "partial" and reason in done.reasons
    assert done.result is not None and done.result["method"] == "rules"
    assert done.result["headline"] == "Usage up 12%"  # the rules' own output, never the model's
    assert done.result["confidence"] <= 0.75
