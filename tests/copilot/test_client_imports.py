"""`import copilot.client` loads httpx and the API's wire schema, none of the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("fastapi", "starlette", "jinja2", "sqlalchemy", "alembic", "celery", "kombu")
OURS = ("copilot", "approvals", "audit", "workflows")
# The schema's records (approval requests, audit entries, run states), the errors, and
# their packages. A new import that drags the server in shows up here first.
MAX_PROJECT_MODULES = 26  # + copilot.api.depth (the JSON depth limit), copilot.api.placement_schema

PROBE = """
import json, sys
import copilot.client
print(json.dumps(sorted(sys.modules)))
"""


def test_the_client_loads_no_server_framework_and_few_of_our_modules() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []
    ours = [m for m in loaded if m.split(".")[0] in OURS]
    assert len(ours) <= MAX_PROJECT_MODULES, ours
    assert "copilot.api.schema" in ours and "httpx" in loaded
    # The run record (`copilot.engine.runs`: pydantic only) is part of the wire schema; the
    # runner, the store, the runtime and the gate are not.
    server = ("copilot.engine.runner", "copilot.engine.store", "copilot.runtime", "approvals.gate")
    assert not any(m.startswith(server) for m in ours), ours
