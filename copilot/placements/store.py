"""The decision log and its events in SQL: what a decide reads and writes in its transaction.

A decide is one transaction: the subject's lock, four reads (preferences, the declared
signals, the last day's counted decisions, the subject's dismiss/snooze/complete events),
the decision row and its `placement.decided` audit entry. The trail is the decision
log's tamper evidence (see copilot.placements.decide); this table is its queryable copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, Row, select, update

from audit.db import driver_of
from copilot.db.tables import placement_decisions as dec
from copilot.db.tables import placement_events as evt
from copilot.governance.consent import Preferences
from copilot.governance.sources import SignalValue
from copilot.placements._sql import LOCK_CLASS
from copilot.placements.rules import DAY, PastEvent, SubjectState
from copilot.ranking import LoggedDecision

_IDLE = TransactionStatus.IDLE  # no transaction open
ERASED = json.dumps({"erased": True})


# The hot path's statements, on the driver: SQLAlchemy's per-statement machinery costs more
# CPU than the database round trip it describes (a decide is a handful of tiny statements).
# The reads are one UNION ALL: rows tagged `pref`, `sig`, `shown`, `ev` and `pause`, in
# columns (tag, a, b, c, d, e) whose meaning the tag gives. The subject's lock is taken by
# the statement before (a lock taken inside this one would come after its snapshot); on
# PostgreSQL both go in one pipeline, so lock and read cost one round trip, and each
# statement still gets its own snapshot, taken after the lock is held.
_STATE = (
    "SELECT 'pref' AS k, opt_out_workflows AS a, consent_basis AS b, snooze_until AS c, "
    "CASE WHEN opt_out_all THEN 1.0 ELSE 0.0 END AS d, NULL AS e FROM subject_preferences "
    "WHERE tenant = {t} AND subject_id = {s} "
    "UNION ALL SELECT 'sig', name, value, observed_at, NULL, source FROM signals "
    "WHERE tenant = {t} AND subject_id = {s} AND {names} "
    "UNION ALL SELECT 'shown', placement, NULL, decided_at, NULL, NULL FROM placement_decisions "
    "WHERE tenant = {t} AND subject_id = {s} AND decided_at > {since} AND counted = {yes} "
    "UNION ALL SELECT kind, placement, candidate, at, until, NULL FROM placement_events "
    "WHERE tenant = {t} AND subject_id = {s} AND kind IN ('dismiss', 'snooze', 'complete') "
    "UNION ALL SELECT 'pause', state, NULL, NULL, NULL, NULL FROM rollout_pauses "
    "WHERE tenant = {t} AND kind = {pk} AND target = {pt} "
    "ORDER BY 1, 2, 4"
)
_PG_STATE = _STATE.format(t="%(t)s", s="%(s)s", names="name = ANY(%(names)s)",
                          since="%(since)s", yes="true", pk="%(pk)s", pt="%(pt)s")  # fmt: skip
_COLUMNS = ("id", "tenant", "subject_id", "placement", "decided_at", "chosen", "candidates",
            "features", "propensity", "policy", "version", "holdout", "level", "reasons",
            "counted", "segment", "explanation")  # fmt: skip


def _insert(value: str) -> str:
    """The decision row's INSERT, each column's placeholder made by `value` from its name."""
    return "INSERT INTO placement_decisions ({}) VALUES ({})".format(
        ", ".join(_COLUMNS), ", ".join(value.format(c) for c in _COLUMNS)
    )


_INSERT = _insert("%({})s")
_SQLITE_INSERT = _insert(":{}")
_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"

# The same transaction for asyncpg (the API's asyncio decide, copilot.placements.aio): BEGIN and
# the lock in one simple-protocol message (`begin_locked`), numbered parameters, and the
# row and its audit entry in one statement (a data-modifying WITH runs exactly once,
# whether or not the query reads it).
STATE_NUM = _STATE.format(t="$1", s="$2", names="name = ANY($3::text[])", since="$4",
                          yes="true", pk="$5", pt="$6")  # fmt: skip


def lock_args(tenant: str, subject_id: str) -> tuple[int, str]:
    """`_LOCK`'s arguments: the subject's decide lock (LOCK_CLASS, hashtext of tenant and
    subject), the same key in every release, so decides of two releases exclude each other
    for a subject during a rolling deploy."""
    return LOCK_CLASS, f"{tenant}\x1f{subject_id}"


def begin_locked(tenant: str, subject_id: str) -> str:
    """BEGIN and the subject's decide lock (`lock_args`'s key) as one message. The text goes
    in as hex digits, decoded by the server (`convert_from(decode(...))`), so there is
    nothing to quote and the key is the one `hashtext` gives the bound parameter."""
    cls, text = lock_args(tenant, subject_id)
    key = text.encode().hex()
    return (f"BEGIN; SELECT pg_advisory_xact_lock({cls:d}, "
            f"hashtext(convert_from(decode('{key}', 'hex'), 'UTF8')))")  # fmt: skip


def state_args(
    tenant: str, subject_id: str, names: Sequence[str], now: float, pause: tuple[str, str] | None
) -> tuple[str, str, list[str], float, str, str]:
    """STATE_NUM's arguments, as `read_state` binds them."""
    pk, pt = pause or ("", "")
    return tenant, subject_id, list(names), now - DAY, pk, pt


