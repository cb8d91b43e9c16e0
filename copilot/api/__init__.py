"""The HTTP API (`/v1`, FastAPI): `create_app(settings)`; `copilot.server` adds the pages."""

from __future__ import annotations

from copilot.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
