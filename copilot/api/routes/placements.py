"""`/v1/decide`, `/v1/decisions/{id}/events`, "why not shown", subject tokens and `copilot.js`.

Decide and events take an app key or a subject token (`cps_...`, one subject, minted by
an app key through `POST /v1/subject-tokens`); a token used for another subject is
`token.wrong_subject` (403) and writes nothing, one whose minting key was revoked is
`token.revoked` (401). A token's `context` may carry only the placement's
`client_signals`, and never overrides a stored value (see Decider.decide).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from audit import Actor
from copilot.api.auth import KeyCache, authenticate, require, runtime
from copilot.api.errors import responses
from copilot.api.placement_schema import (
    PLACEMENT,
    DecideIn,
    DecisionOut,
    ExplainOut,
    PlacementEventIn,
    PlacementEventOut,
    SubjectTokenIn,
    SubjectTokenOut,
)
from copilot.api.reads import UNAVAILABLE, Connections
from copilot.api.schema import SUBJECT
from copilot.errors import CopilotError
from copilot.governance.keys import Principal
from copilot.placements import EventIn, TokenError, aio
from copilot.placements.tokens import PREFIX
from copilot.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(tags=["placements"])
App = Annotated[Principal, Depends(require("app"))]
Rt = Annotated[Runtime, Depends(runtime)]
SubjectId = Annotated[str, Path(pattern=SUBJECT, description="The subject (account) id.")]
PlacementPath = Annotated[str, Path(pattern=PLACEMENT, description="The placement's name.")]
DecisionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The decision id.")]


@dataclass(frozen=True)
class Caller:
    """Who decides or posts an event: the tenant, the one subject a token allows, the actor."""

    tenant: str
    subject: str | None
    actor: Actor

    def check(self, subject_id: str) -> None:
        """Refuse a subject token used for another subject."""
        if self.subject is not None and self.subject != subject_id:
            raise TokenError(
                "this subject token is for another subject", code="token.wrong_subject"
            )


async def caller(request: Request, rt: Rt) -> Caller:
    """An app key, or a subject token (its signature, then its minting key through the cache)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer" and token.startswith(PREFIX):
        claims = rt.subject_tokens.verify(token, now=time.time())
        cache = request.app.state.keys
        assert isinstance(cache, KeyCache)
        if not await cache.live(claims.key_id, claims.tenant):
            raise TokenError("the app key that minted this subject token is revoked",
                             code="token.revoked")  # fmt: skip
        return Caller(
            claims.tenant, claims.subject_id, Actor.system(f"subject-token:{claims.key_id}")
        )
    who = await authenticate(request, "app")
    return Caller(who.tenant, None, Actor.system(f"key:{who.name}"))


Who = Annotated[Caller, Depends(caller)]


@router.post("/v1/decide", response_model=DecisionOut, responses=responses(401, 403, 404, 413, 422),
             summary="Decide what a subject sees in a placement")  # fmt: skip
async def decide(request: Request, body: DecideIn, who: Who, rt: Rt) -> DecisionOut:
    """The item to show now, or none with `why`; the decision is logged (and audited) before
    the answer. `context` may hold only signals the placement reads (`placement.context_undeclared`)."""
    return await decided(request.app.state, rt, who, body)


async def decided(state: State, rt: Runtime, who: Caller, body: DecideIn) -> DecisionOut:
    """The decide behind `POST /v1/decide` (the route's and copilot.api.hot's).

    On PostgreSQL, for a placement whose policy ranks without I/O (`Decider.inline`), on
    the event loop: copilot.placements.aio on the app's kept asyncpg connections
    (`state.decide_connections`, opened by the app's lifespan). Otherwise (SQLite, a policy
    that may block, an app driven without its lifespan) `Decider.decide` on a worker thread.
    Why: handing each decide to a thread and back, and psycopg's and SQLAlchemy's
    per-statement Python, cost more of the server's CPU than the decide's rules.
    """
    who.check(body.subject_id)
    loop: Connections | None = getattr(state, "decide_connections", None)
    from_client = who.subject is not None
    if loop is not None and rt.decider.inline(body.placement):
        try:
            d = await aio.decide(rt.decider, loop.transact, who.tenant, body.placement,
                                 body.subject_id, body.context, actor=who.actor,
                                 from_client=from_client)  # fmt: skip
        except Exception as exc:
            if not _unavailable(exc):
                raise
            log.warning("decide: database unavailable: %s", exc)
            raise CopilotError("the database is not reachable; retry shortly",
                               code="service.unavailable") from exc  # fmt: skip
    else:
        d = await run_in_threadpool(
            rt.decider.decide, who.tenant, body.placement, body.subject_id, body.context,
            actor=who.actor, from_client=from_client,
        )  # fmt: skip
    return DecisionOut.model_validate(d.model_dump())


