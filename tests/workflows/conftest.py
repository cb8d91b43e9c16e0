"""Fixtures: a book of synthetic accounts with the built-in workflows (`tests.support.book`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from copilot.llm import ModelAccess, make_model
from tests.support.book import Book, make_book, scripted_model
from tests.support.openai_stub import StubServer


@pytest.fixture
def book(engine: Engine, tmp_path: Path) -> Iterator[Book]:
    b = make_book(engine, ModelAccess(None, None), home=tmp_path)
    yield b
    b.runner.store.close()


@pytest.fixture
def model_book(
    engine: Engine, openai_stub: StubServer, tmp_path: Path
) -> Iterator[tuple[Book, StubServer]]:
    openai_stub.responder = scripted_model
    b = make_book(engine, make_model("openai:stub-model", timeout=10), home=tmp_path)
    yield b, openai_stub
    b.runner.store.close()
