"""Everything a process needs, built once from `Settings` at the edge (CLI, worker, API)."""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path

from celery import Celery
from sqlalchemy import Engine

from approvals import ApprovalRequest, Gate, Policy, WebhookNotifier
from audit import CheckpointLog, Signer, SqlAuditStore, Trail
from audit.signing import key_id, load_public_key
from copilot import broker
from copilot.db.engines import make_engine
from copilot.delivery import DeliveryStore
from copilot.delivery import Policy as DeliveryPolicy
from copilot.engine.executor import Executor, ExecutorRegistry, Route
from copilot.engine.gating import resume_when_settled
from copilot.engine.proactive import Dispatch, Proactive
from copilot.engine.routes import build_executors, check_routes, load_routes
from copilot.engine.runner import Enqueue, Runner
from copilot.engine.store import RunStore
from copilot.engine.sweeper import Sweeper
from copilot.errors import ConfigError
from copilot.governance.consent import Consent
from copilot.governance.keys import KeyStore
from copilot.governance.signals import SignalRegistry
from copilot.governance.sources import SqlSignalSource
from copilot.llm import ModelAccess, make_model
from copilot.measure.holdouts import parse_holdouts
from copilot.measure.outcomes import OutcomeRegistry
from copilot.settings import Settings
from copilot.workflow.registry import Registry
from copilot.workflow.triggers import TriggerRegistry

log = logging.getLogger(__name__)