# SQLSTATE classes that psycopg raises as OperationalError, which the threaded decide
# answers 503 `service.unavailable` (connection, triggered data change, authorization,
# routine exceptions, savepoints, transaction rollback, resources, program limits, lock not
# available, operator intervention, system, foreign data): the same on the event
# loop. Pinned against psycopg's own classes in tests/copilot/placements/test_decide_aio_faults.py.
_TRANSIENT = frozenset(
    {"08", "27", "28", "2F", "38", "39", "3B", "40", "53", "54", "55", "57", "58", "F0", "HV"}
)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.InterfaceError) and not _closed(exc):
        return False  # a wrong argument count, a value its codec refuses: a bug, 500
    if isinstance(exc, UNAVAILABLE):
        return True
    state = getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    return isinstance(state, str) and state[:2] in _TRANSIENT


def _closed(exc: BaseException) -> bool:
    """An asyncpg interface error that says the connection is gone (asyncpg has no class of
    its own for "connection is closed", only that message)."""
    return isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError) or str(exc).startswith(
        "connection is closed"
    )


@router.post("/v1/decisions/{decision_id}/events", response_model=PlacementEventOut, status_code=201,
             responses=responses(401, 403, 404, 409, 413, 422), summary="Record an exposure event")  # fmt: skip
def post_event(decision_id: DecisionId, body: PlacementEventIn, who: Who, rt: Rt) -> Response:
    """Impression, accept, dismiss, snooze or complete; idempotent by `event_id` (a redelivery
    answers 200 with `duplicate: true`)."""
    done = rt.placement_events.record(who.tenant, decision_id, EventIn(**body.model_dump()),
                                      actor=who.actor, subject_scope=who.subject)  # fmt: skip
    out = PlacementEventOut.model_validate(done.model_dump())
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if done.duplicate else 201)


@router.get("/v1/subjects/{subject_id}/placements/{name}/explain", response_model=ExplainOut,
            responses=responses(401, 403, 404, 422), summary="Why not shown")  # fmt: skip
def explain(subject_id: SubjectId, name: PlacementPath, who: App, rt: Rt) -> ExplainOut:
    """Every candidate of the placement for the subject now, and what excludes each
    (eligibility, cap, cooldown, dismissed, consent, holdout, thin context)."""
    return ExplainOut.model_validate(rt.decider.explain(who.tenant, name, subject_id).model_dump())


@router.post("/v1/subject-tokens", response_model=SubjectTokenOut, status_code=201,
             responses=responses(401, 403, 413, 422), summary="Mint a subject token")  # fmt: skip
def mint(body: SubjectTokenIn, who: App, rt: Rt) -> SubjectTokenOut:
    """A short-lived token for one subject (decide and events only), for a browser to hold."""
    now = time.time()
    token = rt.subject_tokens.mint(who.tenant, body.subject_id, key_id=who.key_id, now=now,
                                   ttl=body.ttl_seconds)  # fmt: skip
    return SubjectTokenOut(
        token=token, subject_id=body.subject_id, expires_at=round(now + body.ttl_seconds, 3)
    )


@router.get("/copilot.js", include_in_schema=False)
def copilot_js() -> Response:
    """The dependency-free browser client."""
    text = files("copilot.api").joinpath("static/copilot.js").read_text()
    return Response(text, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})
