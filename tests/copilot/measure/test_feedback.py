"""Reviewer feedback derived from the gate: decisions, edit distance, reason categories, timing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from approvals import Gate
from audit import SqlAuditStore
from audit.db import readonly
from copilot.measure.feedback import edit_distance, levenshtein, read_feedback, reason_category
from tests.support.kinds import CATALOG, POLICY


def reference(a: str, b: str) -> int:
    """The textbook dynamic programme, no shortcuts."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb)))
        rows.append(row)
    return rows[-1][-1]


@given(st.text(alphabet='abc{}":', max_size=25), st.text(alphabet='abc{}":', max_size=25))
def test_levenshtein_matches_the_textbook_programme(a: str, b: str) -> None:
    assert levenshtein(a, b) == reference(a, b) == levenshtein(b, a)


def test_edit_distance_is_normalized_over_canonical_json() -> None:
    same = {"b": 1, "a": "x"}
    assert edit_distance(same, {"a": "x", "b": 1}) == 0.0  # key order is not an edit
    small = edit_distance({"subject": "Checking in"}, {"subject": "Checking in!"})
    big = edit_distance({"subject": "Checking in"}, {"subject": "Renewal offer, 20% off"})
    assert 0 < small < big <= 1


def test_reasons_fall_into_categories() -> None:
    assert reason_category("Wrong account owner") == "inaccurate"
    assert reason_category("too pushy for a first contact") == "tone"
    assert reason_category("Too soon after the last call") == "timing"
    assert reason_category("We already sent this") == "duplicate"
    assert reason_category("meh") == "other"
    assert reason_category("  ") is None
    assert reason_category("meh", {"mood": ("meh",)}) == "mood"


def test_feedback_per_action_follows_its_versions(engine: Engine) -> None:
    now = [1_800_000_000.0]
    gate = Gate(engine, SqlAuditStore(engine), CATALOG, POLICY, clock=lambda: now[0])

    def email(subject: str) -> str:
        req = gate.submit(tenant="acme", workflow="w", kind="email_customer",
                          payload={"to": "a", "subject": subject, "body": "Hello"},
                          confidence=0.8, level="partial", triggered_by="app", run_id="r1",
                          subject_id="a")  # fmt: skip
        return req.id

    who = {"reviewer": "maya", "roles": {"reviewer"}}
    kept, changed, refused, waiting = (email(s) for s in ("one", "two", "three", "four"))
    now[0] += 30
    gate.decide(kept, decision="approve", payload_hash=gate.get(kept).payload_hash, **who)
    now[0] += 30
    gate.edit(changed, edits={"subject": "TWO"}, payload_hash=gate.get(changed).payload_hash, **who)
    gate.decide(refused, decision="reject", reason="Wrong person",
                payload_hash=gate.get(refused).payload_hash, **who)  # fmt: skip
    gate.submit(tenant="acme", workflow="w", kind="post_note", payload={"account": "a",
                "text": "x"}, confidence=0.9, level="full", triggered_by="app")  # fmt: skip
    with readonly(engine.connect()) as conn:
        found = {f.action_id: f for f in read_feedback(conn, "acme")}
    by_id = {gate.get(i).action_id: i for i in (kept, changed, refused, waiting)}
    decisions = {by_id.get(a, "note"): f.decision for a, f in found.items()}
    assert decisions == {kept: "approved", changed: "edited", refused: "rejected",
                         waiting: "pending", "note": "auto_approved"}  # fmt: skip
    fb = {by_id.get(a, "note"): f for a, f in found.items()}
    assert fb[kept].seconds_to_decision == 30 and fb[changed].seconds_to_decision == 60
    assert fb[changed].versions == 2 and fb[changed].fields_changed == ["subject"]
    assert fb[changed].edit_distance is not None and 0 < fb[changed].edit_distance < 0.1
    assert (fb[refused].reason_category, fb[kept].reason_category) == ("inaccurate", None)
    assert fb[waiting].seconds_to_decision is None and fb["note"].seconds_to_decision is None
    assert fb[kept].level == "partial" and fb[kept].shadow == []
