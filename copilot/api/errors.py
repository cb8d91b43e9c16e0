"""The one place error codes become HTTP statuses, and every error becomes the one body shape.

`{"error": {"code": "...", "message": "...", "details": {...}}}` for every error the API
returns: our own (`CopilotError` codes), request validation (`request.invalid`, naming
each field), oversized bodies (`request.too_large`), unknown routes and methods
(`http.not_found`, `http.method_not_allowed`), and a database that is away
(`service.unavailable`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from audit import CopilotError
from copilot.api.schema import ErrorBody

log = logging.getLogger(__name__)

STATUS: dict[str, int] = {
    "auth.unauthenticated": 401,
    "token.invalid": 401,
    "token.expired": 401,
    "token.revoked": 401,
    "token.context_refused": 403,
    "token.wrong_subject": 403,
    "placement.unknown": 404,
    "placement.decision_not_found": 404,
    "placement.event_conflict": 409,
    "placement.context_undeclared": 422,
    "placement.context_invalid": 422,
    "placement.event_invalid": 422,
    "placement.event_time": 422,
    "token.invalid_ttl": 422,
    "auth.forbidden": 403,
    "web.csrf": 403,
    "approval.forbidden": 403,
    "approval.separation_of_duties": 403,
    "audit.payloads_forbidden": 403,
    "run.not_found": 404,
    "approval.not_found": 404,
    "key.not_found": 404,
    "delivery.not_found": 404,
    "http.not_found": 404,
    "http.method_not_allowed": 405,
    "approval.conflict": 409,
    "approval.claimed": 409,
    "learn.evidence_mismatch": 409,
    "run.conflict": 409,
    "delivery.claim_lost": 409,
    "delivery.conflict": 409,
    "run.idempotency_mismatch": 409,
    "key.name_taken": 409,
    "audit.checkpoint_refused": 409,
    "request.too_large": 413,
    "request.invalid": 422,
    "request.too_deep": 422,
    "run.invalid_inputs": 422,
    "workflow.unknown": 422,
    "approval.invalid_payload": 422,
    "approval.subject_mismatch": 422,
    "approval.subject_locked": 422,
    "approval.unknown_kind": 422,
    "learn.promotion_locked": 422,
    "approval.bad_cursor": 422,
    "signal.invalid": 422,
    "signal.undeclared": 422,
    "audit.non_canonical": 422,
    "key.invalid": 422,
    "outcome.invalid": 422,
    "outcome.undeclared": 422,
    "learn.not_found": 404,
    "learn.conflict": 409,
    "learn.not_enough_data": 409,
    "learn.not_better": 409,
    "learn.segment_harmed": 409,
    "learn.bad_evaluation": 422,
    "learn.unknown_decision": 422,
    "service.unavailable": 503,
}
TOO_LARGE = "copilot.body_too_large"  # set in the ASGI scope by the body limit


def status_of(code: str) -> int:
    """The HTTP status for an error code (500 for codes that mean the server is wrong)."""
    return STATUS.get(code, 500)


def error_response(
    code: str, message: str, details: dict[str, Any] | None = None, *, status: int | None = None
) -> Response:
    """The error body for `code`, with its status (or `status`). Never fails to encode."""
    body = ErrorBody.model_validate(
        {"error": {"code": code, "message": message, "details": details or {}}}
    )
    # ensure_ascii and default=str: whatever the details hold, the error itself renders.
    content = json.dumps(body.model_dump(mode="python"), ensure_ascii=True, default=str)
    status = status or status_of(code)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def _fields(exc: RequestValidationError) -> list[dict[str, str]]:
    # The loc, message and type of each problem; never the input, which may be huge or personal.
    return [
        {
            "field": ".".join(str(p) for p in e.get("loc", ())),
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]


async def _copilot_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CopilotError)
    return error_response(exc.code, exc.message, exc.details)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = _fields(exc)
    return error_response("request.invalid", invalid_message(fields), {"fields": fields})


def invalid_message(fields: list[dict[str, str]]) -> str:
    """`invalid request: body.x: <what is wrong>; ...`: each field with its problem, not only its name."""
    named = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5]) or "the request"
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    return f"invalid request: {named}{more}"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.scope.get(TOO_LARGE):  # the body limit cut the read short
        return too_large_response(request.app.state.max_body)
    if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, not decodable)
        field = {"field": "body", "message": str(exc.detail), "type": "body_unreadable"}
        return error_response(
            "request.invalid", "invalid request: fix body (send UTF-8 JSON)", {"fields": [field]}
        )
    if exc.status_code == 404:
        return error_response("http.not_found", f"no route {request.url.path}; see /openapi.json")
    if exc.status_code == 405:
        return error_response(
            "http.method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
        )
    return error_response(f"http.{exc.status_code}", str(exc.detail), status=exc.status_code)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc)
    return error_response("service.unavailable", "the database is not reachable; retry shortly", {})


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response("internal", "internal error; it has been logged", {})


def too_large_response(limit: int) -> Response:
    """413 for a body over the limit."""
    return error_response(
        "request.too_large",
        f"the request body is larger than {limit} bytes; send less per request",
        {"limit_bytes": limit},
    )


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one body shape."""
    app.add_exception_handler(CopilotError, _copilot_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(psycopg.OperationalError, _unavailable)
    app.add_exception_handler(Exception, _internal)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries: each status (and 503) documented with the error body."""
    described = {
        400: "Malformed request",
        401: "Missing, unknown or revoked API key (`auth.unauthenticated`)",
        403: "The key's roles do not allow this (`auth.forbidden`, `approval.forbidden`)",
        404: "No such resource in the key's tenant",
        409: "Conflict with the current state",
        413: "Request body too large (`request.too_large`)",
        422: "Invalid request; `details.fields` names each field (`request.invalid`, ...)",
        503: "Database unreachable (`service.unavailable`)",
    }
    # Any operation may meet a database that is away.
    return {s: {"model": ErrorBody, "description": described[s]} for s in (*statuses, 503)}
