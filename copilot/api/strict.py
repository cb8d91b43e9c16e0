"""Unknown query parameters are refused (422 naming them), as unknown body fields are.

A misspelt filter (`?subjectid=...`) silently ignored would widen a query the caller
meant to narrow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from copilot.errors import CopilotError

_KNOWN: dict[int, frozenset[str]] = {}
M = TypeVar("M", bound=BaseModel)


def _names(dependant: Any) -> set[str]:
    found = set()
    for f in dependant.query_params:
        model = getattr(f.field_info, "annotation", None)
        if isinstance(model, type) and issubclass(model, BaseModel):  # a query parameter model
            found |= {v.alias or k for k, v in model.model_fields.items()}
        else:
            found.add(f.alias)
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
    _refuse_unknown(set(request.query_params) - known)


def _refuse_unknown(unknown: set[str]) -> None:
    if unknown:
        names = sorted(unknown)
        raise CopilotError(
            f"invalid request: unknown query parameter {', '.join(names)}",
            code="request.invalid",
            fields=[
                {
                    "field": f"query.{u}",
                    "message": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for u in names
            ],
        )


def query_model(
    model: type[M],
) -> tuple[Callable[[Request], Awaitable[M]], dict[str, Any]]:
    """For a `DirectRoute` (copilot.api.direct): a parser that validates all of a request's
    query parameters as `model` in one pass, and the `openapi_extra` that documents them
    (the model's own JSON schema, per field). Errors are those of every other route: 422
    `request.invalid` naming `query.<field>`, an unknown parameter worded as `strict_query`
    words it (that app-wide check does not run for a DirectRoute).
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = inline(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)

    names = frozenset(model.model_fields)

    async def parse(request: Request) -> M:
        _refuse_unknown(set(request.query_params) - names)  # as the app-wide check words it
        try:
            return model.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {"loc": ("query", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False)
                ]
            ) from None

    return parse, {"parameters": parameters}
