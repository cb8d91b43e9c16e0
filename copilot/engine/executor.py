"""The executor extension point: the `Executor` Protocol, its records, routes and registry.

An executor carries out an approved action exactly once per idempotency key and returns a
receipt. The built-ins (`outbox`, `webhook`) live in `copilot/engine/executors/`; any
installed distribution adds more by declaring a factory in the `copilot.executors`
entry-point group::

    [project.entry-points."copilot.executors"]
    crm = "acme_crm.executor:CrmExecutor"      # called as CrmExecutor(engine, settings)

`COPILOT_ACTION_EXECUTORS=send_email=crm,billing_reminder=outbox` routes action kinds to
executors by name; an unrouted kind goes to `outbox`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, insert, select

from copilot.db.tables import receipts
from copilot.errors import ConfigError, RunError
from copilot.settings import Settings

ENTRY_POINT_GROUP = "copilot.executors"
DEFAULT_EXECUTOR = "outbox"
# The built-ins are entry points too (pyproject declares the same ones); naming them here
# means a checkout that was never pip-installed still has them, and keeps this module
# free of imports of its implementations (they import this module).
BUILT_IN = {
    "outbox": "copilot.engine.executors.outbox:OutboxExecutor.from_settings",
    "webhook": "copilot.engine.executors.webhook:WebhookExecutor.from_settings",
}


class ExecutionError(RunError):
    """An action could not be carried out; no receipt was stored, so a retry is safe."""

    code = "action.execution_failed"


class Action(BaseModel):
    """An action to carry out, with the idempotency key that makes it happen once."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    run_id: str | None
    kind: str
    payload: dict[str, Any]
    idempotency_key: str


