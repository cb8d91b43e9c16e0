"""The gate on each dialect in turn, on a clock the tests move."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from approvals import Gate
from audit import SqlAuditStore
from tests.support.gate import Clock
from tests.support.kinds import CATALOG, POLICY


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(engine: Engine, clock: Clock) -> Gate:
    return Gate(engine, SqlAuditStore(engine), CATALOG, POLICY, clock=clock)
