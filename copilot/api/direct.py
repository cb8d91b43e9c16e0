"""Routes whose requests skip FastAPI's dependency resolution: for the hottest reads only.

A `DirectRoute` is declared and documented like any other (its query parameters from
`openapi_extra`, its security from `dependencies=[Security(bearer)]`, its responses and
response model), but a request reaches its endpoint as `endpoint(request)` with nothing
resolved: no dependency runs, not even the app-wide ones. The endpoint authenticates and
validates for itself, with the same functions and errors the dependencies use
(`copilot.api.auth.authenticate`, a `copilot.api.strict.query_model` parser, which refuses
unknown parameters as the app-wide check does).

Why: `GET /v1/approvals` has a rate target beside a bare endpoint (bench/api.py, which
prints each server's CPU per request), and FastAPI's per-request resolution of the key,
the query model and the app-wide check was the largest part of what this route spent
beyond reading its page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DirectRoute(APIRoute):
    """An APIRoute whose handler is `await endpoint(request)`; see the module."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response = await endpoint(request)
            assert isinstance(response, Response)
            return response

        return handle
