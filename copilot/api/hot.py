"""`POST /v1/decide` without FastAPI's routing and dependency resolution: the crawl stage's
hot path, answered in the app's own time (bench/decide.py puts it beside a bare endpoint).

The route stays declared and documented in copilot.api.routes.placements; this ASGI layer,
just outside the routers and inside every limit (body size, JSON depth, CORS, proxies),
answers the requests that route would answer 200, with the same functions: the caller
(`routes.placements.caller`: app key or subject token, through the key cache), the body
model (`DecideIn`), the decider, the response model (`DecisionOut`), and the app's own
exception handlers for every error the decide raises. Whatever it does not recognise as a
well-formed request (a query string, a body that does not parse or validate, another media
type) it hands to FastAPI unchanged, body replayed, so those answers are FastAPI's exactly.

Why: in the profile of a decide over HTTP, routing among the app's ~90 routes and resolving
the dependencies cost more CPU than the decide's own reads and writes.

On PostgreSQL, a placement whose policy ranks without I/O is decided on the event loop
(copilot.placements.aio: the same transaction on asyncpg, on the app's kept connections,
`app.state.decide_connections`); otherwise, and on SQLite, `Decider.decide` runs on a
worker thread. Why: handing each decide to a thread and back, and psycopg's and
SQLAlchemy's per-statement Python, cost more of the server's CPU than the decide's rules.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.api.placement_schema import DecideIn, DecisionOut
from copilot.api.reads import UNAVAILABLE, Connections
from copilot.api.routes.placements import caller
from copilot.errors import CopilotError
from copilot.placements import aio

log = logging.getLogger(__name__)
PATH = "/v1/decide"
_JSON = b"application/json"
# SQLSTATE classes that psycopg raises as OperationalError, which the threaded decide
# answers 503 `service.unavailable` (connection, transaction rollback, resources, program
# limits, lock not available, operator intervention, system): the same on the asyncio path.
_TRANSIENT = frozenset({"08", "40", "53", "54", "55", "57", "58", "F0"})


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, UNAVAILABLE):
        return True
    state = getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    return isinstance(state, str) and state[:2] in _TRANSIENT


class HotDecide:
    """Answers a well-formed `POST /v1/decide` itself; see the module."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST"
                or scope.get("query_string") or not _json(scope)):  # fmt: skip
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:  # bounded: BodyLimit and JsonDepthLimit sit outside
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replay = _replay(body, receive)
        try:
            asked = DecideIn.model_validate_json(body)
        except ValidationError:  # FastAPI's 422, word for word
            await self.app(scope, replay, send)
            return
        request = Request(scope, replay)
        try:
            response = await self._decide(request, asked)
        except Exception as exc:
            response = await self._error(request, exc)
        await response(scope, replay, send)

    async def _decide(self, request: Request, asked: DecideIn) -> Response:
        rt = self.api.state.runtime
        who = await caller(request, rt)
        who.check(asked.subject_id)
        loop: Connections | None = getattr(self.api.state, "decide_connections", None)
        tenant, name, subject, context = (
            who.tenant,
            asked.placement,
            asked.subject_id,
            asked.context,
        )
        from_client = who.subject is not None
        if loop is not None and rt.decider.inline(name):
            try:
                d = await aio.decide(rt.decider, loop.transact, tenant, name, subject, context,
                                     actor=who.actor, from_client=from_client)  # fmt: skip
            except Exception as exc:
                if not _unavailable(exc):
                    raise
                log.warning("decide: database unavailable: %s", exc)
                raise CopilotError("the database is not reachable; retry shortly",
                                   code="service.unavailable") from exc  # fmt: skip
        else:  # SQLite, a policy that may block, or an app driven without its lifespan
            d = await run_in_threadpool(
                rt.decider.decide, tenant, name, subject, context, actor=who.actor,
                from_client=from_client,
            )  # fmt: skip
        out = DecisionOut.model_validate(d.model_dump())
        return Response(out.model_dump_json(), media_type="application/json")

    async def _error(self, request: Request, exc: Exception) -> Response:
        """The app's handler for `exc` (by its class's MRO, as Starlette looks it up)."""
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            handler: Any = handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                if not isinstance(response, Response):
                    response = await response
                assert isinstance(response, Response)
                return response
        raise exc


def _json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == _JSON)
    return False  # FastAPI decides what a body without a media type means


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return again


__all__ = ["HotDecide"]
