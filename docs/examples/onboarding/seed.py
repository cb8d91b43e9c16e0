"""Give two accounts the signals the onboarding workflow reads (all or nothing, audited).

Apps send signals over HTTP (`POST /v1/signals`, `Client.ingest_signals`); on one machine
the runtime takes them directly. Run it with the same COPILOT_* environment as
the worker.
"""

from __future__ import annotations

import os

from copilot import Settings, upgrade
from copilot.runtime import Runtime

os.environ.setdefault("COPILOT_WORKFLOW_MODULES", "onboarding")  # as the worker has it
runtime = Runtime(Settings())
try:
    upgrade(runtime.engine)  # what `copilot db upgrade` does (idempotent)
    for subject, values in {
        "acct-1": {"days_since_signup": 3, "setup_steps_done": 2, "admin_email": "ada@example.com"},
        "acct-2": {"days_since_signup": 40},  # too little to go on: a thin run
    }.items():
        runtime.proactive().ingest(tenant=runtime.settings.tenant, subject_id=subject,
                                   values=values, source="tutorial")  # fmt: skip
        print(f"{subject}: {sorted(values)}")
finally:
    runtime.close()
