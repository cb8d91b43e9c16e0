"""What every page shares: templates, the signed-in visitor, CSRF checks, HTML errors."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from copilot.engine.faults import quarantined
from copilot.engine.runs import Run
from copilot.errors import CopilotError, ForbiddenError
from copilot.governance.keys import Principal, Role
from copilot.runtime import Runtime
from copilot.web.sessions import Session, SessionStore

COOKIE = "copilot_session"
SIGNIN_COOKIE = "copilot_signin_csrf"  # double-submit token for the one form before a session
PREFIX = "/ui"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _run_state(run: Any) -> str:
    """A run's state as a person reads it: a quarantined run (copilot.engine.faults) names its code."""
    if isinstance(run, Run) and quarantined(run):
        return f"quarantined ({(run.error or {}).get('code')})"
    state = getattr(run, "state", "")
    return str(getattr(state, "value", state))


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["when"] = _when
templates.env.filters["run_state"] = _run_state


class SignInRequired(Exception):
    """No live session: the visitor is sent to the sign-in page."""

    def __init__(self, path: str) -> None:
        self.path = path


def rt_of(request: Request) -> Runtime:
    """The process's Runtime (the API's)."""
    rt = request.app.state.runtime
    assert isinstance(rt, Runtime)
    return rt


def sessions_of(request: Request) -> SessionStore:
    """The app's session store."""
    store = request.app.state.web_sessions
    assert isinstance(store, SessionStore)
    return store


def signed_in(*roles: Role) -> Callable[[Request], Awaitable[Session]]:
    """A dependency: the visitor's session, if its key holds one of `roles`."""

    async def session(request: Request) -> Session:
        found = sessions_of(request).get(request.cookies.get(COOKIE, ""))
        if found is None:
            raise SignInRequired(request.url.path)
        request.state.session = found  # the error page too shows who is signed in
        if not found.principal.has(*roles):
            raise ForbiddenError(
                f"this page needs a key with the {' or '.join(roles)} role", required=list(roles)
            )
        return found

    return session


def check_csrf(session: Session, token: str) -> None:
    """Refuse a form post whose token is not this session's (`web.csrf`, 403)."""
    if not hmac.compare_digest(session.csrf.encode(), token.encode()):
        raise CopilotError("the form is stale or forged; reload the page and try again",
                           code="web.csrf")  # fmt: skip


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A page, with the visitor (if any) and the security headers."""
    session = getattr(request.state, "session", None)
    who: Principal | None = session.principal if session is not None else None
    ctx = {"who": who, "csrf": session.csrf if session is not None else "", **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status, headers=HEADERS)
