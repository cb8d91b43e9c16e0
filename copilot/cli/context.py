"""What every command needs, built once from Settings at the edge."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine

from audit import CheckpointLog, Signer, SqlAuditStore, Trail
from copilot.db import make_engine
from copilot.settings import Settings


class Env:
    """Settings plus lazily built engine, store and trail."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        """The database engine."""
        return make_engine(self.settings)

    @cached_property
    def store(self) -> SqlAuditStore:
        """The audit store on the configured database."""
        return SqlAuditStore(self.engine)

    @cached_property
    def signer(self) -> Signer:
        """The checkpoint signer (its key is created on first use)."""
        return Signer.load_or_create(self.settings.signing_key_path_resolved)

    @cached_property
    def trail(self) -> Trail:
        """Store, signer and the signer's own checkpoint log."""
        key = self.settings.signing_key_path_resolved
        return Trail(self.store, self.signer, log=CheckpointLog(key.parent / "checkpoints.jsonl"))
