# docs: run by tests/test_docs_live.py (a live `copilot api` and `copilot worker`)
"""An app, a reviewer and an auditor, each with its own key, through the Python client."""

import os
import time
from pathlib import Path

from copilot.client import Client

url = os.environ["COPILOT_URL"]  # e.g. http://127.0.0.1:8000 (`copilot api`)
with Client(url, key=os.environ["COPILOT_APP_KEY"]) as app:  # role: app
    app.ingest_signals("acct-042", {"days_since_signup": 2, "setup_steps_done": 1,
                                    "admin_email": "ada@example.com"}, source="crm")  # fmt: skip
    run = app.trigger("onboarding", "acct-042", idempotency_key="crm-7781")
    run = app.wait(run.id)  # until it waits for a person or finishes
    print(run.state.value, "-", app.explanation(run.id).why)

with Client(url, key=os.environ["COPILOT_REVIEWER_KEY"]) as reviewer:  # role: reviewer
    for req in reviewer.iter_approvals(kind="send_welcome_email"):
        print("approving", req.kind, "to", req.payload["to"])
        reviewer.approve(req.id, req.payload_hash)  # ApiError(409, approval.conflict) if stale

with Client(url, key=os.environ["COPILOT_APP_KEY"]) as app:
    while (run := app.run(run.id)).state.value != "completed":  # the worker resumes it
        time.sleep(0.2)
    print(run.state.value, run.result)

with Client(url, key=os.environ["COPILOT_AUDITOR_KEY"]) as auditor:  # role: auditor
    assert auditor.verify().ok
    bundle = auditor.export(Path(os.environ.get("COPILOT_HOME", ".")) / "audit-export")
    print("exported", bundle)  # then: copilot audit verify --bundle <that directory>
