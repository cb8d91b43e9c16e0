"""Short ids on SQLite and PostgreSQL: exact prefixes of lower-case hex ids, never the
empty string, within the caller's tenant (found by the hostile review: '' resolved the only
run, and SQLite's LIKE matched an upper-case prefix PostgreSQL's did not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from copilot.cli import ids
from copilot.runtime import Runtime
from tests.support.runtime import build_runtime


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, woken=[])
    yield runtime
    runtime.close()


def test_prefixes_match_exactly_and_the_same_on_every_dialect(rt: Runtime) -> None:
    run, _ = rt.runner.trigger("five_steps", "acct-1", tenant="acme", triggered_by="t")
    rt.runner.trigger("five_steps", "acct-2", tenant="globex", triggered_by="t")
    assert rt.runs.ids_starting(run.id[:6], tenant="acme") == [run.id]
    assert rt.runs.ids_starting(run.id[:6].upper(), tenant="acme") == [] or run.id[:6].isdigit()
    assert rt.runs.ids_starting("%", tenant="acme") == []  # no wildcard
    assert rt.runs.ids_starting("_" * 4, tenant="acme") == []
    assert rt.runs.ids_starting(run.id[:6], tenant="globex") == []  # another tenant's: none
    lookup = lambda p: rt.runs.ids_starting(p, tenant="acme")  # noqa: E731
    assert ids._unique("run", "", lookup) == ""  # never resolves: looked up as given
    assert ids._unique("run", run.id[:4], lookup) == run.id
    upper = run.id[:8].upper()  # all digits (2% of ids) is still the run's own prefix
    assert ids._unique("run", upper, lookup) == (run.id if upper == run.id[:8] else upper)
