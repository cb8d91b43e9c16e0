"""docs/placements.md's examples run as shown, and the page includes each of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples" / "placements"
EXPECT = {
    "decide_in_process.py": ["connect_data | You see", "invite_team rules 1 1.0", "dismissed_until:", "OK 4 entries"],
    "declare.py": ["['notice.outage', 'tooltip.upgrade'] 3 ['last_eligible', 'rules']"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_the_example_runs_as_the_docs_show(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=ROOT, env={**env, "COPILOT_HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for text in EXPECT[name]:
        assert text in done.stdout, done.stdout


def test_the_page_includes_every_example() -> None:
    page = (ROOT / "docs" / "placements.md").read_text()
    for example in sorted(EXAMPLES.iterdir()):
        assert f'--8<-- "docs/examples/placements/{example.name}"' in page, example.name


def test_the_first_placement_tutorial_runs_the_same_examples() -> None:
    """The tutorial includes the tested examples (so what it walks through runs)."""
    page = (ROOT / "docs" / "tutorials" / "first-placement.md").read_text()
    for name in sorted(EXPECT):
        assert f'--8<-- "docs/examples/placements/{name}"' in page, name
    for shown in ("connect_data | You see", "invite_team rules 1 1.0", "OK 4 entries"):
        assert shown in page and any(shown in e for e in EXPECT["decide_in_process.py"])
