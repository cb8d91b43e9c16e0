"""Everything a process needs, built once from `Settings` at the edge (CLI, worker, API)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy import Connection, Engine, select

from approvals import ApprovalRequest, Gate, Policy, WebhookNotifier
from audit import Actor, CheckpointLog, Signer, SqlAuditStore, Trail
from audit.db import readonly
from audit.signing import key_id, load_public_key
from copilot import broker, startup
from copilot.db.engines import make_engine, ping
from copilot.db.tables import placement_decisions, runs
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
from copilot.measure.evidence.comparison import ComparisonSource
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.evidence.rules import StopRule
from copilot.measure.holdouts import fraction_for, parse_holdouts
from copilot.measure.outcomes import OutcomeRegistry
from copilot.measure.review.build import build_review
from copilot.measure.review.model import WeeklyReview
from copilot.measure.review.notify import message as review_message
from copilot.measure.review.notify import send as send_review
from copilot.measure.review.prune import SignalEvidence
from copilot.measure.review.store import save as save_review
from copilot.measure.rollout import RESUME, Guard, paused_rollouts, resume_hook
from copilot.placements import Decider, Events, PlacementRegistry, TokenSigner
from copilot.placements.evidence import PlacementHoldouts, PolicyHoldouts
from copilot.placements.learned import LEARNED, PlacementLog, PromotedPolicy, RoutedLog
from copilot.settings import Settings
from copilot.workflow.registry import Registry
from copilot.workflow.triggers import TriggerRegistry

if TYPE_CHECKING:  # the learning wing loads numpy and LangChain: only when it is used
    from copilot.learn.config import LearnConfig
    from copilot.learn.service import Learning
    from copilot.measure.report.learning import LearningProvider

log = logging.getLogger(__name__)
PROMOTE = "promote_policy"  # copilot.learn.gate.PROMOTE, without importing the wing


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
        registry.load_entry_points(builtins=self.settings.builtin_workflows)
        for module in self.settings.workflow_module_list:
            registry.register_module(module)
        for module in self._placement_modules():  # the signals and outcomes declared beside them
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
        registry.catalog.register(RESUME)  # a paused rollout's resume request, for an admin
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
            queue=self.settings.queue_resolved,
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
        for part in ("engine", "audit", "runs", "registry", "gate", "consent", "runner", "keys",
                     "placements", "decider", "placement_events", "subject_tokens"):  # fmt: skip
            getattr(self, part)
        if self._enqueue is None:
            self.celery  # noqa: B018 - built for its side effect (cached)
        return self

    def check_startup(self) -> list[str]:
        """What a worker or API process checks before it says it is ready; the lines to log.

        Refuses (ConfigError, `config.database`) an unreachable database, and a deployment
        that mixes an embedded part with a shared one (see `copilot.startup`); then builds
        the registry, policy and routes, whose own checks name any declaration at fault.
        """
        lines = startup.check_parts(self.settings)
        ping(self.engine)
        for part in ("registry", "policy", "executors"):
            getattr(self, part)
        return lines

    @cached_property
    def policy(self) -> Policy:
        """The approval policy: `COPILOT_POLICY_PATH` (YAML), else `Policy.default()`."""
        path = self.settings.policy_path
        if path is None:
            return Policy.default()
        try:
            policy = Policy.from_yaml(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"COPILOT_POLICY_PATH={path}: {exc}") from exc
        problems = policy.customer_auto_approvals(self.registry.catalog)
        if problems:
            raise ConfigError(f"COPILOT_POLICY_PATH={path}: " + "; ".join(problems))
        return policy

    @cached_property
    def gate(self) -> Gate:
        """The approval gate; a settled request re-queues its run in the same transaction."""
        notifier = None
        if self.settings.notify_url:
            secret = (self.settings.notify_secret or "").encode()
            notifier = WebhookNotifier(self.settings.notify_url, secret)
        return _RuntimeGate(
            self.engine,
            self.audit,
            self.registry.catalog,
            self.policy,
            on_settled=_both(self._settled, resume_hook(self.audit)),
            on_committed=self._wake,
            notifier=notifier,
        )

    def _settled(self, conn: Connection, req: ApprovalRequest) -> None:
        """In the settling transaction: resume the run; an approved promotion goes live."""
        resume_when_settled(self.runs)(conn, req)
        if req.kind == PROMOTE:  # decided through /v1/approvals or `copilot approvals`
            self.learning.promotions.on_settled(conn, req)

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
    def guard(self) -> Guard:
        """Guarded rollouts: stop rules, pauses, and resumes on an admin's approval."""
        return Guard(self.engine, self.audit, self.gate)

    def check_stop_rules(self) -> list[dict[str, Any]]:
        """One review cycle of every workflow's and placement's stop rules, for each tenant."""
        rules = {wf.name: list(wf.stop_rules) for wf in self.registry if wf.stop_rules}
        guarded = {p.name: list(p.stop_rules) for p in self.placements if p.stop_rules}
        paused: list[dict[str, Any]] = []
        if not rules and not guarded and all(p.policy != LEARNED for p in self.placements):
            return paused
        for t in self.tenants():
            if rules:
                source = WorkflowHoldouts(self.allocations(), workflows=tuple(rules))
                paused += self.guard.check(t, rules, source)
            if guarded:  # a breach pauses the placement: it serves control until resumed
                paused += self.guard.check(t, guarded, self.placement_holdouts(tuple(guarded)))
            paused += self._check_policies(t)
        return paused

    def _check_policies(self, tenant: str) -> list[dict[str, Any]]:
        """The learn guardrails as stop rules of each live learned placement policy."""
        learned = [p.name for p in self.placements if p.policy == LEARNED]
        if not learned:
            return []
        config = self.learn_config
        stop = [StopRule(outcome=g.metric, max_increase=g.max_increase)
                for g in config.guardrails if g.max_increase is not None]  # fmt: skip
        live = {n: v for n in learned if (v := self.learning.store.in_state(tenant, n, "live"))}
        if not stop or not live:
            return []
        source = PolicyHoldouts({n: (config.holdout_share, v.updated_at) for n, v in live.items()})
        return self.guard.check(tenant, {n: stop for n in live}, source)

    def placement_holdouts(self, names: tuple[str, ...] | None = None) -> PlacementHoldouts:
        """The comparison source of the placements' holdouts (those with one, or `names`)."""
        return PlacementHoldouts({p.name: p.holdout for p in self.placements
                                  if p.holdout > 0 and (names is None or p.name in names)})  # fmt: skip

    def tenants(self) -> list[str]:
        """Every tenant with runs or placement decisions (what beat's per-tenant jobs iterate)."""
        with readonly(self.engine.connect()) as conn:
            found = set(conn.scalars(select(runs.c.tenant).distinct()))
            found |= set(conn.scalars(select(placement_decisions.c.tenant).distinct()))
            return sorted(found)

    def comparison_sources(self) -> list[ComparisonSource]:
        """What the review and the report compare: workflow holdouts and placement holdouts."""
        return [WorkflowHoldouts(self.allocations()), self.placement_holdouts()]

    def signal_evidence(self) -> SignalEvidence | None:
        """The review's feature ablations of each learned placement's signals (None: none)."""
        reads = {p.name: list(p.signal_names) for p in self.placements if p.policy == LEARNED}
        if not reads:
            return None
        from copilot.learn.ablation import signal_evidence  # the learning wing loads numpy

        return signal_evidence(self.learning, reads)

    def build_review(self, tenant: str, *, now: float | None = None) -> WeeklyReview:
        """Build and store `tenant`'s weekly review, then send its notifier message."""
        review = build_review(
            self.engine, tenant=tenant, outcomes=self.registry.outcomes,
            sources=self.comparison_sources(),
            signals=[s.name for s in self.registry.signals.specs()],
            paused=paused_rollouts(self.engine, tenant), signal_evidence=self.signal_evidence(),
            now=now,
        )  # fmt: skip
        save_review(self.engine, self.audit, review)
        if self.settings.notify_url:
            secret = (self.settings.notify_secret or "").encode()
            send_review(
                self.settings.notify_url, secret, review_message(review, self.settings.public_url)
            )
        return review

    def allocations(self) -> dict[str, float]:
        """Each registered workflow's configured holdout share (what SRM checks arms against)."""
        overrides = parse_holdouts(self.settings.holdouts)
        return {wf.name: fraction_for(wf.name, self.registry.get(wf.name).holdout, overrides)
                for wf in self.registry}  # fmt: skip

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
    def placements(self) -> PlacementRegistry:
        """Placements from `COPILOT_PLACEMENT_MODULES` and `COPILOT_PLACEMENTS_PATH`, checked.

        A module's signal and outcome declarations join `registry` when it is built, so a
        placement that reads a signal not declared for it is refused here, at start-up.
        """
        found = PlacementRegistry()
        for (
            module
        ) in self._placement_modules():  # their signals joined `registry` when it was built
            found.register_module(module)
        text = _read(self.settings.placements_path, "COPILOT_PLACEMENTS_PATH")
        if text:
            found.merge(PlacementRegistry.from_yaml(text))
        if any(p.policy == LEARNED for p in found):  # the surface's live version, else the rules
            floor = self.learn_config.training.floor
            found.policies.register(PromotedPolicy(lambda: self.learning, floor=floor))
        found.check(self.registry.signals)
        return found

    def _placement_modules(self) -> list[str]:
        return [m.strip() for m in self.settings.placement_modules.split(",") if m.strip()]

    @cached_property
    def decider(self) -> Decider:
        """Decide and "why not shown" over the placements."""
        return Decider(self.engine, self.audit, self.placements, self.registry.signals,
                       holdout_salt=self.settings.holdout_salt)  # fmt: skip

    @cached_property
    def placement_events(self) -> Events:
        """Exposure events on decisions."""
        return Events(self.engine, self.audit, self.placements)

    @cached_property
    def subject_tokens(self) -> TokenSigner:
        """Signs and checks subject tokens (the secret setting, else a key in COPILOT_HOME)."""
        secret = self.settings.subject_token_secret
        if secret:
            try:
                return TokenSigner(secret.encode())
            except ValueError as exc:
                raise ConfigError(f"COPILOT_SUBJECT_TOKEN_SECRET: {exc}") from exc
        return TokenSigner.load_or_create(self.settings.home / "keys" / "subject-token.key")

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
    def learn_config(self) -> LearnConfig:
        """The learning wing's declarations: `COPILOT_LEARN_PATH` (YAML), else none."""
        from copilot.learn.config import LearnConfig

        text = _read(self.settings.learn_path, "COPILOT_LEARN_PATH")
        return LearnConfig.from_yaml(text) if text else LearnConfig()

    @cached_property
    def learning(self) -> Learning:
        """The learning loop on the wing's own tables, for the declared surfaces."""
        return _learning(self)

    @property
    def learning_provider(self) -> LearningProvider | None:
        """The report's hook for the learned surfaces (None when none is declared)."""
        surfaces = list(self.learn_config.surfaces)
        if not surfaces:
            return None
        from copilot.learn.report import learning_provider

        return learning_provider(self.learning, surfaces)

    def train_surfaces(self) -> dict[str, Any]:
        """Train every declared surface of the CLI's tenant (beat's task)."""
        return _train_all(self)

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


