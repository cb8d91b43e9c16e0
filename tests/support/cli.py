"""The `copilot` CLI as a user runs it: a separate process on a home of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from audit.db import create_engine
from copilot.db.engines import upgrade
from tests.support import flows

ROOT = Path(__file__).resolve().parents[2]


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m copilot ARGS` with COPILOT_HOME=home and `env`, no other COPILOT_* leaking in."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    environ.update({"COPILOT_HOME": str(home), "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "copilot", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


FLOWS = {"COPILOT_WORKFLOW_MODULES": "tests.support.flows"}


def prepared(home: Path) -> Path:
    """A migrated embedded database under `home`, with the test flows' tables."""
    engine = create_engine(f"sqlite:///{home}/copilot.db")
    home.mkdir(parents=True, exist_ok=True)
    upgrade(engine)
    flows.create_tables(engine)
    engine.dispose()
    return home
