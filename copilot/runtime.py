"""Everything a process needs, built once from `Settings` at the edge (CLI, worker, API)."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine

from audit import CheckpointLog, Signer, SqlAuditStore, Trail
from copilot.context import SqlSignalSource
from copilot.db import make_engine
from copilot.executors import Executor, OutboxExecutor, WebhookExecutor
from copilot.llm import ModelAccess, make_model
from copilot.registry import Registry
from copilot.runner import Enqueue, Runner
from copilot.runs import RunStore
from copilot.settings import Settings
from copilot.sweeper import Sweeper


class Runtime:
    """Lazily built parts; one per process (engines are not shared across a fork)."""

    def __init__(
        self,
        settings: Settings,
        *,
        enqueue: Enqueue | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self._enqueue = enqueue
        self._registry = registry

    @cached_property
    def engine(self) -> Engine:
        """The database engine."""
        return make_engine(self.settings)

    @cached_property
    def audit(self) -> SqlAuditStore:
        """The audit store."""
        return SqlAuditStore(self.engine)

    @cached_property
    def signer(self) -> Signer:
        """The checkpoint signer (key created on first use)."""
        return Signer.load_or_create(self.settings.signing_key_path_resolved)

    @cached_property
    def trail(self) -> Trail:
        """Audit store, signer and the signer's own log."""
        key = self.settings.signing_key_path_resolved
        return Trail(self.audit, self.signer, log=CheckpointLog(key.parent / "checkpoints.jsonl"))

    @cached_property
    def runs(self) -> RunStore:
        """The run store."""
        return RunStore(self.engine, self.audit)

    @cached_property
    def registry(self) -> Registry:
        """Workflows from entry points and `COPILOT_WORKFLOW_MODULES`."""
        if self._registry is not None:
            return self._registry
        registry = Registry()
        registry.load_entry_points()
        for module in self.settings.workflow_module_list:
            registry.register_module(module)
        return registry

    @cached_property
    def model(self) -> ModelAccess:
        """Model access per `COPILOT_LLM`."""
        return make_model(self.settings.llm, timeout=self.settings.llm_timeout)

    @cached_property
    def executors(self) -> dict[str, Executor]:
        """Built-in executors; the webhook one when a URL is configured."""
        found: dict[str, Executor] = {"outbox": OutboxExecutor(self.engine)}
        if self.settings.webhook_url:
            secret = (self.settings.webhook_secret or "").encode()
            found["webhook"] = WebhookExecutor(self.engine, self.settings.webhook_url, secret)
        return found

    @cached_property
    def celery(self):  # type: ignore[no-untyped-def]
        """The Celery app for this settings' broker."""
        from copilot.worker import make_celery

        return make_celery(self.settings)

    def enqueue(self, run_id: str, countdown: float = 0.0) -> None:
        """Wake a worker for the run (a hint: the sweeper covers a lost one)."""
        if self._enqueue is not None:
            self._enqueue(run_id, countdown)
            return
        self.celery.send_task(
            "copilot.advance",
            args=(run_id,),
            countdown=countdown or None,
            queue=self.settings.queue,
        )

    @cached_property
    def runner(self) -> Runner:
        """The runner."""
        return Runner(
            self.runs,
            self.registry,
            context=SqlSignalSource(self.engine),
            model=self.model,
            executors=self.executors,
            enqueue=self.enqueue,
            lease_seconds=self.settings.lease_seconds,
        )

    def close(self) -> None:
        """Release database connections (engines are made per process)."""
        if "runs" in self.__dict__:
            self.runs.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    @cached_property
    def sweeper(self) -> Sweeper:
        """The sweeper."""
        return Sweeper(
            self.runs,
            self.audit,
            self.enqueue,
            grace_seconds=self.settings.sweep_grace,
            trail=self.trail if self.settings.checkpoint_every else None,
            checkpoint_every=self.settings.checkpoint_every,
        )