class Runtime:
    """Lazily built parts; one per process (engines are not shared across a fork)."""

    def __init__(
        self,
        settings: Settings,
        *,
        enqueue: Enqueue | None = None,
        registry: Registry | None = None,
        tolerate_broker_errors: bool = False,
    ) -> None:
        self.settings = settings
        self._enqueue = enqueue
        self._registry = registry
        # Servers (the HTTP API) set this: a run or decision is durable before its wake-up
        # is sent, and the sweeper re-enqueues what sat queued past the grace period, so a
        # broker that is away must not turn a committed write into an error.
        self._tolerate_broker_errors = tolerate_broker_errors

    @cached_property
    def engine(self) -> Engine:
        """The database engine."""
        return make_engine(self.settings)

    @cached_property
    def audit(self) -> SqlAuditStore:
        """The audit store."""
        return SqlAuditStore(self.engine, settle_wait=self.settings.audit_settle_wait)

    def _public_keys(self) -> dict[str, bytes]:
        pub = self.settings.signing_key_path_resolved
        pub = pub.with_name(pub.name + ".pub")
        if not pub.exists():
            return {}
        raw = load_public_key(pub.read_bytes())
        return {key_id(raw): raw}

    @cached_property
    def trail(self) -> Trail:
        """For reading and verifying: the signing key if this host has it, else its public key.

        Never creates a key: a verifier that minted its own would distrust every checkpoint.
        """
        key = self.settings.signing_key_path_resolved
        return Trail(
            self.audit,
            Signer.load(key),
            log=CheckpointLog(key.parent / "checkpoints.jsonl"),
            trusted=self._public_keys(),
        )

    @cached_property
    def signing_trail(self) -> Trail:
        """For signing (`copilot audit checkpoint`, the demo): creates the key on first use."""
        key = self.settings.signing_key_path_resolved
        return Trail(
            self.audit,
            Signer.load_or_create(key),
            log=CheckpointLog(key.parent / "checkpoints.jsonl"),
            trusted=self._public_keys(),
        )

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
        signals = _read(self.settings.signals_path, "COPILOT_SIGNALS_PATH")
        for spec in SignalRegistry.from_yaml(signals).specs() if signals else ():
            registry.signals.register(spec)
        outcomes = _read(self.settings.outcomes_path, "COPILOT_OUTCOMES_PATH")
        for outcome in OutcomeRegistry.from_yaml(outcomes).specs() if outcomes else ():
            registry.outcomes.register(outcome)
        triggers = _read(self.settings.triggers_path, "COPILOT_TRIGGERS_PATH")
        if triggers:
            for item in TriggerRegistry.from_yaml(triggers).items():
                registry.triggers.register(item)
        registry.check()
        return registry

    @cached_property
    def model(self) -> ModelAccess:
        """Model access per `COPILOT_LLM`."""
        return make_model(self.settings.llm, timeout=self.settings.llm_timeout)

    @cached_property
    def executor_registry(self) -> ExecutorRegistry:
        """Executor factories: the built-ins and the `copilot.executors` entry points."""
        return ExecutorRegistry.discover()

    @cached_property
    def action_routes(self) -> dict[str, Route]:
        """The routes (`COPILOT_ACTION_EXECUTORS` and `COPILOT_ROUTES_PATH`) by kind, checked.

        Unrouted kinds go to `outbox`. A route to an unregistered executor or for a kind no
        registered workflow's catalog has is refused (`config.invalid`, naming the route).
        """
        # The composition root hands the environment down: `<name>_env` route options
        # (webhook secrets, broker URLs with passwords) are read from it here, once.
        routes = load_routes(self.settings, os.environ)
        check_routes(routes, self.executor_registry, self.registry.catalog.names())
        return routes

    @cached_property
    def executors(self) -> dict[str, Executor]:
        """Executors by route key: `outbox`, each route's, `webhook` if its URL is set."""
        return build_executors(
            self.action_routes, self.executor_registry, self.engine, self.settings
        )

    @cached_property
    def celery(self) -> Celery:
        """A sending-only Celery app on this settings' broker (the tasks live in the worker)."""
        return broker.celery_app(
            self.settings.broker_url_resolved,
            queue=self.settings.queue,
            home=self.settings.home,
            visibility_timeout=self.settings.broker_visibility_timeout,
        )

    def enqueue(self, run_id: str, countdown: float = 0.0) -> None:
        """Wake a worker for the run (a hint: the sweeper covers a lost one).

        A server's runtime (`tolerate_broker_errors`) sends from a background thread, so a
        broker that is down never blocks the request that committed the run.
        """
        if self._tolerate_broker_errors:
            self.sender.submit(run_id, countdown)
            return
        self._send(run_id, countdown)

    def _send(self, run_id: str, countdown: float) -> None:
        if self._enqueue is not None:
            self._enqueue(run_id, countdown)
            return
        broker.send(self.celery, broker.ADVANCE, run_id, countdown=countdown)

    @cached_property
    def sender(self) -> broker.Sender:
        """The background sender of a server's wake-ups (see `copilot.broker.Sender`)."""
        return broker.Sender(self._send)

    def prepare(self) -> Runtime:
        """Build every part now, for servers whose threads would otherwise race to build them."""
        for part in ("engine", "audit", "runs", "registry", "gate", "consent", "runner", "keys"):
            getattr(self, part)
        if self._enqueue is None:
            self.celery  # noqa: B018 - built for its side effect (cached)
        return self

    @cached_property
    def policy(self) -> Policy:
        """The approval policy: `COPILOT_POLICY_PATH` (YAML), else `Policy.default()`."""
        path = self.settings.policy_path
        if path is None:
            return Policy.default()
        try:
            return Policy.from_yaml(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"COPILOT_POLICY_PATH={path}: {exc}") from exc

    @cached_property
    def gate(self) -> Gate:
        """The approval gate; a settled request re-queues its run in the same transaction."""
        notifier = None
        if self.settings.notify_url:
            secret = (self.settings.notify_secret or "").encode()
            notifier = WebhookNotifier(self.settings.notify_url, secret)
        return Gate(
            self.engine,
            self.audit,
            self.registry.catalog,
            self.policy,
            on_settled=resume_when_settled(self.runs),
            on_committed=self._wake,
            notifier=notifier,
        )

    def _wake(self, req: ApprovalRequest) -> None:
        """A settled request's run may be queued again: hint a worker (the sweeper backs it up)."""
        if req.run_id is not None:
            self.enqueue(req.run_id)

    @cached_property
    def runner(self) -> Runner:
        """The runner."""
        return Runner(
            self.runs,
            self.registry,
            context=SqlSignalSource(self.engine),
            model=self.model,
            executors=self.executors,
            action_executors={kind: r.key for kind, r in self.action_routes.items()},
            enqueue=self.enqueue,
            lease_seconds=self.settings.lease_seconds,
            gate=self.gate,
            consent=self.consent,
            holdouts=parse_holdouts(self.settings.holdouts),
            holdout_salt=self.settings.holdout_salt,
            deliveries=self.deliveries,
            step_timeout=self.settings.step_timeout,
            max_timeouts=self.settings.step_timeouts_max,
        )

    @cached_property
    def deliveries(self) -> DeliveryStore:
        """Each approved action's delivery: the feed's claims and acks, push attempts, retries."""
        s = self.settings
        policy = DeliveryPolicy(
            max_attempts=s.delivery_max_attempts,
            backoff_base=s.delivery_backoff,
            backoff_cap=s.delivery_backoff_cap,
            visibility=s.delivery_visibility,
        )
        return DeliveryStore(self.engine, self.audit, policy)

    def proactive(self, dispatch: Dispatch | None = None) -> Proactive:
        """Schedules and event triggers over this runtime's runner (batches run inline by default)."""
        return Proactive(self.runner, dispatch=dispatch)

    @cached_property
    def keys(self) -> KeyStore:
        """API keys (stored hashed)."""
        return KeyStore(self.engine, self.audit)

    @cached_property
    def consent(self) -> Consent:
        """Subject preferences (opt-out, snooze)."""
        return Consent(self.engine, self.audit)

    def close(self) -> None:
        """Release database connections (engines are made per process)."""
        if "sender" in self.__dict__:
            self.sender.stop()
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
            gate=self.gate,
            actions=self.runner.actions,
            grace_seconds=self.settings.sweep_grace,
            rewake_seconds=max(self.settings.sweep_grace, self.settings.lease_seconds),
            # Only the host holding the signing key signs (the beat host, by deployment);
            # other workers' sweeps never create a key of their own.
            trail=self.trail if self.settings.checkpoint_every and self.trail.signer else None,
            checkpoint_every=self.settings.checkpoint_every,
        )


def _read(path: Path | None, setting: str) -> str | None:
    """A declarations file named by a setting (None when unset), or ConfigError naming it."""
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: {exc}") from exc