class Receipt(BaseModel):
    """Proof that an action was carried out (or definitively refused)."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    executor: str
    status: str  # "done" | "refused"
    detail: dict[str, Any]
    replayed: bool = False


class Executor(Protocol):
    """Carries out an action; a second call with the same key returns the first receipt.

    Raise `ExecutionError` (or let a database `OperationalError` through) when the action
    could not be carried out: the runner retries later with the same idempotency key.
    """

    name: str

    def execute(self, action: Action) -> Receipt:
        """Act once, or replay the stored receipt."""
        ...


class ExecutorFactory(Protocol):
    """What a `copilot.executors` entry point names: builds an executor for this process."""

    def __call__(self, engine: Engine, settings: Settings, /) -> Executor:
        """Build the executor, or raise `ConfigError` naming the setting it lacks."""
        ...


def stored_receipt(conn: Connection, key: str) -> Receipt | None:
    """The receipt already written for `key`, if any."""
    row = conn.execute(select(receipts).where(receipts.c.idempotency_key == key)).first()
    if row is None:
        return None
    return Receipt(
        idempotency_key=key,
        executor=row.executor,
        status=row.status,
        detail=json.loads(row.detail),
        replayed=True,
    )


def write_receipt(
    conn: Connection, action: Action, executor: str, status: str, detail: dict[str, Any]
) -> Receipt:
    """Store the receipt for `action` (unique per key: a concurrent duplicate raises IntegrityError)."""
    conn.execute(
        insert(receipts).values(
            idempotency_key=action.idempotency_key,
            executor=executor,
            tenant=action.tenant,
            run_id=action.run_id,
            kind=action.kind,
            status=status,
            detail=json.dumps(detail, sort_keys=True),
            created_at=time.time(),
        )
    )
    return Receipt(
        idempotency_key=action.idempotency_key, executor=executor, status=status, detail=detail
    )


def parse_routes(text: str) -> dict[str, str]:
    """`COPILOT_ACTION_EXECUTORS`: `kind=executor` pairs separated by commas."""
    routes: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, name = (s.strip() for s in item.partition("="))
        if not sep or not kind or not name:
            raise ConfigError(
                f"COPILOT_ACTION_EXECUTORS item {item!r}: use kind=executor, "
                "e.g. send_email=webhook"
            )
        if kind in routes and routes[kind] != name:
            raise ConfigError(
                f"COPILOT_ACTION_EXECUTORS routes {kind!r} twice ({routes[kind]} and {name}); "
                "keep one"
            )
        routes[kind] = name
    return routes


class ExecutorRegistry:
    """Executor factories by name: the built-ins plus the `copilot.executors` entry points."""

    def __init__(self, entries: Iterable[EntryPoint] = ()) -> None:
        self._entries: dict[str, EntryPoint] = {}
        for ep in entries:
            self.add(ep)

    @classmethod
    def discover(cls, group: str = ENTRY_POINT_GROUP) -> ExecutorRegistry:
        """The built-ins, then every installed distribution's entry points in `group`."""
        built_in = (EntryPoint(name, value, group) for name, value in BUILT_IN.items())
        return cls([*built_in, *entry_points(group=group)])

    def add(self, ep: EntryPoint) -> None:
        """Add an entry point; the same name declared with another target is refused."""
        known = self._entries.get(ep.name)
        if known is not None and known.value != ep.value:
            raise ConfigError(
                f"executor {ep.name!r} is declared twice in {ENTRY_POINT_GROUP!r} "
                f"({known.value} and {ep.value}); uninstall or rename one"
            )
        self._entries[ep.name] = ep

    def names(self) -> list[str]:
        """Registered executor names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def build(self, name: str, engine: Engine, settings: Settings) -> Executor:
        """Load the factory named `name` and build its executor."""
        ep = self._entries[name]
        try:
            factory: ExecutorFactory = ep.load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"executor {name!r} ({ep.value}) could not be loaded: {exc}; install the "
                "distribution that provides it"
            ) from exc
        executor = factory(engine, settings)
        if getattr(executor, "name", None) != name:
            raise ConfigError(
                f"executor entry point {name!r} ({ep.value}) built an executor named "
                f"{getattr(executor, 'name', None)!r}; give the class `name = {name!r}`"
            )
        return executor


def check_routes(
    routes: Mapping[str, str], registry: ExecutorRegistry, kinds: Iterable[str]
) -> None:
    """Start-up validation: every route names a registered executor and a catalogued kind."""
    known_kinds = set(kinds)
    for kind, name in routes.items():
        if name not in registry:
            raise ConfigError(
                f"COPILOT_ACTION_EXECUTORS route {kind}={name}: no executor {name!r} is "
                f"registered (registered: {', '.join(registry.names())}); install the "
                f"distribution that declares it in {ENTRY_POINT_GROUP!r} or fix the name",
                route=f"{kind}={name}",
            )
        if kind not in known_kinds:
            raise ConfigError(
                f"COPILOT_ACTION_EXECUTORS route {kind}={name}: no registered workflow's "
                f"catalog has the action kind {kind!r} (known: "
                f"{', '.join(sorted(known_kinds)) or 'none'}); fix the kind or register "
                "the module that declares it",
                route=f"{kind}={name}",
            )


def build_executors(
    routes: Mapping[str, str],
    registry: ExecutorRegistry,
    engine: Engine,
    settings: Settings,
) -> dict[str, Executor]:
    """The executors a process uses: `outbox`, every routed one, and `webhook` if configured."""
    wanted = {DEFAULT_EXECUTOR: "the default executor"}
    for kind, name in routes.items():
        wanted[name] = f"COPILOT_ACTION_EXECUTORS route {kind}={name}"
    if settings.webhook_url:  # steps may name it in `ctx.execute(..., executor="webhook")`
        wanted.setdefault("webhook", "COPILOT_WEBHOOK_URL is set")
    built: dict[str, Executor] = {}
    for name, why in wanted.items():
        try:
            built[name] = registry.build(name, engine, settings)
        except ConfigError as exc:
            raise ConfigError(f"{why}: {exc.message}", executor=name) from exc
    return built


__all__ = [
    "BUILT_IN",
    "DEFAULT_EXECUTOR",
    "ENTRY_POINT_GROUP",
    "Action",
    "ExecutionError",
    "Executor",
    "ExecutorFactory",
    "ExecutorRegistry",
    "Receipt",
    "build_executors",
    "check_routes",
    "parse_routes",
    "stored_receipt",
    "write_receipt",
]
