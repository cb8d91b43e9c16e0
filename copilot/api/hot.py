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

The decide itself is the route's (`routes.placements.decided`: on PostgreSQL on the
event loop, see there).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.api.placement_schema import DecideIn
from copilot.api.routes.placements import caller, decided

PATH = "/v1/decide"
_JSON = b"application/json"


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
        out = await decided(self.api.state, rt, who, asked)
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
