"""Request limits, enforced before a body is parsed: its size (before it is read into memory)
and, for JSON, how deep it nests (`copilot.api.depth`)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.api.depth import MAX_BODY_DEPTH, too_deep
from copilot.api.errors import TOO_LARGE, error_response, too_large_response

# Bodies the pages post: their fields are parsed (and measured) where they are read.
_FORMS = (b"application/x-www-form-urlencoded", b"multipart/form-data")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413: by Content-Length, or while reading a chunked one."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await too_large_response(self.max_bytes)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    scope[TOO_LARGE] = True  # the error handler answers 413
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:  # raised through an app that reads the body itself (JsonDepthLimit)
            await too_large_response(self.max_bytes)(scope, receive, send)


class JsonDepthLimit:
    """Refuse a JSON body nested past `max_depth` with 422 `request.too_deep`, before parsing.

    The body (already bounded by `BodyLimit`, which sits outside this) is read whole,
    measured by `copilot.api.depth.too_deep`, and replayed to the app unchanged. Form
    bodies pass through: the pages measure the JSON fields they parse.
    """

    def __init__(self, app: ASGIApp, max_depth: int = MAX_BODY_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-type" and value.lower().startswith(_FORMS):
                await self.app(scope, receive, send)
                return
        chunks, more = [], True
        while more:  # over the size limit, BodyLimit's receive raises and BodyLimit answers
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if too_deep(body, self.max_depth):
            refusal = error_response(
                "request.too_deep",
                f"the body nests JSON more than {self.max_depth} levels deep; flatten it",
                {"max_depth": self.max_depth},
            )
            await refusal(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
