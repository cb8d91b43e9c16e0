"""RFC 8785 (JSON Canonicalization Scheme) encoding: the only byte form the chain hashes."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from audit.errors import CanonicalizationError

_MAX_SAFE = 2**53  # JCS (I-JSON) refuses integers whose magnitude is 2^53 or more
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


class _Slow(Exception):
    """`json` would not write this value as JCS does: take rfc8785's path."""


def _fast(value: Any) -> Any:
    """`value` in a form `json` writes exactly as JCS would, or raise `_Slow`.

    Strings, bools, null, safe integers, lists, and objects whose keys are ASCII (Python sorts
    keys by code point, JCS by UTF-16 unit; they agree on ASCII) are written the same. So is a
    finite float whose shortest repr has no exponent and a fraction (JCS formats numbers as
    ECMAScript does, from the same shortest digits; rfc8785 starts from ``str(f)``); one whose
    repr ends in ``.0`` is written by JCS as the integer, so it becomes that int. A float
    Python would write with an exponent, NaN, Infinity and anything else take the slow path.
    Returns `value` itself when nothing changed (the common case: no copy).
    """
    # Loops, not comprehensions over all(): this runs for every event appended.
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if -_MAX_SAFE < value < _MAX_SAFE:
            return value
        raise _Slow
    if t is float:
        r = repr(value)
        if "e" in r or "n" in r:  # an exponent, nan or inf
            raise _Slow
        return int(value) if r.endswith(".0") else value
    if t is dict:
        out: dict[str, Any] | None = None
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                raise _Slow
            w = v if type(v) is str else _fast(v)
            if w is not v:
                if out is None:
                    out = dict(value)
                out[k] = w
        return value if out is None else out
    if t is list:
        copy: list[Any] | None = None
        for i, v in enumerate(value):
            w = v if type(v) is str else _fast(v)
            if w is not v:
                if copy is None:
                    copy = list(value)
                copy[i] = w
        return value if copy is None else copy
    raise _Slow


def canonical(value: Any) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON bytes.

    Refuses what JCS cannot represent exactly: NaN and Infinity, and integers whose
    magnitude is 2^53 or more (they would not survive a round trip through an IEEE double).

    >>> canonical({"b": 1, "a": [True, None, "é"]})
    b'{"a":[true,null,"\\xc3\\xa9"],"b":1}'
    """
    try:
        return _dumps(_fast(value)).encode()
    except _Slow:
        pass
    except UnicodeEncodeError:
        pass  # a lone surrogate: let rfc8785 say so below
    try:
        return rfc8785.dumps(value)
    except rfc8785.FloatDomainError as exc:
        raise CanonicalizationError(
            f"{exc}; audit payloads may not contain NaN or Infinity: send null or a string",
        ) from exc
    except rfc8785.IntegerDomainError as exc:
        raise CanonicalizationError(
            f"{exc}; integers in audit payloads must be below 2^53 in magnitude: "
            "send larger numbers as strings",
        ) from exc
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, TypeError) as exc:
        # e.g. a datetime or a set in the payload, or a lone surrogate in a string
        raise CanonicalizationError(
            f"value has no canonical JSON form ({exc}); convert it to str, number, bool, "
            "null, list or dict, with strings in valid Unicode",
        ) from exc
