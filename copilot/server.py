"""The one ASGI app a server runs: the HTTP API (`/v1`) and the pages for people (`/ui`).

The composition lives here, above both, so the API never imports the web pages
(`cli -> server -> web | client -> api`).
"""

from __future__ import annotations

from fastapi import FastAPI

from copilot import api, web
from copilot.runtime import Runtime
from copilot.settings import Settings

__all__ = ["app_from_env", "create_app"]


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The API with the pages mounted on the same runtime and keys (`runtime`: for tests)."""
    app = api.create_app(settings, runtime=runtime)
    web.install(app)  # after the API's error handlers: the pages wrap them for `/ui`
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory copilot.server:app_from_env`: settings from `COPILOT_*`."""
    return create_app(Settings())
