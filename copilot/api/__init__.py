"""The HTTP API (`/v1`, FastAPI): `create_app(settings)`; `copilot.server` adds the pages.

The app factory is imported on first use, so `copilot.api.schema` (what the HTTP client
needs) loads without FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from copilot.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]


def __getattr__(name: str) -> Any:
    """`create_app` and `app_from_env`, from `copilot.api.app` on first use."""
    if name in __all__:
        from copilot.api import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
