"""The API's app factory: `create_app(settings)` builds the process's Runtime and mounts the routers.

The pages for people are mounted on top by `copilot.server.create_app`, which servers run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from copilot.api import errors
from copilot.api.auth import KeyCache
from copilot.api.hot import HotDecide
from copilot.api.limits import BodyLimit, JsonDepthLimit
from copilot.api.reads import QueueReader, connections
from copilot.api.routes import (
    actions,
    admin,
    approvals,
    audit,
    learn,
    ops,
    outcomes,
    placements,
    runs,
    subjects,
)
from copilot.api.strict import strict_query
from copilot.api.transport import Hsts, ProxyHeadersMiddleware, trusted
from copilot.runtime import Runtime
from copilot.settings import Settings

DESCRIPTION = """\
Trigger durable workflow runs, work the approval queue, and read and verify the
tamper-evident audit trail.

Every `/v1` call needs `Authorization: Bearer <key>`. A key belongs to one tenant and
holds roles: `app` (runs, explanations, signals, outcomes, subject preferences, the action
feed and its acks), `reviewer` (the queue and decisions, retrying or cancelling a dead
action), `auditor` (read, verify, export the trail), `admin` (keys, policy).
Everything is scoped to the key's tenant: an id of another tenant answers 404.
Errors are `{"error": {"code", "message", "details"}}` with stable codes.
"""


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The API alone (no `/ui` pages). `runtime` is for tests that build their own."""
    rt = runtime or Runtime(settings, tolerate_broker_errors=True)

    reader = QueueReader(rt.gate, rt.engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await reader.open()
        # The asyncio decide's kept connections (copilot.api.hot); none on SQLite.
        app.state.decide_connections = connections(rt.engine, "copilot-api-decide",
                                                   settings.api_decide_connections)  # fmt: skip
        try:
            yield
        finally:
            decide, app.state.decide_connections = app.state.decide_connections, None
            if decide is not None:
                await decide.close()
            await reader.close()
            rt.close()

    app = FastAPI(
        title="copilot",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        # No /docs or /redoc: they load unpinned JavaScript from a CDN onto the origin of the
        # /ui pages (and, offline, do not render). /openapi.json feeds any viewer you trust.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(strict_query)],
    )
    app.state.runtime = rt.prepare()
    app.state.keys = KeyCache(rt.keys, settings.api_key_cache_seconds)
    app.state.queue_reader = reader
    app.state.max_body = settings.api_max_body_bytes
    app.state.metrics_token = settings.metrics_token
    errors.install(app)
    for module in (runs, approvals, actions, audit, subjects, outcomes, placements, admin, learn,
                   ops):
        app.include_router(module.router)
    app.add_middleware(HotDecide, api=app)  # innermost: inside every limit below
    app.add_middleware(JsonDepthLimit)  # inside the size limit: it reads bounded bodies only
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(Hsts)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # the app's pages on their own origin, calling decide and events (copilot.js)
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)  # fmt: skip
    proxies = trusted(settings.trusted_proxies)
    if proxies:  # outermost: the scheme is the client's before anything reads it
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app


def app_from_env() -> FastAPI:
    """The API alone with settings from `COPILOT_*` (servers run `copilot.server:app_from_env`)."""
    return create_app(Settings())
