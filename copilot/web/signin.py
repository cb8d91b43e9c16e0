"""Sign in with an API key (exchanged for a server-side session), and sign out."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from copilot.api.auth import KeyCache
from copilot.web.common import (
    COOKIE,
    HEADERS,
    PREFIX,
    SIGNIN_COOKIE,
    check_csrf,
    render,
    sessions_of,
)
from copilot.web.common import signed_in as signed_in_as
from copilot.web.sessions import LIFETIME, Session

router = APIRouter(prefix=PREFIX, include_in_schema=False)
AnyRole = Annotated[Session, Depends(signed_in_as("app", "reviewer", "auditor", "admin"))]


def _next(path: str) -> str:
    # Only our own pages: never an open redirect to another site.
    return path if path.startswith(PREFIX + "/") and not path.startswith("//") else PREFIX + "/"


def home_of(session: Session) -> str:
    """Where a role lands after signing in."""
    who = session.principal
    if who.has("reviewer"):
        return PREFIX + "/inbox"
    if who.has("auditor"):
        return PREFIX + "/audit"
    return PREFIX + "/subjects"


def _form(request: Request, nxt: str, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    page = render(request, "signin.html", {"signin_csrf": token, "next": nxt, "error": error},
                  status=status)  # fmt: skip
    page.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
                    secure=request.url.scheme == "https", max_age=3600)  # fmt: skip
    return page


@router.get("/signin")
def signin_page(request: Request, next: Annotated[str, Query(max_length=500)] = "") -> Response:
    """The sign-in form."""
    return _form(request, _next(next))


@router.post("/signin")
async def signin(
    request: Request,
    key: Annotated[str, Form(max_length=300)],
    csrf: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Exchange an API key for a session cookie (HttpOnly, SameSite=Lax, scoped to /ui)."""
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return _form(request, _next(next), "The form expired; please sign in again.", 403)
    cache = request.app.state.keys
    assert isinstance(cache, KeyCache)
    found = await cache.principal(key.strip())
    if found is None:
        return _form(request, _next(next), "That API key is unknown or revoked.", 401)
    sid, session = sessions_of(request).open(found)
    target = _next(next) if next else home_of(session)
    out = RedirectResponse(target, status_code=303, headers=HEADERS)
    out.set_cookie(COOKIE, sid, httponly=True, samesite="lax", path=PREFIX,
                   secure=request.url.scheme == "https", max_age=int(LIFETIME))  # fmt: skip
    out.delete_cookie(SIGNIN_COOKIE, path=PREFIX)
    return out


@router.post("/signout")
def signout(
    request: Request, session: AnyRole, csrf: Annotated[str, Form(max_length=100)]
) -> Response:
    """End the session and clear its cookie."""
    check_csrf(session, csrf)
    sessions_of(request).close(request.cookies.get(COOKIE, ""))
    out = RedirectResponse(PREFIX + "/signin", status_code=303, headers=HEADERS)
    out.delete_cookie(COOKIE, path=PREFIX)
    return out


@router.get("/")
def home(session: AnyRole) -> Response:
    """The signed-in visitor's landing page."""
    return RedirectResponse(home_of(session), status_code=303)
