"""An approval policy in Python: ordered rules, the first that matches decides.

Checked here against the onboarding workflow, then written as the YAML file a deployment
reads (`COPILOT_POLICY_PATH`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from approvals import Match, Outcome, Policy, Risk, Rule
from copilot.testing import StaticContext, WorkflowHarness

POLICY = Policy(
    version="acme@1",  # recorded with every decision it makes
    rules=[
        # Internal, low-risk actions need nobody.
        Rule(id="low-risk-internal", when=Match(risk_at_most=Risk.LOW, reaches_customer=False),
             then=Outcome(action="auto_approve")),
        # Two reviewers for anything customer-facing proposed on partial context.
        Rule(id="partial-customer", when=Match(reaches_customer=True, level_in=["partial"]),
             then=Outcome(action="require", n=2, role="reviewer")),
        # Would auto-approving the welcome email work? Recorded beside people's decisions
        # (`copilot approvals shadow`), never applied: it is a shadow rule.
        Rule(id="welcome-auto", when=Match(kind="send_welcome_email"),
             then=Outcome(action="auto_approve", allow_customer=True), shadow=True),
    ],
)  # fmt: skip
# No rule matched: one reviewer decides.

if __name__ == "__main__":
    context = StaticContext({"acct-1": {"days_since_signup": 3, "setup_steps_done": 2,
                                        "admin_email": "ada@example.com"}})  # fmt: skip
    with WorkflowHarness("onboarding", context=context, policy=POLICY) as h:
        (email,) = h.pending(h.run("onboarding", "acct-1"))
        print(f"{email.kind}: {email.required_n} {email.role} (rule {email.policy_rule})")
        assert (email.required_n, email.policy_rule) == (1, "default")
    out = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COPILOT_HOME", ".")) / "policy.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(POLICY.model_dump(mode="json", exclude_defaults=True)))
    assert Policy.from_yaml(out.read_text()) == POLICY
    print(f"wrote {out}: COPILOT_POLICY_PATH={out}")
