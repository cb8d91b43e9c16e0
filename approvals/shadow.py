"""Shadow mode: rules that only record what they would have done, measured against people.

A policy rule marked `shadow` is evaluated with every proposal and its verdict stored on
the request (`shadow`); it never applies. Once people have decided enough requests, the
agreement figures say whether a rule can move up a tier (say, from review to
auto-approval) on evidence rather than hope.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, or_, select

from approvals.tables import requests

# What a shadow verdict agrees with: a shadow `auto_approve` with an approval, a shadow
# `deny` with a rejection (a shadow `require` predicts nothing about the decision).
_AGREES_WITH = {"auto_approve": "approved", "deny": "rejected"}


def shadow_figures(rows: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per shadow rule, how often it agreed with people, from (shadow JSON, status) pairs.

    A shadow `auto_approve` agrees with an approval, a shadow `deny` with a rejection. The
    rows must be requests people settled (see `agreement`).
    """
    figures: dict[str, dict[str, Any]] = {}
    for shadow, status in rows:
        for entry in json.loads(shadow):
            would = _AGREES_WITH.get(entry["action"])
            if would is None:
                continue
            fig = figures.setdefault(
                entry["rule"], {"rule": entry["rule"], "decided": 0, "agreed": 0}
            )
            fig["decided"] += 1
            fig["agreed"] += would == status
    for fig in figures.values():
        fig["agreement"] = round(fig["agreed"] / fig["decided"], 3)
    return sorted(figures.values(), key=lambda f: f["rule"])


def agreement(conn: Connection, tenant: str) -> list[dict[str, Any]]:
    """The tenant's shadow figures over the requests people settled (not the policy)."""
    rows = conn.execute(
        select(requests.c.shadow, requests.c.status).where(
            requests.c.tenant == tenant, requests.c.status.in_(["approved", "rejected"]),
            requests.c.shadow != "[]",
            or_(requests.c.reason.is_(None), ~requests.c.reason.like("policy rule %")),
        )
    ).all()  # fmt: skip
    return shadow_figures((shadow, status) for shadow, status in rows)


__all__ = ["agreement", "shadow_figures"]
