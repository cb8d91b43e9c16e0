"""What the connection says about itself: HTTPS behind a trusted proxy, and HSTS over HTTPS.

A TLS-terminating proxy speaks plain HTTP to us; only its X-Forwarded-Proto says the
client used HTTPS. Those headers are honoured from the proxies in
`COPILOT_TRUSTED_PROXIES` only (uvicorn's ProxyHeadersMiddleware, configured here rather
than on the server's command line, so every way of serving the app behaves the same): from
anyone else they are ignored, so a client cannot make the app believe in a TLS it never
had. The scheme then decides the session cookie's `Secure` flag (copilot.web.signin) and
`Strict-Transport-Security` on every HTTPS response.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

HSTS = (b"strict-transport-security", b"max-age=31536000")  # a year; no subdomains assumed

__all__ = ["HSTS", "Hsts", "ProxyHeadersMiddleware", "trusted"]


def trusted(setting: str) -> list[str]:
    """`COPILOT_TRUSTED_PROXIES` as a list (empty: trust no forwarded header)."""
    return [part.strip() for part in setting.split(",") if part.strip()]


class Hsts:
    """Add Strict-Transport-Security to every response sent over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), HSTS]
            await send(message)

        await self.app(scope, receive, send_with_hsts)
