"""How deep JSON input may nest: one definition, checked on the raw text before any parse.

Python's JSON parser, pydantic and the canonical encoder all recurse, so JSON nested a
few thousand levels deep (a few KB of `[`) would fail as a RecursionError, a 500, deep in
whatever touched it first. Every JSON body of the API (`copilot.api.limits.JsonDepthLimit`)
and the JSON a reviewer types into the web edit form are measured here first, by bracket
counting outside string literals, and refused with 422 `request.too_deep` naming the
limit. Values the schema accepts (`copilot.api.schema`, `JsonObject`) nest at most
`MAX_DEPTH` levels below their field; a body may nest `MAX_BODY_DEPTH`, which leaves room
for the envelope around such a value, so a value one level past its limit is still named
by the schema (`request.invalid`, the field and the limit).
"""

from __future__ import annotations

import re

from copilot.errors import CopilotError

MAX_DEPTH = 16  # levels of a JSON value in a request (inputs, edits, ...)
MAX_BODY_DEPTH = MAX_DEPTH + 4  # a whole document: the value and the envelope around it

# A complete string literal (escapes included), written so the regex never backtracks.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(text: bytes | str, limit: int = MAX_BODY_DEPTH) -> bool:
    """True when the JSON text nests containers more than `limit` levels deep.

    Never parses, never recurses: cost is a few passes at C speed over the text. Text that
    is not JSON is measured all the same (an unbalanced `[[[[` counts as deep); the parser
    refuses what this lets through.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case: nothing to measure
        return False
    marks = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    if b"(" * (limit + 1) in marks:  # the plain attack, `[[[[...`, found at C speed
        return True
    # Each pass removes every innermost pair, so balanced text of depth d is gone after d
    # passes; wide but shallow text is gone in a pass or two.
    left = marks
    for _ in range(limit + 1):
        if not left:
            return False
        left = left.replace(b"()", b"")
    # Deeper than the limit, or unbalanced: measure exactly (a deep text stops early).
    depth = 0
    for mark in marks:
        depth += 1 if mark == 40 else -1  # "(" opens
        if depth > limit:
            return True
    return False


def check_depth(text: bytes | str, limit: int = MAX_BODY_DEPTH, *, what: str = "the body") -> None:
    """Raise CopilotError `request.too_deep` (422) when `text` nests past `limit`."""
    if too_deep(text, limit):
        raise CopilotError(
            f"{what} nests JSON more than {limit} levels deep; flatten it",
            code="request.too_deep",
            max_depth=limit,
        )
