"""Server-rendered pages for people, mounted on the API's app under `/ui` by `copilot.server`.

Reviewers work the inbox and decide; auditors read, verify and export the trail; apps and
admins see a subject's controls and runs; the evaluation report renders with its plots.
Visitors sign in with an API key, which is exchanged for a server-side session (see
`copilot.web.sessions`); every form carries the session's CSRF token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from audit import CopilotError
from copilot.api import errors
from copilot.web import review, signin, trail
from copilot.web.common import HEADERS, PREFIX, SignInRequired, render
from copilot.web.sessions import SessionStore

__all__ = ["install"]


def _html_errors(app: FastAPI) -> None:
    """Errors on `/ui` pages render as pages; the API keeps its JSON bodies."""
    json_handlers = dict(app.exception_handlers)

    def page_or_json(kind: type[Exception]) -> object:
        async def handle(request: Request, exc: Exception) -> Response:
            if not request.url.path.startswith(PREFIX + "/"):
                return await json_handlers[kind](request, exc)  # type: ignore[no-any-return]
            if isinstance(exc, CopilotError):
                code, message = exc.code, exc.message
            elif isinstance(exc, RequestValidationError):
                code, message = "request.invalid", "That address or form is not valid."
            else:
                assert isinstance(exc, HTTPException)
                code = "http.not_found" if exc.status_code == 404 else f"http.{exc.status_code}"
                message = "No such page." if exc.status_code == 404 else str(exc.detail)
            status = (
                errors.status_of(code) if not isinstance(exc, HTTPException) else exc.status_code
            )
            return render(request, "error.html", {"code": code, "message": message}, status=status)

        return handle

    for kind in (CopilotError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, page_or_json(kind))  # type: ignore[arg-type]


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"{PREFIX}/signin?next={exc.path}", status_code=303, headers=HEADERS)


def install(app: FastAPI) -> None:
    """Mount the pages and their static files on the API's app (after `errors.install`)."""
    rt = app.state.runtime
    app.state.web_sessions = SessionStore(rt.engine, rt.keys)
    for module in (signin, review, trail):
        app.include_router(module.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="static")  # fmt: skip
    _html_errors(app)
    app.add_exception_handler(SignInRequired, _sign_in)
