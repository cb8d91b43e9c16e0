"""Unknown query parameters are refused (422 naming them), as unknown body fields are.

A misspelt filter (`?subjectid=...`) silently ignored would widen a query the caller
meant to narrow.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from copilot.errors import CopilotError

_KNOWN: dict[int, frozenset[str]] = {}


def _names(dependant: Any) -> set[str]:
    found = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        found |= _names(sub)
    return found


async def strict_query(request: Request) -> None:
    """An app-wide dependency: every query parameter must be one the route declares."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if route is None:
        return
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = frozenset(_names(route.dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise CopilotError(
            f"invalid request: unknown query parameter {', '.join(unknown)}",
            code="request.invalid",
            fields=[
                {
                    "field": f"query.{u}",
                    "message": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for u in unknown
            ],
        )
