"""The executor extension point: the `Executor` Protocol, its records, routes and registry.

An executor carries out an approved action exactly once per idempotency key and returns a
receipt. The built-ins (`outbox`, `webhook`, `celery`) live in `copilot/engine/executors/`; any
installed distribution adds more by declaring a factory in the `copilot.executors`
entry-point group::

    [project.entry-points."copilot.executors"]
    crm = "acme_crm.executor:CrmExecutor"      # called as CrmExecutor(engine, settings)

Routes (`copilot.engine.routes`: `COPILOT_ACTION_EXECUTORS=send_email=crm` or the
`COPILOT_ROUTES_PATH` file) send each action kind to an executor by name; an unrouted kind
goes to `outbox`. A route with options (a webhook's URL and secret) gets an executor of its
own, built by a factory that takes them as the keyword `route`::

    def from_settings(engine, settings, *, route=None): ...   # route: a Route, or None
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, insert, select

from copilot.db.tables import receipts
from copilot.errors import ConfigError, RunError
from copilot.settings import Settings

ENTRY_POINT_GROUP = "copilot.executors"
DEFAULT_EXECUTOR = "outbox"
SHORT_FORM = "COPILOT_ACTION_EXECUTORS"
# The built-ins are entry points too (pyproject declares the same ones); naming them here
# means a checkout that was never pip-installed still has them, and keeps this module
# free of imports of its implementations (they import this module).
BUILT_IN = {
    "outbox": "copilot.engine.executors.outbox:OutboxExecutor.from_settings",
    "webhook": "copilot.engine.executors.webhook:WebhookExecutor.from_settings",
    "celery": "copilot.engine.executors.celery:CeleryExecutor.from_settings",
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
    subject_id: str | None = None
    approval_id: str | None = None  # set when the action passed the approval gate


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


class Route(BaseModel):
    """One action kind's route: the executor's name and the options given to it."""

    model_config = ConfigDict(frozen=True)

    kind: str
    executor: str
    options: dict[str, Any] = Field(default_factory=dict)
    # Values of `<name>_env` options, read at start-up; kept out of repr and logs.
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    source: str = SHORT_FORM

    @property
    def label(self) -> str:
        """How messages name the route: `kind=executor`."""
        return f"{self.kind}={self.executor}"

    @property
    def key(self) -> str:
        """The executor instance it uses: shared by name, or its own when it has options."""
        if self.options or self.secrets:
            return f"{self.executor}:{self.kind}"
        return self.executor

    def get(self, name: str, default: Any = None) -> Any:
        """An option by name (a `<name>_env` one is found as `<name>`)."""
        if name in self.secrets:
            return self.secrets[name]
        return self.options.get(name, default)

    def refuse(self, problem: str) -> ConfigError:
        """A start-up error naming this route."""
        return ConfigError(f"{self.source} route {self.label}: {problem}", route=self.label)


class ExecutorFactory(Protocol):
    """What a `copilot.executors` entry point names: builds an executor for this process."""

    def __call__(self, engine: Engine, settings: Settings, /) -> Executor:
        """Build the executor, or raise `ConfigError` naming the setting it lacks.

        A factory that takes per-route options also accepts a keyword `route` (a
        `Route`); it is passed only for a route that has options.
        """
        ...


class RouteExecutorFactory(Protocol):
    """A factory that also builds an executor for one route's options."""

    def __call__(self, engine: Engine, settings: Settings, /, *, route: Route) -> Executor:
        """Build the executor for `route`, or raise `ConfigError` naming the bad option."""
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


def _takes_route(factory: Any) -> bool:
    """Whether a factory accepts the keyword `route` (per-route options)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the plain form
        return False
    return any(p.name == "route" or p.kind is p.VAR_KEYWORD for p in params)


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

    def build(
        self, name: str, engine: Engine, settings: Settings, *, route: Route | None = None
    ) -> Executor:
        """Load the factory named `name` and build its executor (for `route`, if given)."""
        ep = self._entries[name]
        try:
            factory: ExecutorFactory = ep.load()
        except Exception as exc:  # a plug-in's import may raise anything: refuse it by name
            raise ConfigError(
                f"executor {name!r} ({ep.value}) could not be loaded: "
                f"{type(exc).__name__}: {exc}; install or fix the distribution that provides it"
            ) from exc
        if route is not None and not _takes_route(factory):
            raise ConfigError(
                f"executor {name!r} ({ep.value}) takes no per-route options "
                f"(given: {', '.join(sorted([*route.options, *route.secrets]))}); remove them"
            )
        try:
            executor = (
                factory(engine, settings)
                if route is None
                else cast(RouteExecutorFactory, factory)(engine, settings, route=route)
            )
        except ConfigError:
            raise
        except Exception as exc:  # a factory that fails is a configuration error, named
            raise ConfigError(
                f"executor {name!r} ({ep.value}) failed to start: {type(exc).__name__}: {exc}"
            ) from exc
        if getattr(executor, "name", None) != name:
            raise ConfigError(
                f"executor entry point {name!r} ({ep.value}) built an executor named "
                f"{getattr(executor, 'name', None)!r}; give the class `name = {name!r}`"
            )
        return executor


__all__ = [
    "BUILT_IN",
    "DEFAULT_EXECUTOR",
    "ENTRY_POINT_GROUP",
    "Action",
    "ExecutionError",
    "Executor",
    "ExecutorFactory",
    "ExecutorRegistry",
    "SHORT_FORM",
    "Receipt",
    "Route",
    "RouteExecutorFactory",
    "stored_receipt",
    "write_receipt",
]
