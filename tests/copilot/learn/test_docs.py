"""docs/learn.md: every example it includes runs as shown."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli import ROOT

EXAMPLES = ["ope.py", "loop.py", "over_http.py"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_docs_example_runs_and_is_included(name: str) -> None:
    page = (ROOT / "docs" / "learn.md").read_text()
    assert f'--8<-- "docs/examples/learn/{name}"' in page
    out = subprocess.run([sys.executable, f"docs/examples/learn/{name}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    if name == "loop.py":
        assert "-> ok" in out.stdout and "promotion approved -> learned@" in out.stdout
    if name == "over_http.py":
        assert "-> ok" in out.stdout and "promotion approved -> learned@" in out.stdout
        assert "onboarding: serving learned@" in out.stdout and "OPE candidate dr" in out.stdout


def test_the_docs_declarations_example_is_valid() -> None:
    """The YAML block of docs/learn.md parses into the declarations the runtime loads."""
    from copilot.learn import LearnConfig

    page = (ROOT / "docs" / "learn.md").read_text()
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = LearnConfig.from_yaml(block)
    assert [c.id for c in config.surfaces["onboarding.next_step"].candidates] == ["checklist", "tour"]
    assert config.evidence.margin == 0.01 and config.guardrails[0].metric == "complaint"
