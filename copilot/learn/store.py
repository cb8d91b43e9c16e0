"""The learning wing's storage: the decision log it owns, feedback, policy versions, evidence.

A policy version is one row with its whole artifact (canonical JSON) and its hash,
inserted with its `learn.trained` audit event in one transaction: a trainer killed at any
instant leaves either the whole version or nothing. Reading a version re-hashes it and
refuses a mismatch (`learn.bad_artifact`), so a row changed behind our back is never served.
Every state change (shadow -> live -> retired, or demoted) commits with its audit event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from audit import Actor, AuditEvent, TransactionalAuditLog, Versions
from audit.db import readonly
from copilot.db.tables import learn_decisions, learn_evidence, learn_feedback, learn_policies
from copilot.learn.errors import PolicyNotFoundError, PolicyStateError, UnknownDecisionError
from copilot.learn.model import Artifact, load_artifact
from copilot.learn.policy import LearnedPolicy
from copilot.learn.rewards import Feedback
from copilot.ranking import Choice, LoggedDecision, RankingPolicy, RulesPolicy

State = Literal["shadow", "live", "retired", "demoted"]


class PolicyVersion(BaseModel):
    """A stored version's bookkeeping (its artifact is read with `LearnStore.artifact`)."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    surface: str
    version: str
    hash: str
    state: State
    n_train: int
    created_at: float
    updated_at: float
    reason: str | None = None


def _version(row: Any) -> PolicyVersion:
    return PolicyVersion(tenant=row.tenant, surface=row.surface, version=row.version,
                         hash=row.hash, state=row.state, n_train=row.n_train,
                         created_at=row.created_at, updated_at=row.updated_at,
                         reason=row.reason)  # fmt: skip


def _row(
    decision: LoggedDecision, distribution: Mapping[str, float] | None, shadow: Choice | None
) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id, "tenant": decision.tenant,
        "surface": decision.surface, "subject_id": decision.subject_id,
        "decided_at": decision.decided_at, "features": json.dumps(dict(decision.features)),
        "candidates": json.dumps(list(decision.candidates)), "chosen": decision.chosen,
        "propensity": decision.propensity, "policy": decision.policy,
        "version": decision.version, "holdout": decision.holdout, "segment": decision.segment,
        "distribution": json.dumps(dict(distribution)) if distribution else None,
        "shadow_version": shadow.version if shadow else None,
        "shadow_pick": shadow.candidate_id if shadow else None,
    }  # fmt: skip


