"""API fixtures: a migrated database, a Runtime on it with the test flows, keys per tenant and role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.runtime import build_runtime


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API on each dialect in turn."""
    woken: list[str] = []
    rt = build_runtime(db_url, tmp_path, woken=woken)
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt), woken=woken)
