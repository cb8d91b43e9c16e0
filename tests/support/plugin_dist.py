"""A third-party distribution, written to a temp dir: an executor declared in `copilot.executors`.

It is the whole of what a package outside this repository needs: one module with an
executor class, and the metadata pip would write for
`[project.entry-points."copilot.executors"] acme_file = "acme_executors:FileExecutor"`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODULE = "acme_executors"
NAME = "acme_file"

SOURCE = '''\
"""Acme's executor: appends every action it is handed to a JSON-lines file under home."""

from __future__ import annotations

import json
import os

from copilot.engine.executor import Action, Receipt


class FileExecutor:
    name = "acme_file"

    def __init__(self, engine, settings):
        self.path = settings.home / "acme-executed.jsonl"

    def execute(self, action: Action) -> Receipt:
        # No deduplication on purpose: each line is one call, so a test counting lines
        # sees every time the engine handed the action over.
        line = json.dumps({**action.model_dump(), "pid": os.getpid()}, sort_keys=True)
        with open(self.path, "a") as f:
            f.write(line + "\\n")
        return Receipt(
            idempotency_key=action.idempotency_key,
            executor=self.name,
            status="done",
            detail={"file": str(self.path)},
        )
'''


def write_distribution(root: Path, entry_points: str | None = None) -> Path:
    """Write `acme_executors.py` and its `*.dist-info` under `root` (a sys.path entry)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{MODULE}.py").write_text(SOURCE)
    dist = root / "acme_executors-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-executors\nVersion: 1.0\n")
    declared = entry_points or f"{NAME} = {MODULE}:FileExecutor"
    (dist / "entry_points.txt").write_text(f"[copilot.executors]\n{declared}\n")
    return root


def received(home: Path) -> list[dict[str, Any]]:
    """Every action the external executor was handed, in order."""
    path = home / "acme-executed.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
