"""Routes: which executor carries out each action kind, with that route's own options.

Two forms, combined at start-up. The short one, `COPILOT_ACTION_EXECUTORS`::

    send_email=webhook,billing_reminder=outbox

and a YAML file beside the policy, `COPILOT_ROUTES_PATH`, where a route carries options
(per-route webhook URL and secret, the Celery task and queue)::

    routes:
      send_email: {executor: webhook, url: "https://app.example/hooks/copilot",
                   secret_env: SEND_EMAIL_SECRET}
      tip: outbox                                   # the short form works here too
      crm_note: {executor: celery, task: crm.record_action, queue: crm,
                 broker_env: CRM_BROKER_URL}

An option named `<name>_env` is read from that environment variable at start-up (secrets
never sit in the file) and reaches the executor as `<name>`. Unrouted kinds go to
`outbox`. A route to an unregistered executor, for a kind no workflow's catalog has, or
whose executor refuses its options (a webhook without a secret) fails start-up with
`config.invalid` naming the route.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from copilot.engine.executor import (
    DEFAULT_EXECUTOR,
    ENTRY_POINT_GROUP,
    SHORT_FORM,
    Executor,
    ExecutorRegistry,
    Route,
)
from copilot.errors import ConfigError
from copilot.settings import Settings


def parse_routes(text: str) -> dict[str, str]:
    """`COPILOT_ACTION_EXECUTORS`: `kind=executor` pairs separated by commas."""
    routes: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, name = (s.strip() for s in item.partition("="))
        if not sep or not kind or not name:
            raise ConfigError(
                f"{SHORT_FORM} item {item!r}: use kind=executor, e.g. send_email=webhook"
            )
        if kind in routes and routes[kind] != name:
            raise ConfigError(
                f"{SHORT_FORM} routes {kind!r} twice ({routes[kind]} and {name}); keep one"
            )
        routes[kind] = name
    return routes


def parse_routes_file(text: str, *, source: str, environ: Mapping[str, str]) -> dict[str, Route]:
    """The routes file's `routes:` mapping; `<name>_env` options are read from `environ`."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or set(doc) - {"routes"}:
        raise ConfigError(f"{source}: expected one top-level key, `routes:`")
    items = doc.get("routes") or {}
    if not isinstance(items, dict):
        raise ConfigError(f"{source}: `routes:` maps each action kind to its route")
    return {
        str(kind): _file_route(str(kind), spec, source, environ) for kind, spec in items.items()
    }


def _file_route(kind: str, spec: Any, source: str, environ: Mapping[str, str]) -> Route:
    if isinstance(spec, str):
        spec = {"executor": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("executor"), str):
        raise ConfigError(
            f"{source} route {kind}: give `executor:` (e.g. {{executor: webhook, url: ...}})",
            route=kind,
        )
    options = {str(k): v for k, v in spec.items() if k != "executor"}
    route = Route(kind=kind, executor=spec["executor"], source=source)
    if "secret" in options:
        raise route.refuse(
            "put the secret in the environment and name it with `secret_env: VARIABLE`"
        )
    secrets: dict[str, str] = {}
    for name in [k for k in options if k.endswith("_env")]:
        variable = options.pop(name)
        value = environ.get(str(variable), "")
        if not value:
            raise route.refuse(f"{name}: the environment variable {variable} is unset or empty")
        secrets[name.removesuffix("_env")] = value
    return route.model_copy(update={"options": options, "secrets": secrets})


def combine(short: Mapping[str, str], from_file: Mapping[str, Route]) -> dict[str, Route]:
    """Both forms as one table; a kind routed to two executors is refused."""
    routes = {kind: Route(kind=kind, executor=name) for kind, name in short.items()}
    for kind, route in from_file.items():
        known = routes.get(kind)
        if known is not None and known.executor != route.executor:
            raise route.refuse(
                f"{SHORT_FORM} routes {kind!r} to {known.executor}; keep one of the two"
            )
        routes[kind] = route
    return routes


def load_routes(settings: Settings, environ: Mapping[str, str]) -> dict[str, Route]:
    """The routes configured by `COPILOT_ACTION_EXECUTORS` and `COPILOT_ROUTES_PATH`."""
    from_file: dict[str, Route] = {}
    path: Path | None = settings.routes_path
    if path is not None:
        source = f"COPILOT_ROUTES_PATH={path}"
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        from_file = parse_routes_file(text, source=source, environ=environ)
    return combine(parse_routes(settings.action_executors), from_file)


def _as_routes(routes: Mapping[str, str] | Mapping[str, Route]) -> list[Route]:
    return [
        r if isinstance(r, Route) else Route(kind=kind, executor=r) for kind, r in routes.items()
    ]


def check_routes(
    routes: Mapping[str, str] | Mapping[str, Route],
    registry: ExecutorRegistry,
    kinds: Iterable[str],
) -> None:
    """Start-up validation: every route names a registered executor and a catalogued kind."""
    known_kinds = set(kinds)
    for route in _as_routes(routes):
        if route.executor not in registry:
            raise route.refuse(
                f"no executor {route.executor!r} is registered (registered: "
                f"{', '.join(registry.names())}); install the distribution that declares it "
                f"in {ENTRY_POINT_GROUP!r} or fix the name"
            )
        if route.kind not in known_kinds:
            raise route.refuse(
                f"no registered workflow's catalog has the action kind {route.kind!r} (known: "
                f"{', '.join(sorted(known_kinds)) or 'none'}); fix the kind or register "
                "the module that declares it"
            )


def build_executors(
    routes: Mapping[str, str] | Mapping[str, Route],
    registry: ExecutorRegistry,
    engine: Engine,
    settings: Settings,
) -> dict[str, Executor]:
    """The executors a process uses, by `Route.key`: `outbox`, each route's, and `webhook`
    if `COPILOT_WEBHOOK_URL` is set (steps may name it in `ctx.execute(..., executor=...)`)."""
    built: dict[str, Executor] = {}

    def build(key: str, name: str, route: Route | None, why: str) -> None:
        if key in built:
            return
        try:
            built[key] = registry.build(name, engine, settings, route=route)
        except ConfigError as exc:
            details = {"executor": name, **({"route": route.label} if route else {})}
            raise ConfigError(f"{why}: {exc.message}", **details) from exc

    build(DEFAULT_EXECUTOR, DEFAULT_EXECUTOR, None, "the default executor")
    for route in _as_routes(routes):
        build(route.key, route.executor, route if route.key != route.executor else None,
              f"{route.source} route {route.label}")  # fmt: skip
    if settings.webhook_url:
        build("webhook", "webhook", None, "COPILOT_WEBHOOK_URL is set")
    return built


__all__ = [
    "Route",
    "build_executors",
    "check_routes",
    "combine",
    "load_routes",
    "parse_routes",
    "parse_routes_file",
]
