"""Short ids at the command line: any unique prefix of a run's or an approval's id works
(never the empty string; ids are lower-case hex).

Tables print ids in full (a 32-character hex id never folds), `--json` carries them too;
a person types the first few characters, as with git's commits.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Column

from copilot.cli.context import Env
from copilot.errors import AmbiguousIdError

FULL = 32  # uuid4().hex: a given id this long is taken as it is (one lookup, no LIKE)
SHORTEST = 1  # the empty string (an unset shell variable) must never mean "the only run"


def run_id(env: Env, given: str) -> str:
    """The run id `given` starts (unique in this tenant), else `given` (its lookup says not found)."""
    return _unique("run", given, lambda p: env.runs.ids_starting(p, tenant=env.settings.tenant))


def approval_id(env: Env, given: str) -> str:
    """The approval request id `given` starts (unique in this tenant), else `given`."""
    return _unique(
        "approval", given, lambda p: env.gate.ids_starting(p, tenant=env.settings.tenant)
    )


def _unique(what: str, given: str, starting: Callable[[str], list[str]]) -> str:
    # Ids are lower-case hex: a prefix that is not is no prefix of any (and SQLite's LIKE,
    # which ignores case, would otherwise match where PostgreSQL's does not).
    if len(given) >= FULL or len(given) < SHORTEST or given != given.lower():
        return given
    found = starting(given)
    if len(found) > 1:
        many = f"{len(found) - 1}+" if len(found) > 5 else str(len(found))
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise AmbiguousIdError(
            f"{what} id {given!r} starts {many} ids ({shown}); give more characters",
            given=given,
            matches=found[:5],
        )
    return found[0] if found else given


def column(header: str = "id") -> Column:
    """A table column that shows 32-character ids whole at any terminal width."""
    return Column(header, no_wrap=True, min_width=FULL)
