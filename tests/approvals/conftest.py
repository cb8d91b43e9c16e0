"""The gate on each dialect in turn, on a clock the tests move."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from approvals import Gate
from audit import SqlAuditStore
from tests.support.kinds import CATALOG, POLICY


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(engine: Engine, clock: Clock) -> Gate:
    return Gate(engine, SqlAuditStore(engine), CATALOG, POLICY, clock=clock)
