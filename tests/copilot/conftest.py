"""Runtime fixtures: a migrated database, a runner on it, the test flows registered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine

from copilot.engine.runner import Runner
from copilot.workflow.registry import Registry
from tests.support import flows
from tests.support.cluster import Cluster
from tests.support.kinds import POLICY
from tests.support.runtime import build_runtime
from tests.support.services import rabbitmq_url, redis_url


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    r.register_module(flows)
    return r


@pytest.fixture
def runner(engine: Engine, registry: Registry, tmp_path: Path) -> Iterator[Runner]:
    rt = build_runtime(engine, tmp_path, woken=[], registry=registry, policy=POLICY)
    yield rt.runner
    rt.runs.close()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Worker processes on (database fixture, broker) = `request.param`: "redis", "sqla" or
    "rabbitmq" (a vhost of its own)."""
    db_url, broker = request.param
    with ExitStack() as stack:
        if broker == "rabbitmq":
            url = stack.enter_context(rabbitmq_url())
        elif broker.startswith("sqla"):
            url = f"sqla+sqlite:///{tmp_path}/broker.db"
        else:
            url = redis_url()
        c = Cluster(request.getfixturevalue(db_url), url, tmp_path)
        yield c
        c.stop()
        c.rt.close()
