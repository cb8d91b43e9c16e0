"""Unit tests of the onboarding workflow: the real runner, gate, policy and trail, on a
throwaway SQLite database, with signals from a dict and actions recorded, not sent.

Run them with `pytest test_onboarding.py`, or as a script: `python test_onboarding.py`.
"""

from __future__ import annotations

from copilot.testing import StaticContext, WorkflowHarness


def test_a_person_approves_the_welcome_and_the_owner_note_passes_by_policy() -> None:
    context = StaticContext({"acct-1": {"days_since_signup": 3, "setup_steps_done": 2,
                                        "admin_email": "ada@example.com"}})  # fmt: skip
    with WorkflowHarness("onboarding", context=context) as h:
        run = h.run("onboarding", "acct-1")
        assert run.state == "waiting" and run.level == "full"
        (email,) = h.pending(run)  # the note was auto-approved: internal, low risk
        assert email.kind == "send_welcome_email" and email.payload["to"] == "ada@example.com"
        assert h.executor.kinds() == ["note_account_owner"]  # approved: carried out at once
        run = h.approve(email)
        assert run.state == "completed"
        assert run.result == {"subject_id": "acct-1", "emailed": True, "outcomes": {
            "send_welcome_email": "approved", "note_account_owner": "approved"}}  # fmt: skip
        assert sorted(h.executor.kinds()) == ["note_account_owner", "send_welcome_email"]


def test_a_rejected_welcome_is_never_sent() -> None:
    context = StaticContext({"acct-2": {"days_since_signup": 1, "setup_steps_done": 0,
                                        "admin_email": "bo@example.com"}})  # fmt: skip
    with WorkflowHarness("onboarding", context=context) as h:
        (email,) = h.pending(run := h.run("onboarding", "acct-2"))
        run = h.reject(email, "too early: they signed up yesterday")
        assert run.result is not None and run.result["emailed"] is False
        assert h.executor.kinds() == ["note_account_owner"]


def test_with_thin_context_only_the_internal_note_is_proposed() -> None:
    # No admin_email and no setup count: coverage 2 of 5, so the run is thin, so no customer-facing action.
    context = StaticContext({"acct-3": {"days_since_signup": 40}})
    with WorkflowHarness("onboarding", context=context) as h:
        run = h.run("onboarding", "acct-3")
        assert run.state == "completed" and run.level == "thin"
        assert h.executor.kinds() == ["note_account_owner"]


if __name__ == "__main__":
    for name, test in list(globals().items()):
        if name.startswith("test_"):
            test()
            print("ok", name)
