"""Who may see what: roles against signal sensitivity, and audit payloads.

    role       public/internal   personal                       special          audit payloads
    app        yes               yes (its own tenant)           with the grant   no
    reviewer   yes               yes (its own tenant)           with the grant   yes (own tenant)
    auditor    yes               only with the `personal` grant with the grant   only with `personal`
    admin      yes               yes                            with the grant   yes

Tenant scoping is not decided here: every query is already scoped to the caller's tenant
(the HTTP layer answers 404 for another tenant's ids). This module decides, within a
tenant, which values a role sees in clear and which it sees as `[redacted:<sensitivity>]`.
An auditor without the grant still sees every event's metadata, hash and commitment, so
the trail can be verified without reading anyone's personal data.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from copilot.governance.keys import Role  # the roles a key carries: one definition
from copilot.governance.signals import Sensitivity, SignalRegistry

_PERSONAL = frozenset({Sensitivity.PUBLIC, Sensitivity.INTERNAL, Sensitivity.PERSONAL})
_SEES: dict[Role, frozenset[Sensitivity]] = {
    "app": _PERSONAL,
    "reviewer": _PERSONAL,
    "auditor": frozenset({Sensitivity.PUBLIC, Sensitivity.INTERNAL}),
    "admin": _PERSONAL,
}


def may_see(role: Role, sensitivity: Sensitivity, *, grants: Collection[str] = ()) -> bool:
    """Whether `role` (with `grants`) sees values of this sensitivity in clear."""
    return sensitivity in _SEES[role] or sensitivity.value in grants


def redacted(sensitivity: Sensitivity) -> str:
    """What a hidden value is shown as."""
    return f"[redacted:{sensitivity.value}]"


def signal_view(
    values: Mapping[str, Any],
    registry: SignalRegistry,
    role: Role,
    *,
    grants: Collection[str] = (),
) -> dict[str, Any]:
    """Signal values as `role` may see them (an undeclared name counts as special)."""
    out = {}
    for name, value in values.items():
        spec = registry.get(name)
        level = spec.sensitivity if spec is not None else Sensitivity.SPECIAL
        out[name] = value if may_see(role, level, grants=grants) else redacted(level)
    return out


def audit_view(
    entry: Mapping[str, Any], role: Role, *, grants: Collection[str] = ()
) -> dict[str, Any]:
    """An audit entry as `role` may see it: the erasable `personal` part only when allowed.

    The hash, link and commitment always stay, so verification never needs the payload.
    """
    out = dict(entry)
    allowed = role in ("reviewer", "admin") or (
        role == "auditor" and Sensitivity.PERSONAL.value in grants
    )
    if out.get("personal") is not None and not allowed:
        out["personal"] = redacted(Sensitivity.PERSONAL)
    return out
