"""Who is asking: the bearer key's principal, and whether its roles allow the route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from copilot.errors import ForbiddenError, UnauthenticatedError
from copilot.keys import Principal, Role
from copilot.runtime import Runtime

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer cpk_<id>_<secret>` (see `copilot keys create`).",
)


def runtime(request: Request) -> Runtime:
    """The process's Runtime, built by the app factory."""
    rt = request.app.state.runtime
    assert isinstance(rt, Runtime)
    return rt


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency: the caller's principal, if its key holds one of `roles` (else 401/403)."""

    def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise UnauthenticatedError(
                "send an API key as `Authorization: Bearer <key>`; create one with "
                "`copilot keys create --tenant T --role R`"
            )
        found = runtime(request).keys.authenticate(credentials.credentials)
        if found is None:
            raise UnauthenticatedError("the API key is unknown or revoked")
        if not found.has(*roles):
            raise ForbiddenError(
                f"this needs a key with the {' or '.join(roles)} role",
                required=list(roles),
            )
        return found

    return principal
