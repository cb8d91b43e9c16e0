"""Holdouts: a deterministic share of subjects per workflow gets no proposals, for measurement.

Assignment hashes (salt, workflow, subject): the same subject is always in or out of the
same workflow's holdout, across processes and restarts, and independently across
workflows. Changing the salt reshuffles everyone (start a new experiment).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from copilot.errors import ConfigError


def held_out(subject_id: str, workflow: str, fraction: float, *, salt: str) -> bool:
    """Whether `subject_id` falls in `workflow`'s holdout of size `fraction` (0..1)."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{salt}\x1f{workflow}\x1f{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def parse_holdouts(text: str) -> dict[str, float]:
    """`COPILOT_HOLDOUTS`: `workflow=fraction` pairs separated by commas."""
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not name.strip() or not 0 <= fraction < 1:
            raise ConfigError(
                f"COPILOT_HOLDOUTS item {item!r}: use workflow=fraction with 0 <= fraction < 1, "
                "e.g. account_health=0.1"
            )
        out[name.strip()] = fraction
    return out


def fraction_for(workflow: str, default: float, overrides: Mapping[str, float]) -> float:
    """The configured holdout for a workflow: the override, else the workflow's own."""
    return overrides.get(workflow, default)
