"""The decision log and its events in SQL: what a decide reads and writes in its transaction.

A decide is one transaction: the subject's lock, four reads (preferences, the declared
signals, the last day's counted decisions, the subject's dismiss/snooze/complete events),
the decision row and its `placement.decided` audit entry. The trail is the decision
log's tamper evidence (see copilot.placements.decide); this table is its queryable copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, text, update

from copilot.db.tables import placement_decisions as dec
from copilot.db.tables import placement_events as evt
from copilot.governance.consent import Preferences
from copilot.governance.sources import SignalValue
from copilot.placements.rules import DAY, PastEvent, SubjectState
from copilot.ranking import LoggedDecision

ERASED = json.dumps({"erased": True})


# The hot path's statements, built once: a Core select rebuilt per decide costs more CPU
# (construction and cache keys) than the database round trip it describes. The four reads
# are one UNION ALL (one round trip): rows tagged `pref`, `sig`, `shown` and `ev`, in
# columns (tag, a, b, c, d) whose meaning the tag gives. The subject's lock is taken by
# the statement before (a lock taken inside this one would come after its snapshot).
_STATE = text(
    "SELECT 'pref' AS k, opt_out_workflows AS a, consent_basis AS b, snooze_until AS c, "
    "CASE WHEN opt_out_all THEN 1.0 ELSE 0.0 END AS d, NULL AS e FROM subject_preferences "
    "WHERE tenant = :t AND subject_id = :s "
    "UNION ALL SELECT 'sig', name, value, observed_at, NULL, source FROM signals "
    "WHERE tenant = :t AND subject_id = :s AND name IN :names "
    "UNION ALL SELECT 'shown', placement, NULL, decided_at, NULL, NULL FROM placement_decisions "
    "WHERE tenant = :t AND subject_id = :s AND decided_at > :since AND counted = :yes "
    "UNION ALL SELECT kind, placement, candidate, at, until, NULL FROM placement_events "
    "WHERE tenant = :t AND subject_id = :s AND kind IN ('dismiss', 'snooze', 'complete') "
    "ORDER BY 1, 2, 4"
).bindparams(bindparam("names", expanding=True))
_INSERT = text("INSERT INTO placement_decisions (id, tenant, subject_id, placement, decided_at, "
               "chosen, candidates, features, propensity, policy, version, holdout, level, reasons, "
               "counted, segment, explanation) VALUES (:id, :tenant, :subject_id, :placement, "
               ":decided_at, :chosen, :candidates, :features, :propensity, :policy, :version, "
               ":holdout, :level, :reasons, :counted, :segment, :explanation)")  # fmt: skip


def read_state(
    conn: Connection, tenant: str, subject_id: str, names: Sequence[str], *, now: float
) -> SubjectState:
    """Everything the rules read about the subject, on `conn` (inside the lock when deciding)."""
    prefs = Preferences(tenant=tenant, subject_id=subject_id)
    values: dict[str, SignalValue] = {}
    shown: list[tuple[str, float]] = []
    events: list[PastEvent] = []
    params = {"t": tenant, "s": subject_id, "names": list(names) or [""], "since": now - DAY,
              "yes": True}  # fmt: skip
    for k, a, b, c, d, e in conn.execute(_STATE, params):
        if k == "pref":
            prefs = Preferences(tenant=tenant, subject_id=subject_id, opt_out_all=bool(d),
                                opt_out_workflows=tuple(json.loads(a)), snooze_until=c,
                                consent_basis=b)  # fmt: skip
        elif k == "sig":  # ascending by time: the latest value wins
            values[a] = SignalValue(name=a, value=json.loads(b), observed_at=c, source=e)
        elif k == "shown":
            shown.append((a, c))
        else:
            events.append(PastEvent(a, b, k, c, d))
    return SubjectState(prefs=prefs, values=values, shown=shown, events=events)


def insert_decision(conn: Connection, row: dict[str, Any]) -> None:
    """Write one decision row (JSON fields given as Python values)."""
    doc = dict(row)
    for key in ("candidates", "features", "reasons"):
        doc[key] = json.dumps(doc[key], sort_keys=True)
    conn.execute(_INSERT, doc)


def decision_row(conn: Connection, tenant: str, decision_id: str) -> Row[Any] | None:
    """One decision of the tenant."""
    return conn.execute(select(dec).where(dec.c.tenant == tenant, dec.c.id == decision_id)).first()


def event_row(
    conn: Connection, tenant: str, decision_id: str, event_id: str
) -> Row[Any] | None:
    """One event of the decision, by the app's event id (ids are scoped to their decision)."""
    return conn.execute(
        select(evt).where(evt.c.tenant == tenant, evt.c.decision_id == decision_id,
                          evt.c.event_id == event_id)
    ).first()  # fmt: skip


def logged(row: Row[Any]) -> LoggedDecision:
    """A decision row as learning reads it (copilot.ranking.LoggedDecision)."""
    return LoggedDecision(
        decision_id=row.id, tenant=row.tenant, surface=row.placement, subject_id=row.subject_id,
        decided_at=row.decided_at, features=json.loads(row.features),
        candidates=json.loads(row.candidates), chosen=row.chosen, propensity=row.propensity,
        policy=row.policy, version=row.version, holdout=row.holdout, segment=row.segment,
    )  # fmt: skip


def recent(
    conn: Connection, tenant: str, subject_id: str, limit: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """The subject's latest decisions and events (for the subject page)."""
    decisions = conn.execute(
        select(dec.c.id, dec.c.placement, dec.c.decided_at, dec.c.chosen, dec.c.holdout,
               dec.c.level, dec.c.reasons, dec.c.explanation, dec.c.policy, dec.c.version)
        .where(dec.c.tenant == tenant, dec.c.subject_id == subject_id)
        .order_by(dec.c.decided_at.desc()).limit(limit)
    ).mappings().all()  # fmt: skip
    events = conn.execute(
        select(evt.c.event_id, evt.c.decision_id, evt.c.placement, evt.c.candidate, evt.c.kind,
               evt.c.at, evt.c.until)
        .where(evt.c.tenant == tenant, evt.c.subject_id == subject_id)
        .order_by(evt.c.at.desc()).limit(limit)
    ).mappings().all()  # fmt: skip
    return {"decisions": [dict(d) for d in decisions], "events": [dict(e) for e in events]}


def erase_in(conn: Connection, tenant: str, subject_id: str) -> int:
    """Redact the subject's decisions' personal parts (features, segment, explanation)."""
    return conn.execute(
        update(dec)
        .where(dec.c.tenant == tenant, dec.c.subject_id == subject_id)
        .values(features=ERASED, segment=None, explanation="")
    ).rowcount


__all__ = [
    "decision_row",
    "erase_in",
    "event_row",
    "insert_decision",
    "logged",
    "read_state",
    "recent",
]
