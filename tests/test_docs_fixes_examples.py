"""The examples of docs/configuration.md, docs/cli.md and docs/celery.md run as written.

(docs/celery.md's is run against a live worker by tests/copilot/test_celery_app.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_chat_factory_example_builds_both_forms_of_copilot_llm() -> None:
    out = subprocess.run(
        [sys.executable, "docs/examples/configuration/chat_factory.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert out.stdout.splitlines() == [
        "ollama:llama3.2 -> ChatOllama",
        "docs.examples.configuration.chat_factory:make_chat -> ChatOllama",
    ]


def test_the_cli_example_runs_in_a_fresh_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    env.update(COPILOT_HOME=str(tmp_path / "home"),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")  # fmt: skip
    out = subprocess.run(
        ["/bin/bash", "-e", str(ROOT / "docs/examples/cli/first_commands.sh")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "account_health@" in out.stdout and "cancelled" in out.stdout
    assert "OK " in out.stdout  # the signed export verifies
