"""The documentation site: it builds with --strict, and no page shows Python that no test ran.

`make docs` builds the same site. The reference pages are generated from the code at build
time (docs/hooks/reference.py); these tests pin what they are generated from.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import yaml

from tests.test_docs_examples import EXAMPLES, ROOT, examples, run_elsewhere

OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
INCLUDE = re.compile(r'^\s*--8<-- "([^"]+)"\s*$')
# Files outside docs/examples/ that pages include, and the test that runs each.
RUN_ELSEWHERE = {
    "tests/support/app_receiver.py": "tests/test_readme_routes.py",
    "tests/support/crm_app.py": "tests/copilot/test_celery_route.py",
}


def hook(name: str) -> ModuleType:
    """A docs/hooks module, loaded by path as MkDocs loads it."""
    spec = importlib.util.spec_from_file_location(
        f"docs_hook_{name}", ROOT / "docs" / "hooks" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    """README.md and every Markdown page of the site."""
    found = [p for p in (ROOT / "docs").rglob("*.md") if "examples" not in p.parts]
    return [ROOT / "README.md", *sorted(found)]


def files_tests_run() -> dict[str, str]:
    """Path (from the root) -> how it is run, for every file a page may show."""
    tested = {p.relative_to(ROOT).as_posix(): "tests/test_docs_examples.py" for p in examples()}
    for p in EXAMPLES.rglob("*"):
        test = run_elsewhere(p) if p.suffix in (".py", ".sh") else None
        if test is not None:
            tested[p.relative_to(ROOT).as_posix()] = test
    return {**tested, **RUN_ELSEWHERE}


def python_fences(text: str) -> list[str]:
    """The bodies of the ```python fences of a Markdown text (a fence shown inside another
    fence, as a page about writing pages does, is text, not a fence)."""
    found, body, marker, lang = [], [], "", ""
    for line in text.splitlines(keepends=True):
        m = OPEN.match(line)
        if not marker:
            if m:
                marker, lang, body = m.group(2), m.group(3), []
            continue
        if m and m.group(2) == marker and not m.group(3) and line.strip() == marker:
            if lang in ("python", "py"):
                found.append("".join(body))
            marker = ""
        else:
            body.append(line)
    return found


def untested_fences() -> list[str]:
    """Every Python fence that is neither an include of a tested file nor a verbatim copy of one."""
    tested = files_tests_run()
    contents = {(ROOT / p).read_text(encoding="utf-8"): p for p in tested if (ROOT / p).exists()}
    problems = []
    for page in pages():
        for body in python_fences(page.read_text(encoding="utf-8")):
            lines = [ln for ln in body.splitlines() if ln.strip()]
            included = [INCLUDE.match(ln) for ln in lines]
            if lines and all(included):
                problems += [f"{page.relative_to(ROOT)} includes {m.group(1)}, which no test runs"
                             for m in included if m and m.group(1) not in tested]  # fmt: skip
                continue
            dedented = "\n".join(
                ln[len(body) - len(body.lstrip(" ")) :] for ln in body.splitlines()
            )
            if body not in contents and dedented + "\n" not in contents:
                problems.append(f"{page.relative_to(ROOT)}: a python fence that no test runs, "
                                f"starting {lines[0] if lines else '(empty)'!r}")  # fmt: skip
    return problems


def test_every_python_fence_is_a_file_a_test_runs() -> None:
    assert untested_fences() == []


def test_the_fence_check_catches_an_untested_example(tmp_path: Path) -> None:
    page = "```python\nprint('never run')\n```\n\n```python\n--8<-- \"docs/nowhere.py\"\n```\n"
    assert python_fences(page) == ["print('never run')\n", '--8<-- "docs/nowhere.py"\n']
    assert "docs/nowhere.py" not in files_tests_run()


def test_an_example_run_elsewhere_is_named_by_the_test_that_runs_it() -> None:
    for path, test in files_tests_run().items():
        assert (ROOT / path).exists(), path
        if test == "tests/test_docs_examples.py":
            continue  # it runs every file of docs/examples/ that no other test claims
        assert (ROOT / test).exists(), f"{path} says it is run by {test}, which does not exist"
        dotted = Path(path).with_suffix("").as_posix().replace("/", ".")
        text = (ROOT / test).read_text(encoding="utf-8")
        assert Path(path).name in text or dotted in text, (
            f"{test} does not name {path}, which says it runs it"
        )


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """No broken link, anchor, include or nav entry; the generated reference is complete."""
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    errors = (site / "reference" / "errors" / "index.html").read_text(encoding="utf-8")
    codes, _ = hook("reference").scan_codes()
    assert [c for c in codes if c not in errors] == []
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "copilot approvals approve" in cli and "copilot audit verify" in cli
    api = (site / "reference" / "http-api" / "index.html").read_text(encoding="utf-8")
    assert "POST /v1/runs" in api and "/v1/approvals/{approval_id}/decision" in api
    settings = (site / "reference" / "settings" / "index.html").read_text(encoding="utf-8")
    assert "COPILOT_DATABASE_URL" in settings
    tutorial = (site / "tutorials" / "first-gated-workflow" / "index.html").read_text()
    assert "--8&lt;--" not in tutorial and "setup_steps_done" in tutorial  # includes expanded


