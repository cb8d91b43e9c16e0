"""Every code example of docs/evidence.md runs, and the page includes each one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "examples" / "evidence").glob("*.py"))
EXPECT = {
    "srm.py": "mismatch: True",
    "anytime.py": "anytime-valid",
    "cuped.py": "no_covariate",
    "source.py": "placement home_banner",
    "stop_rules.py": "'max_increase': 0.005",
}


def test_the_page_includes_every_example() -> None:
    page = (ROOT / "docs" / "evidence.md").read_text()
    for path in EXAMPLES:
        assert f'--8<-- "docs/examples/evidence/{path.name}"' in page
    assert {p.name for p in EXAMPLES} == set(EXPECT)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_runs_as_a_script(path: Path) -> None:
    done = subprocess.run([sys.executable, str(path.relative_to(ROOT))], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert EXPECT[path.name] in done.stdout