class LearnStore:
    """Reads and writes of the learning wing; implements `copilot.learn.rewards.DecisionLog`."""

    def __init__(self, engine: Engine, audit: TransactionalAuditLog, *,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.engine = engine
        self.audit = audit
        self.clock = clock

    # -- the decision log ------------------------------------------------------------------

    def log_decision(
        self, decision: LoggedDecision, *, distribution: Mapping[str, float] | None = None,
        shadow: Choice | None = None, conn: Connection | None = None,
    ) -> None:  # fmt: skip
        """Record a ranked choice as seen (and the shadow policy's pick beside it)."""
        row = _row(decision, distribution, shadow)
        if conn is not None:
            conn.execute(insert(learn_decisions), [row])
            return
        with self.engine.begin() as own:
            own.execute(insert(learn_decisions), [row])

    def log_decisions(self, decisions: Sequence[LoggedDecision]) -> int:
        """Record many ranked choices in one transaction (an import, a replay, a backfill)."""
        if decisions:
            with self.engine.begin() as conn:
                conn.execute(insert(learn_decisions), [_row(d, None, None) for d in decisions])
        return len(decisions)

    def add_feedback(self, tenant: str, items: Sequence[Feedback]) -> int:
        """Record feedback about logged decisions of this tenant; unknown ids are refused."""
        ids = sorted({f.decision_id for f in items})
        with self.engine.begin() as conn:
            known = set(conn.scalars(select(learn_decisions.c.decision_id).where(
                learn_decisions.c.tenant == tenant, learn_decisions.c.decision_id.in_(ids))))  # fmt: skip
            missing = [i for i in ids if i not in known]
            if missing:
                raise UnknownDecisionError(f"no logged decision {missing[0]!r} in this tenant",
                                           decision_id=missing[0])  # fmt: skip
            if items:
                conn.execute(insert(learn_feedback),
                             [{"tenant": tenant, **f.model_dump()} for f in items])  # fmt: skip
        return len(items)

    def decisions(
        self, tenant: str, surface: str, since: float, until: float
    ) -> list[LoggedDecision]:
        """The decisions of a window, oldest first."""
        t = learn_decisions.c
        query = (select(learn_decisions)
                 .where(t.tenant == tenant, t.surface == surface, t.decided_at >= since,
                        t.decided_at < until)
                 .order_by(t.decided_at, t.decision_id))  # fmt: skip
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(query).all()
        return [
            LoggedDecision(
                decision_id=r.decision_id, tenant=r.tenant, surface=r.surface,
                subject_id=r.subject_id, decided_at=r.decided_at,
                features=json.loads(r.features), candidates=json.loads(r.candidates),
                chosen=r.chosen, propensity=r.propensity, policy=r.policy, version=r.version,
                holdout=bool(r.holdout), segment=r.segment,
            )
            for r in rows
        ]

    def feedback(self, tenant: str, decision_ids: Sequence[str]) -> list[Feedback]:
        """The feedback of these decisions."""
        out: list[Feedback] = []
        t = learn_feedback.c
        with readonly(self.engine.connect()) as conn:
            for start in range(0, len(decision_ids), 500):  # bounded IN lists
                chunk = list(decision_ids[start : start + 500])
                rows = conn.execute(select(learn_feedback).where(
                    t.tenant == tenant, t.decision_id.in_(chunk)).order_by(t.id)).all()  # fmt: skip
                out += [Feedback(decision_id=r.decision_id, source=r.source, event=r.event,
                                 at=r.at, edit_distance=r.edit_distance, reason=r.reason,
                                 value=r.value) for r in rows]  # fmt: skip
        return out

    def agreement(self, tenant: str, surface: str, version: str) -> tuple[int, int]:
        """How many logged decisions the shadow version scored, and on how many it agreed."""
        t = learn_decisions.c
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(select(t.chosen, t.shadow_pick).where(
                t.tenant == tenant, t.surface == surface, t.shadow_version == version)).all()  # fmt: skip
        return len(rows), sum(1 for r in rows if r.chosen == r.shadow_pick)

    # -- policy versions -------------------------------------------------------------------

    def save(self, tenant: str, artifact: Artifact, *, actor: Actor) -> PolicyVersion:
        """Store a trained artifact as a shadow version (the same hash again is a no-op)."""
        digest = artifact.hash()
        version = digest[:16]
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(learn_policies), [{
                    "tenant": tenant, "surface": artifact.surface, "version": version,
                    "hash": digest, "artifact": artifact.to_json(), "state": "shadow",
                    "n_train": artifact.n_train, "created_at": now, "updated_at": now,
                }])  # fmt: skip
                self._event(conn, tenant, artifact.surface, version, "learn.trained", actor, {
                    "hash": digest, "data_hash": artifact.data_hash, "n_train": artifact.n_train,
                    "window": [artifact.window_start, artifact.window_end], "state": "shadow",
                })  # fmt: skip
        except IntegrityError:
            pass  # the same window and config trained before: that version stands
        return self.get(tenant, artifact.surface, version)

    def get(self, tenant: str, surface: str, version: str) -> PolicyVersion:
        """One version's bookkeeping, or `learn.not_found`."""
        t = learn_policies.c
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(select(learn_policies).where(
                t.tenant == tenant, t.surface == surface, t.version == version)).first()  # fmt: skip
        if row is None:
            raise PolicyNotFoundError(f"no policy version {version!r} for {surface!r}",
                                      surface=surface, version=version)  # fmt: skip
        return _version(row)

    def versions(self, tenant: str, surface: str | None = None) -> list[PolicyVersion]:
        """Every version, oldest first."""
        t = learn_policies.c
        where = [t.tenant == tenant] + ([t.surface == surface] if surface else [])
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(select(learn_policies).where(and_(*where))
                                .order_by(t.created_at, t.version)).all()  # fmt: skip
        return [_version(r) for r in rows]

    def in_state(self, tenant: str, surface: str, state: State) -> PolicyVersion | None:
        """The newest version in ``state`` (one is live at most)."""
        found = [v for v in self.versions(tenant, surface) if v.state == state]
        return found[-1] if found else None

    def artifact(self, tenant: str, surface: str, version: str) -> Artifact:
        """A version's artifact, checked against its recorded hash."""
        t = learn_policies.c
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(select(t.artifact, t.hash).where(
                t.tenant == tenant, t.surface == surface, t.version == version)).first()  # fmt: skip
        if row is None:
            raise PolicyNotFoundError(f"no policy version {version!r} for {surface!r}",
                                      surface=surface, version=version)  # fmt: skip
        return load_artifact(row.artifact, row.hash)

    def serving(self, tenant: str, surface: str) -> RankingPolicy:
        """What decides now: the live learned version, else the rules."""
        live = self.in_state(tenant, surface, "live")
        if live is None:
            return RulesPolicy()
        return LearnedPolicy(self.artifact(tenant, surface, live.version), version=live.version)

    def set_state(
        self, conn: Connection, tenant: str, surface: str, version: str, state: State, *,
        expect: Sequence[State], actor: Actor, event: str, data: dict[str, Any],
        reason: str | None = None,
    ) -> None:  # fmt: skip
        """Move a version to ``state`` from one of ``expect`` (compare-and-set) with its event."""
        t = learn_policies.c
        done = conn.execute(update(learn_policies).where(
            t.tenant == tenant, t.surface == surface, t.version == version,
            t.state.in_(list(expect))).values(state=state, updated_at=self.clock(), reason=reason))  # fmt: skip
        if done.rowcount != 1:
            raise PolicyStateError(
                f"version {version!r} of {surface!r} is not {' or '.join(expect)}; reload",
                surface=surface, version=version,
            )  # fmt: skip
        self._event(conn, tenant, surface, version, event, actor,
                    {**data, "state": state, "reason": reason})  # fmt: skip

    def live_version(self, conn: Connection, tenant: str, surface: str) -> str | None:
        """The live version inside a transaction."""
        t = learn_policies.c
        return conn.scalar(select(t.version).where(
            t.tenant == tenant, t.surface == surface, t.state == "live"))  # fmt: skip

    # -- evidence ----------------------------------------------------------------------------

    def save_evidence(self, conn: Connection, tenant: str, document: dict[str, Any],
                      digest: str) -> None:  # fmt: skip
        """Keep an evidence document by its hash (the same evidence twice is stored once)."""
        exists = conn.scalar(select(learn_evidence.c.hash).where(learn_evidence.c.hash == digest))
        if exists is None:
            conn.execute(insert(learn_evidence), [{
                "hash": digest, "tenant": tenant, "surface": document["surface"],
                "version": document["candidate"]["version"], "verdict": document["verdict"],
                "document": json.dumps(document, sort_keys=True), "created_at": self.clock(),
            }])  # fmt: skip

    def evidence(self, tenant: str, digest: str) -> dict[str, Any]:
        """An evidence document by hash."""
        t = learn_evidence.c
        with readonly(self.engine.connect()) as conn:
            text = conn.scalar(select(t.document).where(t.tenant == tenant, t.hash == digest))
        if text is None:
            raise PolicyNotFoundError(f"no evidence {digest[:12]}", evidence=digest)
        result: dict[str, Any] = json.loads(text)
        return result

    def _event(
        self, conn: Connection, tenant: str, surface: str, version: str, event_type: str,
        actor: Actor, data: dict[str, Any],
    ) -> None:  # fmt: skip
        event = AuditEvent(event_type=event_type, actor=actor,
                           versions=Versions(policy=f"{surface}@{version}"),
                           data={"surface": surface, "version": version, **data})  # fmt: skip
        self.audit.append_in(conn, tenant, [event])


__all__ = ["LearnStore", "PolicyVersion", "State"]
