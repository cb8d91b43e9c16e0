"""Settings: embedded defaults, COPILOT_* variables, clear refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from copilot import DatabaseConfigError, Settings, make_engine


def test_defaults_need_nothing_installed(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.database_url_resolved == f"sqlite:///{tmp_path}/copilot.db"
    assert s.broker_url_resolved == f"sqla+sqlite:///{tmp_path}/broker.db"
    assert s.signing_key_path_resolved == tmp_path / "keys" / "checkpoint.pem"
    assert s.llm == "none"


def test_environment_variables_use_the_copilot_prefix(tmp_path: Path) -> None:
    os.environ.update(
        COPILOT_HOME=str(tmp_path),
        COPILOT_DATABASE_URL="postgresql+psycopg://app@db/copilot",
        COPILOT_BROKER_URL="redis://127.0.0.1:6379/0",
        COPILOT_LLM="openai:gpt-4o-mini",
        COPILOT_SIGNING_KEY_PATH=str(tmp_path / "k.pem"),
    )
    s = Settings()
    assert s.database_url_resolved == "postgresql+psycopg://app@db/copilot"
    assert s.broker_url_resolved == "redis://127.0.0.1:6379/0"
    assert s.llm == "openai:gpt-4o-mini"
    assert s.signing_key_path_resolved == tmp_path / "k.pem"


@pytest.mark.parametrize("value", ["gpt-4", "openai:", "anthropic:", "open ai:x", ""])
def test_llm_must_be_none_a_provider_model_or_a_factory_path(value: str) -> None:
    with pytest.raises(ValidationError, match="COPILOT_LLM must be"):
        Settings(llm=value)


def test_make_engine_refuses_other_databases_with_the_fix() -> None:
    with pytest.raises(DatabaseConfigError, match="SQLite or PostgreSQL") as info:
        make_engine(Settings(database_url="mysql://u@h/db"))
    assert info.value.code == "config.database"


def test_sqlite_engine_runs_in_wal_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(Settings(home=tmp_path))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
