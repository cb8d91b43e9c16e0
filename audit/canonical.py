"""RFC 8785 (JSON Canonicalization Scheme) encoding: the only byte form the chain hashes."""

from __future__ import annotations

from typing import Any

import rfc8785

from audit.errors import CanonicalizationError


def canonical(value: Any) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON bytes.

    Refuses what JCS cannot represent exactly: NaN and Infinity, and integers whose
    magnitude is 2^53 or more (they would not survive a round trip through an IEEE double).

    >>> canonical({"b": 1, "a": [True, None, "é"]})
    b'{"a":[true,null,"\\xc3\\xa9"],"b":1}'
    """
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
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(f"value has no canonical JSON form: {exc}") from exc
    except TypeError as exc:  # e.g. a datetime or a set in the payload
        raise CanonicalizationError(
            f"value is not JSON ({exc}); convert it to str, number, bool, null, list or dict",
        ) from exc