def write_num(row: dict[str, Any], append: tuple[str, dict[str, object]]) -> tuple[str, list[Any]]:
    """The decision row and its audit entry (`append`: the trail's `append_call`) as one
    numbered statement and its arguments; its rows are the append's results."""
    doc = decision_doc(row)
    call, params = append
    sql, names = _numbered(f"WITH d AS ({_INSERT_D}) {call}")
    values = {**{f"d_{c}": doc[c] for c in _COLUMNS}, **params}
    return sql, [values[n] for n in names]


_INSERT_D = _insert("%(d_{})s")  # prefixed: the audit call binds its own subject_id
_NAMED = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=16)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """psycopg's `%(name)s` as asyncpg's `$n`, and the names in their numbers' order."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


@lru_cache(maxsize=64)
def _sqlite_state(n: int) -> str:
    """The reads for `n` signal names in sqlite3's named style."""
    names = "name IN ({})".format(", ".join(f":n{i}" for i in range(n))) if n else "0 = 1"
    return _STATE.format(t=":t", s=":s", names=names, since=":since", yes="1", pk=":pk",
                         pt=":pt")  # fmt: skip


@contextmanager
def deciding(engine: Engine) -> Iterator[Connection]:
    """The decide's transaction. SQLite: `BEGIN IMMEDIATE` (audit.db), committed on exit.
    PostgreSQL: no BEGIN yet. `read_state(lock=True)` sends BEGIN with the lock and the
    reads, and `writing` sends COMMIT with the row and its audit entry, so the whole
    transaction costs three round trips; anything raised rolls it back."""
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as plain:
        conn = plain.execution_options(isolation_level="AUTOCOMMIT")  # BEGIN/COMMIT are ours
        db = driver_of(conn)
        try:
            yield conn
        except BaseException:
            if db.info.transaction_status != _IDLE and not db.closed:
                db.execute("ROLLBACK")
            raise
        if db.info.transaction_status != _IDLE:  # a decide that never wrote: nothing to keep
            db.execute("ROLLBACK")


@contextmanager
def writing(conn: Connection) -> Iterator[None]:
    """The decision row and its audit entry, then COMMIT: one pipeline on PostgreSQL (the
    audit call's answer is one round trip, the COMMIT another); SQLite commits on leaving
    `deciding`."""
    if conn.dialect.name != "postgresql":
        yield
        return
    db = driver_of(conn)
    with db.pipeline():
        yield
        db.execute("COMMIT")


