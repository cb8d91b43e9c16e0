"""`/healthz` (no key) and `/metrics` (the metrics token: it names tenants) for operators."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from fastapi.security.utils import get_authorization_scheme_param

from copilot.api import metrics
from copilot.api.auth import runtime
from copilot.api.errors import responses
from copilot.api.schema import Health
from copilot.db.engines import ping
from copilot.errors import CopilotError, UnauthenticatedError
from copilot.runtime import Runtime
from copilot.startup import shown_url

router = APIRouter(tags=["operations"])
Rt = Annotated[Runtime, Depends(runtime)]
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _broker(rt: Runtime) -> str:
    """'ok', or why the broker cannot be reached (a short connection attempt)."""
    try:
        with rt.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:  # any transport's failure means the same thing here
        return f"unreachable: {type(exc).__name__}: {exc}"
    return "ok"


@router.get(
    "/healthz",
    response_model=Health,
    responses=responses(),
    summary="Database and broker reachable",
)
def healthz(rt: Rt) -> Health:
    """200 when the database answers and the broker accepts a connection, else 503."""
    status: dict[str, Any] = {}
    try:
        ping(rt.engine)
        status["database"] = "ok"
    except CopilotError as exc:
        status["database"] = f"unreachable: {exc.message}"
    status["broker"] = _broker(rt)
    where = {"broker_url": shown_url(rt.settings.broker_url_resolved),
             "queue": rt.settings.queue_resolved}  # fmt: skip
    if status["database"] != "ok" or status["broker"] != "ok":
        raise CopilotError(
            "not ready: " + ", ".join(f"{k} {v}" for k, v in status.items() if v != "ok"),
            code="service.unavailable",
            **status,
            **where,
        )
    return Health(status="ok", database="ok", broker="ok", **where)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {PROMETHEUS: {"schema": {"type": "string"}}},
        },
        # Errors are JSON even here (FastAPI would document them as the route's text/plain).
        **{s: {**r, "content": {"application/json": {}}} for s, r in responses(401).items()},
    },
    summary="Prometheus metrics",
)
def prometheus(request: Request, rt: Rt) -> PlainTextResponse:
    """Runs by state and level, pending approvals and the oldest one's age, executor
    failures, audit stream heads. Needs `Authorization: Bearer <COPILOT_METRICS_TOKEN>`
    (not an API key: a scraper holds no tenant's key); without the setting, 401 to all."""
    _check_metrics_token(request)
    return PlainTextResponse(metrics.render(rt.engine), media_type=PROMETHEUS)


def _check_metrics_token(request: Request) -> None:
    expected = request.app.state.metrics_token
    assert isinstance(expected, str)
    if not expected:
        raise UnauthenticatedError(
            "/metrics is off: set COPILOT_METRICS_TOKEN on the server and send it as "
            "`Authorization: Bearer <token>`"
        )
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise UnauthenticatedError("send the metrics token as `Authorization: Bearer <token>`")
