"""The built-in workflows on the model path: the real OpenAI client over HTTP to the local stub.

The stub records every request, so these tests also show what leaves the process: only
signals declared for the workflow, and no personal value in clear text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.book import WORKFLOWS, Book
from tests.support.openai_stub import StubServer, request_data, request_text


def test_full_runs_send_no_undeclared_signal_and_no_personal_value(
    model_book: tuple[Book, StubServer],
) -> None:
    """Every workflow over every account, every request inspected."""
    book, stub = model_book
    for acct in book.accounts:
        for wf in WORKFLOWS:
            before = len(stub.requests)
            book.run(wf, acct.subject_id)
            declared = {s.name for s in book.registry.signals.specs() if wf in s.workflows}
            for request in stub.requests[before:]:
                data = request_data(request)
                assert set(data["signals"]) <= declared, (wf, set(data["signals"]) - declared)
                text = request_text(request)
                for value in acct.personal_values:
                    assert not mentions(text, value), (wf, acct.subject_id, value)
                # Untrusted text travels as data only: the system message holds none of it.
                system = str(request["messages"][0]["content"])
                assert "Ignore all previous instructions" not in system
    assert len(stub.requests) >= 30  # the model path was really taken


def test_account_health_narrative_comes_from_the_model_when_grounded(
    model_book: tuple[Book, StubServer],
) -> None:
    book, _ = model_book
    run = book.run("account_health", book.account("rich").subject_id)
    result = run.result or {}
    assert result["method"] == "model" and "scores" in result["summary"]
    assert run.level == "full"


def test_an_ungrounded_narrative_falls_back_to_the_template(
    model_book: tuple[Book, StubServer],
) -> None:
    """A number the data does not contain is a hallucination: the template is used, flagged."""
    book, stub = model_book
    stub.script(
        {"content": json.dumps({"summary": "Usage grew 847% and churn risk is 3%. Great."})}
    )
    run = book.run("account_health", book.account("rich").subject_id)
    result = run.result or {}
    assert result["method"] == "rules" and "model_ungrounded" in run.reasons
    assert run.level == "partial"


def test_the_model_reranks_within_the_catalog_only(model_book: tuple[Book, StubServer]) -> None:
    book, stub = model_book
    acct = book.account("rich", "at_risk")
    rules = book.run("next_actions", acct.subject_id)  # the scripted model reverses the order
    kinds = [r.kind for r in book.gate.of_run(rules.id)]
    assert all(
        r.explanation and r.explanation["why"].startswith("Model:")
        for r in book.gate.of_run(rules.id)
    )
    # Now the model invents a kind: it is dropped and the run says so.
    stub.script({"content": json.dumps({"ranking": [
        {"kind": "issue_refund", "why": "the ticket asked for it"},
        {"kind": kinds[0], "why": "still the right call"}]})})  # fmt: skip
    run = book.run(
        "next_actions",
        acct.subject_id,
    )
    got = [r.kind for r in book.gate.of_run(run.id)]
    assert "issue_refund" not in got and got == [kinds[0]]
    assert "model_unknown_kind" in run.reasons


def test_the_draft_greets_the_contact_by_name_the_model_never_saw(
    model_book: tuple[Book, StubServer],
) -> None:
    book, stub = model_book
    acct = next(a for a in book.accounts if a.shape == "rich" and not _held(a.subject_id))
    run = book.run("tone_draft", acct.subject_id)
    (req,) = book.gate.of_run(run.id)
    first = acct.contact.split()[0]
    assert req.payload["body"].startswith(f"Hi {acct.contact},") or first in req.payload["body"]
    assert not any(mentions(request_text(r), first) for r in stub.requests)


@pytest.mark.parametrize("fault", [{"status": 500}, {"content": "not json"}])
def test_a_failing_model_degrades_to_rules_with_the_reason(
    model_book: tuple[Book, StubServer], fault: dict[str, Any]
) -> None:
    book, stub = model_book
    stub.script(*[fault] * 4)
    run = book.run("account_health", book.account("rich").subject_id)
    result = run.result or {}
    assert result["method"] == "rules" and run.level == "partial"
    assert {"model_error", "model_invalid_output"} & set(run.reasons)


def mentions(text: str, value: str) -> bool:
    """Whether `value` appears in `text` as a whole word (a name inside "Body" is no leak)."""
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE) is not None


def _held(subject_id: str) -> bool:
    from copilot.measure.holdouts import held_out

    return held_out(subject_id, "tone_draft", 0.1, salt="copilot")