def read_state(
    conn: Connection, tenant: str, subject_id: str, names: Sequence[str], *, now: float,
    lock: bool = False, pause: tuple[str, str] | None = None,
) -> tuple[SubjectState, bool]:  # fmt: skip
    """Everything the rules read about the subject, on `conn`, and whether `pause` (a
    (kind, target) of rollout_pauses) is paused. `lock` (in `deciding`): open the
    transaction and take the subject's decide lock first, all in one round trip on
    PostgreSQL (SQLite's writing transaction already holds the database's lock)."""
    db = driver_of(conn)
    pk, pt = pause or ("", "")
    if conn.dialect.name == "postgresql":
        params = {"t": tenant, "s": subject_id, "names": list(names), "since": now - DAY,
                  "pk": pk, "pt": pt}  # fmt: skip
        if lock:
            with db.pipeline():  # fetched after the pipeline's one sync: one round trip
                db.execute("BEGIN")
                db.execute(_LOCK, lock_args(tenant, subject_id), prepare=True)
                cur = db.execute(_PG_STATE, params, prepare=True)
            found = cur.fetchall()
        else:
            found = db.execute(_PG_STATE, params, prepare=True).fetchall()
    else:
        params = {"t": tenant, "s": subject_id, "since": now - DAY, "pk": pk, "pt": pt,
                  **{f"n{i}": n for i, n in enumerate(names)}}  # fmt: skip
        found = db.execute(_sqlite_state(len(names)), params).fetchall()
    return state_of(tenant, subject_id, found)


def state_of(tenant: str, subject_id: str, found: Sequence[Any]) -> tuple[SubjectState, bool]:
    """The state read's rows (tag, a, b, c, d, e) as the rules' SubjectState, and the pause."""
    prefs = Preferences(tenant=tenant, subject_id=subject_id)
    values: dict[str, SignalValue] = {}
    shown: list[tuple[str, float]] = []
    events: list[PastEvent] = []
    paused = False
    for k, a, b, c, d, e in found:
        if k == "sig":  # ascending by time: the latest value wins
            values[a] = SignalValue.model_construct(name=a, value=json.loads(b), observed_at=c,
                                                    source=e)  # fmt: skip
        elif k == "shown":
            shown.append((a, c))
        elif k == "pref":
            prefs = Preferences(tenant=tenant, subject_id=subject_id, opt_out_all=bool(d),
                                opt_out_workflows=tuple(json.loads(a)), snooze_until=c,
                                consent_basis=b)  # fmt: skip
        elif k == "pause":
            paused = a == "paused"
        else:
            events.append(PastEvent(a, b, k, c, d))
    return SubjectState(prefs=prefs, values=values, shown=shown, events=events), paused


def decision_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A decision row as stored: its JSON fields as text."""
    doc = dict(row)
    for key in ("candidates", "features", "reasons"):
        doc[key] = json.dumps(doc[key], sort_keys=True)
    return doc


def insert_decision(conn: Connection, row: dict[str, Any]) -> None:
    """Write one decision row (JSON fields given as Python values)."""
    doc = decision_doc(row)
    db = driver_of(conn)
    if conn.dialect.name == "postgresql":
        db.execute(_INSERT, doc, prepare=True)
    else:
        db.execute(_SQLITE_INSERT, doc)


def decision_row(conn: Connection, tenant: str, decision_id: str) -> Row[Any] | None:
    """One decision of the tenant."""
    return conn.execute(select(dec).where(dec.c.tenant == tenant, dec.c.id == decision_id)).first()


def event_row(conn: Connection, tenant: str, decision_id: str, event_id: str) -> Row[Any] | None:
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
    "STATE_NUM",
    "begin_locked",
    "decision_doc",
    "deciding",
    "decision_row",
    "erase_in",
    "event_row",
    "insert_decision",
    "lock_args",
    "logged",
    "read_state",
    "recent",
    "state_args",
    "state_of",
    "write_num",
    "writing",
]
