"""Runtime fixtures: a migrated database, a runner on it, the test flows registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from approvals import Gate
from audit import SqlAuditStore
from copilot.engine.executors import OutboxExecutor
from copilot.engine.gating import resume_when_settled
from copilot.engine.runner import Runner
from copilot.engine.store import RunStore
from copilot.governance.consent import Consent
from copilot.governance.sources import SqlSignalSource
from copilot.llm import ModelAccess
from copilot.workflow.registry import Registry
from tests.support import flows
from tests.support.kinds import POLICY


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    r.register_module(flows)
    return r


@pytest.fixture
def runner(engine: Engine, registry: Registry) -> Iterator[Runner]:
    flows.create_tables(engine)
    store = RunStore(engine, SqlAuditStore(engine))
    gate = Gate(
        engine, store.audit, registry.catalog, POLICY, on_settled=resume_when_settled(store)
    )
    yield Runner(
        store,
        registry,
        context=SqlSignalSource(engine),
        model=ModelAccess(None, None),
        executors={"outbox": OutboxExecutor(engine)},
        owner="test-worker",
        gate=gate,
        consent=Consent(engine, store.audit),
    )
    store.close()


# Worker-process clusters (real Celery workers) for the end-to-end tests.
from tests.copilot.test_celery import cluster  # noqa: E402,F401