def _train_all(rt: Runtime) -> dict[str, Any]:
    from copilot.learn.errors import NotEnoughDataError

    out: dict[str, Any] = {}
    for surface in rt.learn_config.surfaces:
        try:
            out[surface] = rt.learning.train(rt.settings.tenant, surface).version
        except NotEnoughDataError as exc:
            out[surface] = exc.code
    return out


def _learning(rt: Runtime) -> Learning:
    from copilot.learn.embeddings import embed_descriptions, make_embeddings
    from copilot.learn.service import DAY, Learning
    from copilot.learn.store import LearnStore
    from copilot.ranking import Candidate

    config = rt.learn_config
    embeddings = (make_embeddings(rt.settings.embeddings)
                  if any(c.description for s in config.surfaces.values() for c in s.candidates)
                  else None)  # fmt: skip
    descriptions = {name: embed_descriptions(embeddings, {c.id: c.description for c in s.candidates})
                    for name, s in config.surfaces.items()}  # fmt: skip
    store = LearnStore(rt.engine, rt.audit)
    # Placement surfaces train on the placements decision log and its events; their rules
    # ranking (priority class, then declaration order) is the catalog evidence compares with.
    catalogs = {p.name: [Candidate(id=c.id, priority=rt.placements.priority(c.priority).rank,
                                   order=i) for i, c in enumerate(p.candidates)]
                for p in rt.placements}  # fmt: skip
    catalogs.update({n: s.ranked() for n, s in config.surfaces.items()})
    source = RoutedLog(PlacementLog(rt.engine, holdout_share=config.holdout_share), store,
                       [p.name for p in rt.placements])  # fmt: skip
    return Learning(
        store, source=source, rewards=config.rewards, training=config.training,
        evidence=config.evidence, catalogs=catalogs,
        descriptions=descriptions, guardrails=config.guardrails,
        holdout_share=config.holdout_share, lookback=config.lookback_days * DAY,
    )  # fmt: skip


class _RuntimeGate(Gate):
    """The runtime's gate: a learned policy's promotion is never edited (as on the wing's)."""

    def _revise(
        self, conn: Connection, req: ApprovalRequest, edits: dict[str, Any], human: Actor
    ) -> ApprovalRequest:
        if req.kind == PROMOTE:  # `copilot approvals edit`, /v1/approvals/{id}/decision edits
            from copilot.learn.gate import refuse_edit

            raise refuse_edit(req)
        return super()._revise(conn, req, edits, human)


def _both(
    first: Callable[[Connection, ApprovalRequest], None],
    second: Callable[[Connection, ApprovalRequest], None],
) -> Callable[[Connection, ApprovalRequest], None]:
    def hook(conn: Connection, req: ApprovalRequest) -> None:
        first(conn, req)
        second(conn, req)

    return hook


def _read(path: Path | None, setting: str) -> str | None:
    """A declarations file named by a setting (None when unset), or ConfigError naming it."""
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: {exc}") from exc
