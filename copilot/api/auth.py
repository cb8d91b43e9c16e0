"""Who is asking: the bearer key's principal, and whether its roles allow the route.

Each API process remembers a key it checked for `COPILOT_API_KEY_CACHE_SECONDS` (5 by
default; 0 checks the database on every request), by the SHA-256 of the token, so the
hot paths do not pay a database round trip per request. The process that revokes a key
(`DELETE /v1/keys/{id}`) forgets it at once; on other processes (other API workers, a
revocation by `copilot keys revoke`) a revoked key may go on working for up to that long.
The subject tokens a key minted are checked against the same cache (`live`), so they stop
working when their key does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from copilot.errors import ForbiddenError, KeyNotFoundError, UnauthenticatedError
from copilot.governance.keys import KeyStore, Principal, Role
from copilot.runtime import Runtime

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer cpk_<id>_<secret>` (see `copilot keys create`).",
)
MAX_REMEMBERED = 10_000


class KeyCache:
    """Keys this process checked recently (only valid ones: garbage cannot fill it)."""

    def __init__(self, keys: KeyStore, ttl: float, *, clock: Callable[[], float] = time.monotonic):
        self.keys = keys
        self.ttl = ttl
        self.clock = clock
        self._seen: dict[bytes, tuple[float, Principal]] = {}
        self._live: dict[str, float] = {}

    async def principal(self, token: str) -> Principal | None:
        """The token's principal, from memory while fresh, else from the key store."""
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._seen.get(digest)
        now = self.clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await run_in_threadpool(self.keys.authenticate, token)
        if found is None:
            self._seen.pop(digest, None)
        elif self.ttl > 0:
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
            self._seen[digest] = (now + self.ttl, found)
        return found

    async def live(self, key_id: str, tenant: str) -> bool:
        """Whether the key `key_id` of `tenant` exists unrevoked (a subject token's minter)."""
        now = self.clock()
        if self._live.get(key_id, 0.0) > now:
            return True
        found = await run_in_threadpool(self._lookup, key_id, tenant)
        if found and self.ttl > 0:
            if len(self._live) >= MAX_REMEMBERED:
                self._live.clear()
            self._live[key_id] = now + self.ttl
        return found

    def _lookup(self, key_id: str, tenant: str) -> bool:
        try:
            return self.keys.get(key_id, tenant=tenant).revoked_at is None
        except KeyNotFoundError:
            return False

    def forget(self, key_id: str) -> None:
        """Drop every remembered token of this key (it was just revoked by this process)."""
        self._live.pop(key_id, None)
        for digest, (_, who) in list(self._seen.items()):
            if who.key_id == key_id:
                self._seen.pop(digest, None)


async def runtime(request: Request) -> Runtime:
    """The process's Runtime, built by the app factory."""
    rt = request.app.state.runtime
    assert isinstance(rt, Runtime)
    return rt


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, if its key holds one of `roles` (else 401/403)."""

    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        return await _check(request, credentials.credentials if credentials else None, roles)

    return principal


async def authenticate(request: Request, *roles: Role) -> Principal:
    """`require(*roles)` for a route that resolves nothing (see copilot.api.direct): the
    bearer key read from the header as HTTPBearer reads it, the same checks and errors."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return await _check(request, token if scheme.lower() == "bearer" and token else None, roles)


async def _check(request: Request, token: str | None, roles: tuple[Role, ...]) -> Principal:
    if token is None:
        raise UnauthenticatedError(
            "send an API key as `Authorization: Bearer <key>`; create one with "
            "`copilot keys create --tenant T --role R`"
        )
    cache = request.app.state.keys
    assert isinstance(cache, KeyCache)
    found = await cache.principal(token)
    if found is None:
        raise UnauthenticatedError("the API key is unknown or revoked")
    if not found.has(*roles):
        raise ForbiddenError(
            f"this needs a key with the {' or '.join(roles)} role", required=list(roles)
        )
    return found
