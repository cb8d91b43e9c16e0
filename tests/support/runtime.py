"""`build_runtime`: the one place tests and benches wire a Runtime (and so a runner).

The Runtime is the product's composition root, so the gate's `on_settled` (a decision
queues its run again), the consent store and the executors are wired as in production;
a hand-wired runner that forgot `on_settled` would silently never resume after a decision.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update

from approvals import Policy
from copilot.db.engines import upgrade
from copilot.db.tables import runs
from copilot.engine.store import RunStore
from copilot.llm import ModelAccess
from copilot.runtime import Runtime
from copilot.settings import Settings
from copilot.workflow.registry import Registry
from tests.support import flows

FLOWS = "tests.support.flows"


def build_runtime(
    db: str | Engine,
    home: Path | None = None,
    *,
    woken: list[str] | None = None,
    with_flows: bool = True,
    registry: Registry | None = None,
    policy: Policy | None = None,
    model: ModelAccess | None = None,
    clock: Callable[[], float] | None = None,
    **settings: Any,
) -> Runtime:
    """A migrated Runtime on `db` (a URL, or an engine to share) with `home` for its files.

    `woken`: wake-ups are appended there instead of sent (None: sent to the configured
    broker, as a cluster's runtime does). `with_flows`: the test flows registered (unless a
    `registry` is given) and their tables created. `registry`, `policy`, `model` and `clock`
    replace the runtime's own parts before anything is built from them.
    """
    engine = db if isinstance(db, Engine) else None
    url = engine.url.render_as_string(hide_password=False) if engine is not None else db
    if with_flows and registry is None:
        settings.setdefault("workflow_modules", FLOWS)
    home = home if home is not None else Path(tempfile.mkdtemp(prefix="copilot-test-"))
    rt = Runtime(
        Settings(**{"database_url": url, "home": home, **settings}),
        enqueue=None if woken is None else (lambda run_id, countdown: woken.append(run_id)),
        registry=registry,
    )
    # The runtime's parts are cached properties: one set before first use replaces the default.
    if engine is not None:
        rt.engine = engine
    if policy is not None:
        rt.policy = policy
    if model is not None:
        rt.model = model
    if clock is not None:
        rt.runs = RunStore(rt.engine, rt.audit, clock=clock)
        rt.gate.clock = clock
    upgrade(rt.engine)
    if with_flows:
        flows.create_tables(rt.engine)
    return rt


def age_lease(engine: Engine, run_id: str, seconds: float) -> None:
    """Let `seconds` pass on the database's clock for the run's lease (leases are stamped and
    compared by the database's clock, copilot.engine.dbclock, so no worker clock can)."""
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(lease_expires_at=runs.c.lease_expires_at - seconds)
        )