def test_every_error_code_has_a_meaning_and_every_meaning_a_code() -> None:
    ref = hook("reference")
    codes, _ = ref.scan_codes()
    from copilot.api.errors import STATUS

    known = set(codes) | set(STATUS)
    meanings = yaml.safe_load(ref.MEANINGS.read_text(encoding="utf-8"))
    assert sorted(set(meanings) - known) == [], "error_meanings.yaml names codes the code lacks"
    missing = sorted(c for c in known if c not in meanings and not codes.get(c, ref.Code(c)).said)
    assert missing == [], "codes with no meaning: add them to docs/hooks/error_meanings.yaml"


def test_the_nav_takes_every_page_and_the_generated_reference() -> None:
    nav, ref = hook("nav"), hook("reference")
    assert tuple(nav.GENERATED) == ref.PAGES
    built = nav.build_nav(ROOT / "docs", nav.GENERATED)
    listed = {p for section in built for entries in section.values()
              for p in ([entries] if isinstance(entries, str) else entries)}  # fmt: skip
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")
               if p.relative_to(ROOT / "docs").parts[0] not in ("examples", "hooks")}  # fmt: skip
    assert listed == on_disk | set(ref.PAGES)


def test_a_page_another_branch_adds_lands_in_its_section(tmp_path: Path) -> None:
    nav = hook("nav")
    (tmp_path / "index.md").write_text("# Home\n")
    (tmp_path / "placements.md").write_text("# Placements\n")
    (tmp_path / "deploying.md").write_text("# Deploying\n")
    (tmp_path / "odd.md").write_text("---\nsection: Concepts\n---\n# Odd\n")
    assert nav.build_nav(tmp_path, []) == [
        {"Home": "index.md"}, {"How-to guides": ["deploying.md"]}, {"Concepts": ["odd.md"]},
        {"Guides": ["placements.md"]},
    ]  # fmt: skip
    links = nav.top_level_links(tmp_path, "placements*.md", "tutorials")
    assert links == "- [Placements](../placements.md)"
    assert "written yet" in nav.top_level_links(tmp_path, "learn*.md", "tutorials")


def yaml_fences() -> list[tuple[str, str]]:
    """(page, body) of every ```yaml fence of the site, dedented."""
    found = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        marker, body, lang = "", [], ""
        for line in text.splitlines(keepends=True):
            m = OPEN.match(line)
            if not marker:
                if m:
                    marker, lang, body, indent = m.group(2), m.group(3), [], len(m.group(1))
                continue
            if m and line.strip() == marker:
                if lang == "yaml":
                    found.append((str(page.relative_to(ROOT)), "".join(ln[indent:] for ln in body)))
                marker = ""
            else:
                body.append(line)
    return found


def test_every_yaml_example_loads_as_what_it_declares() -> None:
    """Policies, signals, outcomes, triggers and routes shown on the pages load with the
    loaders a deployment uses (COPILOT_POLICY_PATH, _SIGNALS_PATH, _OUTCOMES_PATH,
    _TRIGGERS_PATH, _ROUTES_PATH)."""
    from approvals import Policy
    from copilot.engine.routes import parse_routes_file
    from copilot.governance.signals import SignalRegistry
    from copilot.measure.outcomes import OutcomeRegistry
    from copilot.workflow.triggers import TriggerRegistry

    loaded = []
    for page, body in yaml_fences():
        if body.lstrip().startswith("--8<--"):
            continue  # an included file (deploy/compose.yaml): its own test parses it
        doc = yaml.safe_load(body)
        if "rules" in doc:
            assert Policy.from_yaml(body).rules, page
        elif "signals" in doc:
            assert SignalRegistry.from_yaml(body).specs(), page
        elif "outcomes" in doc:
            assert OutcomeRegistry.from_yaml(body).specs(), page
        elif "schedules" in doc or "events" in doc:
            assert TriggerRegistry.from_yaml(body).items(), page
        elif "surfaces" in doc:  # COPILOT_LEARN_PATH
            from copilot.learn.config import LearnConfig

            assert LearnConfig.from_yaml(body).surfaces, page
        elif "routes" in doc:  # each `<option>_env` names a variable set at start-up
            env = {v: "set" for spec in doc["routes"].values() if isinstance(spec, dict)
                   for k, v in spec.items() if k.endswith("_env")}  # fmt: skip
            assert parse_routes_file(body, source=page, environ=env), page
        else:
            raise AssertionError(f"{page}: a yaml example of no known kind: {body[:80]!r}")
        loaded.append(page)
    assert len(loaded) >= 7, loaded


def test_the_readme_links_only_to_files_that_exist() -> None:
    """MkDocs checks the site's links; the README (rendered by the forge) is checked here."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets, "the README links to the docs"
    assert [t for t in targets if "://" not in t and not (ROOT / t).exists()] == []
