"""One `Settings`, read from `COPILOT_*` environment variables at the edges (CLI, app, worker)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LLM = re.compile(r"^(none|openai:[A-Za-z0-9._\-]+)$")


class Settings(BaseSettings):
    """Everything configurable, with embedded defaults that need nothing installed.

    >>> Settings(home=Path("/tmp/x")).database_url_resolved
    'sqlite:////tmp/x/copilot.db'
    """

    model_config = SettingsConfigDict(env_prefix="COPILOT_", extra="ignore")

    home: Path = Field(
        default=Path(".copilot"), description="Holds the embedded database, broker and key."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under home."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; default SQLite under home."
    )
    llm: str = Field(default="none", description="`none` (rules only) or `openai:<model>`.")
    signing_key_path: Path | None = Field(
        default=None, description="ed25519 PEM key for checkpoints."
    )
    tenant: str = Field(
        default="default", description="The tenant (audit stream) the CLI acts for."
    )
    checkpoint_every: int = Field(
        default=1000, ge=1, description="Sign a checkpoint every N entries."
    )

    @field_validator("llm")
    @classmethod
    def _llm(cls, v: str) -> str:
        if not _LLM.match(v):
            raise ValueError(
                "COPILOT_LLM must be `none` or `openai:<model>`, e.g. openai:gpt-4o-mini"
            )
        return v

    @property
    def database_url_resolved(self) -> str:
        """The database URL, defaulting to the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.home.absolute()}/copilot.db"

    @property
    def broker_url_resolved(self) -> str:
        """The broker URL, defaulting to Celery's SQLAlchemy transport on a SQLite file."""
        return self.broker_url or f"sqla+sqlite:///{self.home.absolute()}/broker.db"

    @property
    def signing_key_path_resolved(self) -> Path:
        """Where the checkpoint signing key lives (created on first use)."""
        return self.signing_key_path or self.home / "keys" / "checkpoint.pem"
