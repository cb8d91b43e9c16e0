"""`/healthz` and `/metrics` for operators (no key: serve them on the operator's network)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from copilot.api import metrics
from copilot.api.auth import runtime
from copilot.api.errors import responses
from copilot.api.schema import Health
from copilot.db.engines import ping
from copilot.errors import CopilotError
from copilot.runtime import Runtime

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
    if status["database"] != "ok" or status["broker"] != "ok":
        raise CopilotError(
            "not ready: " + ", ".join(f"{k} {v}" for k, v in status.items() if v != "ok"),
            code="service.unavailable",
            **status,
        )
    return Health(status="ok", database="ok", broker="ok")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {PROMETHEUS: {"schema": {"type": "string"}}},
        },
        **responses(),
    },
    summary="Prometheus metrics",
)
def prometheus(rt: Rt) -> PlainTextResponse:
    """Runs by state and level, pending approvals and the oldest one's age, executor
    failures, audit stream heads."""
    return PlainTextResponse(metrics.render(rt.engine), media_type=PROMETHEUS)
