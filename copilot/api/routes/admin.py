"""`/v1/keys` and `/v1/policy`: the tenant's API keys and the approval policy (role `admin`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from audit import Actor
from copilot.api.auth import KeyCache, require, runtime
from copilot.api.errors import responses
from copilot.api.models import KeyCreate, KeyCreated, KeyPage
from copilot.api.schema import PolicyOut, ShadowFigure
from copilot.governance.keys import ApiKey, Principal
from copilot.runtime import Runtime

router = APIRouter(tags=["admin"])
Admin = Annotated[Principal, Depends(require("admin"))]
Rt = Annotated[Runtime, Depends(runtime)]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key's public id.")]


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=responses(401, 403, 409, 413, 422),
    summary="Create a key",
)
def create_key(body: KeyCreate, who: Admin, rt: Rt) -> KeyCreated:
    """A key for the admin's own tenant; the token is in this response only. Names are
    unique in a tenant, revoked keys' included: a name in use is 409 `key.name_taken`."""
    key, token = rt.keys.create(
        tenant=who.tenant, roles=body.roles, name=body.name, actor=Actor.human(who.name)
    )
    return KeyCreated(key=key, token=token)


@router.get(
    "/v1/keys",
    response_model=KeyPage,
    responses=responses(401, 403, 422),
    summary="List keys",
)
def list_keys(
    who: Admin,
    rt: Rt,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> KeyPage:
    """The tenant's keys (never their secrets), by id."""
    items, nxt = rt.keys.list(who.tenant, cursor=cursor, limit=limit)
    return KeyPage(items=items, next_cursor=nxt)


@router.delete(
    "/v1/keys/{key_id}",
    response_model=ApiKey,
    responses=responses(401, 403, 404, 422),
    summary="Revoke a key",
)
def revoke_key(key_id: KeyId, request: Request, who: Admin, rt: Rt) -> ApiKey:
    """Revoke (idempotent). This API process refuses the key at once; other processes may
    accept it for up to `COPILOT_API_KEY_CACHE_SECONDS` (their memory of checked keys)."""
    revoked = rt.keys.revoke(key_id, tenant=who.tenant, actor=Actor.human(who.name))
    cache = request.app.state.keys
    assert isinstance(cache, KeyCache)
    cache.forget(key_id)
    return revoked


@router.get(
    "/v1/policy",
    response_model=PolicyOut,
    responses=responses(401, 403),
    summary="The approval policy",
)
def policy(who: Admin, rt: Rt) -> PolicyOut:
    """The rules this server applies (from `COPILOT_POLICY_PATH`) and each shadow rule's
    agreement with what the tenant's reviewers decided."""
    figures = [ShadowFigure.model_validate(f) for f in rt.gate.shadow_agreement(who.tenant)]
    return PolicyOut(policy=rt.policy, shadow_agreement=figures)
