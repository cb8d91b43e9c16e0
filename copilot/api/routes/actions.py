"""`/v1/actions`: the action feed apps pull approved actions from, and their acknowledgements.

`GET /v1/actions?status=ready` claims what is claimable for the caller (role `app`): each
item carries a claim token and stays the caller's for the visibility timeout
(`COPILOT_DELIVERY_VISIBILITY`); unacked, it returns to the feed. `wait` long-polls.
`POST /v1/actions/{id}/ack` settles the claim, exactly once: a repeat by the same claim
replays, another consumer's (expired) claim is refused with 409 `delivery.claim_lost`.
A dead action is retried or cancelled by a person (role `reviewer`, like the decision
that approved it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.concurrency import run_in_threadpool

from audit import Actor
from copilot.api.auth import require, runtime
from copilot.api.errors import responses
from copilot.api.schema import (
    MAX_WAIT,
    AckIn,
    AckManyIn,
    AckManyOut,
    AckResult,
    ActionOut,
    ActionPage,
    ActionParams,
    CancelIn,
    ErrorDetail,
)
from copilot.delivery import Delivery, DeliveryError
from copilot.delivery.store import Ack
from copilot.governance.keys import Principal
from copilot.runtime import Runtime

router = APIRouter(prefix="/v1/actions", tags=["actions"])
App = Annotated[Principal, Depends(require("app"))]
Reader = Annotated[Principal, Depends(require("app", "reviewer", "auditor"))]
Reviewer = Annotated[Principal, Depends(require("reviewer"))]
Rt = Annotated[Runtime, Depends(runtime)]
ActionId = Annotated[int, Path(ge=1, le=2**53 - 1, description="The action's id.")]
POLL = 0.2  # seconds between looks while a long-poll waits


def _out(d: Delivery) -> ActionOut:
    return ActionOut.model_validate(d.model_dump(mode="json"))


def _page(found: list[Delivery], limit: int) -> ActionPage:
    items = [_out(d) for d in found[:limit]]
    more = len(found) >= limit and items
    return ActionPage(items=items, next_cursor=items[-1].id if more else None)


@router.get(
    "",
    response_model=ActionPage,
    responses=responses(401, 403, 422),
    summary="The action feed: claim ready actions (or list them by state)",
)
async def feed(who: App, rt: Rt, q: Annotated[ActionParams, Query()]) -> ActionPage:
    """`status=ready` claims up to `limit` actions for you (long-polls up to `wait` s);
    any other status lists without claiming. Ack each claimed one with its `claim`."""
    store = rt.deliveries
    if q.status != "ready":
        states = () if q.status == "all" else (q.status,)
        found = await run_in_threadpool(
            store.page, who.tenant, states=states, kind=q.kind, subject_id=q.subject_id,
            after=q.cursor, limit=q.limit,
        )  # fmt: skip
        return _page(found, q.limit)
    deadline = time.monotonic() + min(q.wait, MAX_WAIT)
    consumer = f"{who.name}:{who.key_id}"
    while True:
        claimed = await run_in_threadpool(
            store.claim, who.tenant, consumer, limit=q.limit, kind=q.kind,
            subject_id=q.subject_id, after=q.cursor,
        )  # fmt: skip
        if claimed or time.monotonic() >= deadline:
            return _page(claimed, q.limit)
        await asyncio.sleep(min(POLL, max(0.0, deadline - time.monotonic())))


@router.get(
    "/{action_id}",
    response_model=ActionOut,
    responses=responses(401, 403, 404, 422),
    summary="One action and its delivery state",
)
def get_action(action_id: ActionId, who: Reader, rt: Rt) -> ActionOut:
    """The action, its state, attempts, last error and receipt (never another's claim token)."""
    return _out(rt.deliveries.get(action_id, tenant=who.tenant))


@router.post(
    "/{action_id}/ack",
    response_model=ActionOut,
    responses=responses(401, 403, 404, 409, 413, 422),
    summary="Acknowledge a claimed action: delivered or failed",
)
def ack(action_id: ActionId, body: AckIn, who: App, rt: Rt) -> ActionOut:
    """Exactly once per action: a repeat of the same ack replays; 409 `delivery.claim_lost`
    when your claim expired and another consumer took the action; `failed` retries it
    after a backoff, until `dead` at the attempts cap."""
    d = rt.deliveries.ack(who.tenant, action_id, body.claim, body.status, body.detail)
    return _out(d)


@router.post(
    "/ack",
    response_model=AckManyOut,
    responses=responses(401, 403, 413, 422),
    summary="Acknowledge a batch of claimed actions in one call",
)
def ack_many(body: AckManyIn, who: App, rt: Rt) -> AckManyOut:
    """Each ack settles as `POST /v1/actions/{id}/ack` would, on its own: the results come
    in order, each the action or the error that call would have answered (`claim_lost`,
    `not_found`, `conflict`), and nothing is written for an ack that fails. One transaction
    and one audit append for the batch: a consumer that claims ten acks ten in one call."""
    acks = [Ack(a.id, a.claim, a.status, a.detail) for a in body.acks]
    results = []
    for a, got in zip(acks, rt.deliveries.ack_many(who.tenant, acks), strict=True):
        if isinstance(got, DeliveryError):
            error = ErrorDetail.model_validate(got.to_dict())
            results.append(AckResult(id=a.id, action=None, error=error))
        else:
            results.append(AckResult(id=a.id, action=_out(got), error=None))
    return AckManyOut(results=results)


@router.post(
    "/{action_id}/retry",
    response_model=ActionOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Retry a dead (or failed) action's delivery",
)
def retry(action_id: ActionId, who: Reviewer, rt: Rt) -> ActionOut:
    """Back to `ready`, attempts from zero: the feed offers it again, or the sweeper pushes it."""
    return _out(rt.deliveries.retry(who.tenant, action_id, actor=Actor.human(who.name)))


@router.post(
    "/{action_id}/cancel",
    response_model=ActionOut,
    responses=responses(401, 403, 404, 409, 413, 422),
    summary="Cancel an action's delivery that is not delivered nor in flight",
)
def cancel(action_id: ActionId, body: CancelIn, who: Reviewer, rt: Rt) -> ActionOut:
    """`cancelled` for good, with your reason (kept erasable in the audit event)."""
    d = rt.deliveries.cancel(who.tenant, action_id, actor=Actor.human(who.name), reason=body.reason)
    return _out(d)
