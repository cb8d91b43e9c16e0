"""Every example the documentation shows is a file under docs/examples/, and this runs them.

Each `docs/examples/**/*.py` runs as `python FILE` from the repository root, and each
`docs/examples/**/*.sh` as `bash FILE`, in a fresh COPILOT_HOME with no other COPILOT_*
setting from the calling environment, the virtualenv's bin first on PATH (as after
`source .venv/bin/activate`). An example that needs more (a live server, PostgreSQL)
says on one of its first lines `# docs: run by tests/<file>.py`; that test runs it and
must name it (tests/test_docs_site.py checks both, and that every fence is one of these).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
RUN_BY = re.compile(r"^# docs: run by (tests/\S+\.py)", re.M)


def run_elsewhere(path: Path) -> str | None:
    """The test file that runs this example, when it is not run here."""
    found = RUN_BY.search("\n".join(path.read_text(encoding="utf-8").splitlines()[:5]))
    return found.group(1) if found else None


def examples() -> list[Path]:
    """The example scripts this module runs (sorted; helpers' own runs left out)."""
    found = [*EXAMPLES.rglob("*.py"), *EXAMPLES.rglob("*.sh")]
    return sorted(p for p in found if run_elsewhere(p) is None and "__pycache__" not in p.parts)


def example_env(home: Path) -> dict[str, str]:
    """The environment an example runs in: a fresh home, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    venv_bin = str(Path(sys.executable).parent)
    return {**env, "COPILOT_HOME": str(home), "PATH": f"{venv_bin}:{env.get('PATH', '')}",
            "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "120"}  # fmt: skip


def run_example(path: Path, home: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run one example as a reader would, from the repository root."""
    argv = ["bash", str(path)] if path.suffix == ".sh" else [sys.executable, str(path)]
    return subprocess.run(argv, cwd=ROOT, env=example_env(home), capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def test_there_are_examples_to_run() -> None:
    assert len(examples()) >= 5, examples()


@pytest.mark.parametrize("path", examples(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_the_docs_example_runs(path: Path, tmp_path: Path) -> None:
    done = run_example(path, tmp_path / "home")
    assert done.returncode == 0, f"{path.relative_to(ROOT)} failed:\n{done.stdout}\n{done.stderr}"


def test_the_tutorial_package_installs_and_registers_its_workflow(tmp_path: Path) -> None:
    """docs/examples/onboarding/pyproject.toml, built and installed by pip, as a reader does;
    every copilot process then finds the workflow through its entry point alone."""
    site = tmp_path / "site-packages"
    package = EXAMPLES / "onboarding"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(package)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert sorted(p.name for p in site.iterdir() if not p.name.startswith("__")) == [
        "acme_onboarding-1.0.0.dist-info", "onboarding.py"]  # fmt: skip
    env = {**example_env(tmp_path / "home"), "PYTHONPATH": str(site)}
    listed = subprocess.run(
        [sys.executable, "-c", "from copilot.workflow.registry import Registry\n"
         "r = Registry(); r.load_entry_points(); r.check()\n"
         "print(sorted(w.name for w in r), sorted(r.catalog.names()))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "'onboarding'" in listed.stdout and "'send_welcome_email'" in listed.stdout
    assert not (package / "build").exists()  # the build left nothing in the reader's folder
