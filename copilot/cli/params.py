"""Small parsers shared by commands."""

from __future__ import annotations

import json
from typing import Any

from copilot.errors import ConfigError


def key_values(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """`KEY=VALUE` options into a dict; values are JSON when they parse, else strings."""
    found: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes KEY=VALUE, got {pair!r}")
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found
