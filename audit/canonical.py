"""RFC 8785 (JSON Canonicalization Scheme) encoding: the only byte form the chain hashes."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from audit.errors import CanonicalizationError

_MAX_SAFE = 2**53  # JCS (I-JSON) refuses integers whose magnitude is 2^53 or more
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _plain(value: Any) -> bool:
    """True when `json` already writes `value` exactly as JCS would.

    That holds for strings, bools, null, safe integers, lists, and objects whose keys are
    ASCII (Python sorts keys by code point, JCS by UTF-16 unit; they agree on ASCII).
    Floats (JCS uses ECMAScript number formatting) and anything else take the slow path.
    """
    # Loops, not all(): this runs for every event appended, and generators cost more.
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_MAX_SAFE < value < _MAX_SAFE)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return False
            if type(v) is not str and not _plain(v):
                return False
        return True
    if t is list:
        for v in value:  # noqa: SIM110 - a loop is faster than all() over a generator here
            if type(v) is not str and not _plain(v):
                return False
        return True
    return False


def canonical(value: Any) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON bytes.

    Refuses what JCS cannot represent exactly: NaN and Infinity, and integers whose
    magnitude is 2^53 or more (they would not survive a round trip through an IEEE double).

    >>> canonical({"b": 1, "a": [True, None, "é"]})
    b'{"a":[true,null,"\\xc3\\xa9"],"b":1}'
    """
    if _plain(value):
        try:
            return _dumps(value).encode()
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
