"""Decide: what a subject sees in a placement now, logged durably before the answer returns.

The decision log is the audit trail itself. Each decide appends one `placement.decided`
entry in the same transaction as its row in `placement_decisions`: `data` holds what is
not personal (placement, candidate set, choice, probability, policy and version, holdout,
level, reasons), `personal` the features as seen, the segment and the explanation (erasable:
the chain commits to their digest, so erasure keeps `copilot audit verify` passing). Why
the trail and not a chain of its own: one verifier, one export bundle, one erasure path,
and on PostgreSQL the trail's append is already one round trip that never waits on another
writer's lock (a busy stream queues the entry, durable with the commit). The cost is one
hashed entry per decide in the tenant's stream; a batched log would be cheaper per decide
but a crash would lose the unflushed tail's evidence, which "durable before the response"
forbids.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from audit import Actor, AuditEvent, TransactionalAuditLog, Versions
from audit.db import readonly
from copilot.governance.signals import SignalRegistry
from copilot.governance.sources import SignalValue
from copilot.measure.holdouts import held_out
from copilot.placements import store
from copilot.placements.errors import ContextError, TokenError
from copilot.placements.model import Placement, PlacementCandidate
from copilot.placements.records import CandidateStatus, Decision, Explain, Item
from copilot.placements.registry import PlacementRegistry
from copilot.placements.rules import Evaluation, SubjectState, evaluate, sentence
from copilot.ranking import Candidate, Choice, PolicyInput

PAUSE_KIND = "placement"  # its rows in rollout_pauses


@dataclass(frozen=True, slots=True)
class Ask:
    """A decide checked and drawn, before anything is read (`Decider.ask`)."""

    tenant: str
    placement: Placement
    subject_id: str
    now: float
    overlay: dict[str, SignalValue]
    decision_id: str
    held: bool
    pause: tuple[str, str] | None
    actor: Actor
    from_client: bool


class Decider:
    """Decides, explains and records events for the declared placements."""

    def __init__(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        placements: PlacementRegistry,
        signals: SignalRegistry,
        *,
        holdout_salt: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.placements = placements
        self.signals = signals
        self.salt = holdout_salt
        self.clock = clock

    def context_values(
        self,
        placement: Placement,
        context: Mapping[str, Any],
        now: float,
        *,
        from_client: bool = False,
    ) -> dict[str, SignalValue]:
        """The request's context as signal values: only fields the placement reads, declared
        types; from a browser (`from_client`) only its `client_signals`."""
        refused = sorted(set(context) - set(placement.client_signals)) if from_client else []
        if refused:
            raise TokenError(
                f"a subject token may not send context fields {refused} to {placement.name} "
                f"(it may send: {list(placement.client_signals)}); send them from the app's "
                "server with the app key, or declare them in the placement's client_signals",
                code="token.context_refused", placement=placement.name, fields=refused,
            )  # fmt: skip
        undeclared = sorted(set(context) - set(placement.signal_names))
        if undeclared:
            raise ContextError(
                f"context fields {undeclared} are not signals {placement.name} reads "
                f"(it reads: {list(placement.signal_names)}); declare them for it or leave them out",
                placement=placement.name, fields=undeclared,
            )  # fmt: skip
        out: dict[str, SignalValue] = {}
        bad = []
        for name, value in context.items():
            spec = self.signals.get(name)
            if spec is None or not spec.accepts(value):
                bad.append(name)
            else:
                out[name] = SignalValue(
                    name=name, value=spec.check(value), observed_at=now, source="context"
                )
        if bad:
            raise ContextError(f"context fields {bad} do not fit their declared types",
                               code="placement.context_invalid", placement=placement.name, fields=bad)  # fmt: skip
        return out

    def held(self, placement: Placement, subject_id: str) -> bool:
        """Whether the subject is in the placement's holdout (deterministic)."""
        return held_out(
            subject_id, f"placement:{placement.name}", placement.holdout, salt=self.salt
        )

    def _evaluate(
        self, placement: Placement, state: SubjectState, now: float, held: bool,
        paused: bool = False,
    ) -> Evaluation:  # fmt: skip
        return evaluate(placement, state, now=now, held=held, caps=self.placements.caps,
                        classes=self.placements.classes, paused=paused)  # fmt: skip

    @staticmethod
    def _pause(placement: Placement) -> tuple[str, str] | None:
        """The rollout_pauses row a decide reads with the subject's state (guarded ones)."""
        return (PAUSE_KIND, placement.name) if placement.stop_rules else None

    def _choose(
        self, placement: Placement, ev: Evaluation, subject_id: str, decision_id: str,
        tenant: str | None = None,
    ) -> Choice:  # fmt: skip
        eligible = ev.eligible(placement)
        policy = self.placements.policies.get(placement.policy)
        ranked = [Candidate(id=c.id, priority=self.placements.priority(c.priority).rank, order=i)
                  for i, c in enumerate(placement.candidates) if c in eligible]  # fmt: skip
        draw = int.from_bytes(hashlib.sha256(decision_id.encode()).digest()[:8], "big") / 2**64
        request = PolicyInput(surface=placement.name, subject_id=subject_id, features=ev.features,
                              eligible=ranked, level=ev.degradation.level.value,
                              tenant=tenant)  # fmt: skip
        return policy.choose(request, draw)

    def decide(
        self,
        tenant: str,
        placement_name: str,
        subject_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        actor: Actor | None = None,
        from_client: bool = False,
    ) -> Decision:
        """The item to show (or none, with why), committed with its audit entry before returning.

        Context from the app's server (an app key) overrides stored values: it is the
        server's fresher truth. Context from a browser (`from_client`: a subject token) is
        refused unless the placement declares the signal in `client_signals`, and then only
        fills a gap: a stored value wins, so a page cannot forge what the server knows."""
        ask = self.ask(tenant, placement_name, subject_id, context, actor=actor,
                       from_client=from_client)  # fmt: skip
        with store.deciding(self.engine) as conn:
            state, paused = store.read_state(conn, tenant, subject_id, ask.placement.signal_names,
                                             now=ask.now, lock=True, pause=ask.pause)  # fmt: skip
            row, event, decision = self.conclude(ask, state, paused)
            with store.writing(conn):  # the row and its audit entry, committed
                store.insert_decision(conn, row)
                self.audit.append_in(conn, tenant, [event])
        return decision

    def ask(
        self, tenant: str, placement_name: str, subject_id: str,
        context: Mapping[str, Any] | None = None, *, actor: Actor | None = None,
        from_client: bool = False,
    ) -> Ask:  # fmt: skip
        """A decide's first half, before any I/O: the placement, the context checked, the
        holdout draw, the decision's id. Bad input raises here, having read nothing."""
        placement = self.placements.get(placement_name)
        now = self.clock()
        overlay = self.context_values(placement, context or {}, now, from_client=from_client)
        return Ask(tenant=tenant, placement=placement, subject_id=subject_id, now=now,
                   overlay=overlay, decision_id=uuid.uuid4().hex,
                   held=self.held(placement, subject_id), pause=self._pause(placement),
                   actor=actor or Actor.system("placements"), from_client=from_client)  # fmt: skip

    def inline(self, placement_name: str) -> bool:
        """Whether the placement's policy ranks without I/O (`RankingPolicy.inline`), so its
        decide may run on an event loop (the API's asyncio decide on PostgreSQL)."""
        placement = self.placements.get(placement_name)
        return bool(getattr(self.placements.policies.get(placement.policy), "inline", False))

    def conclude(
        self, ask: Ask, state: SubjectState, paused: bool
    ) -> tuple[dict[str, Any], AuditEvent, Decision]:
        """A decide's second half, given what was read under the subject's lock: the rules,
        the policy, the decision row and its audit event to write, and the answer."""
        values = ({**ask.overlay, **state.values} if ask.from_client
                  else {**state.values, **ask.overlay})  # fmt: skip
        state = SubjectState(state.prefs, values, state.shown, state.events)
        placement = ask.placement
        ev = self._evaluate(placement, state, ask.now, ask.held, paused)
        choice = self._choose(placement, ev, ask.subject_id, ask.decision_id, ask.tenant)
        chosen = placement.candidate(choice.candidate_id) if choice.candidate_id else None
        return self._record(ask, ev, choice, chosen)

    def _record(
        self, ask: Ask, ev: Evaluation, choice: Choice, chosen: PlacementCandidate | None
    ) -> tuple[dict[str, Any], AuditEvent, Decision]:
        placement, held, now = ask.placement, ask.held, ask.now
        why = ev.why() if chosen is None else None
        explanation = sentence(
            placement, chosen, ev, policy=f"{choice.policy}@{choice.version}", why=why
        )
        if chosen is not None and choice.contributions:  # a learned policy's top features
            explanation += " What weighed most: " + ", ".join(
                f"{c.feature} ({c.weight:+.2f})" for c in choice.contributions) + "."  # fmt: skip
        cls = self.placements.priority(chosen.priority) if chosen else None
        counted = chosen is not None and cls is not None and not cls.bypass_caps
        eligible = [c.id for c in ev.eligible(placement)]
        segment = None if placement.segment_by is None else ev.features.get(placement.segment_by)
        level, reasons = ev.degradation.level.value, list(ev.degradation.reasons)
        row = {
            "id": ask.decision_id, "tenant": ask.tenant, "subject_id": ask.subject_id,
            "placement": placement.name, "decided_at": now, "chosen": chosen.id if chosen else None,
            "candidates": eligible, "features": ev.features, "propensity": choice.probability,
            "policy": choice.policy, "version": choice.version, "holdout": held, "level": level,
            "reasons": reasons if why is None else [*reasons, why], "counted": counted,
            "segment": None if segment is None else str(segment)[:100], "explanation": explanation,
        }  # fmt: skip
        event = AuditEvent(
            event_type="placement.decided", actor=ask.actor, subject_id=ask.subject_id,
            versions=Versions(policy=f"{choice.policy}@{choice.version}"),
            data={"decision_id": ask.decision_id, "placement": placement.name,
                  "chosen": chosen.id if chosen else None, "candidates": eligible,
                  "propensity": choice.probability, "policy": choice.policy,
                  "version": choice.version, "holdout": held, "level": level,
                  "why": why, "counted": counted},
            personal={"features": ev.features, "segment": segment, "explanation": explanation},
        )  # fmt: skip
        item = (
            None
            if chosen is None
            else Item(id=chosen.id, content=chosen.content, priority=chosen.priority)
        )
        decision = Decision(
            decision_id=ask.decision_id, placement=placement.name, subject_id=ask.subject_id,
            item=item, why=why, explanation=explanation, holdout=held, policy=choice.policy,
            version=choice.version, probability=choice.probability, level=level,
            reasons=tuple(reasons), decided_at=now, contributions=tuple(choice.contributions),
        )  # fmt: skip
        return row, event, decision

    def explain(
        self,
        tenant: str,
        placement_name: str,
        subject_id: str,
        context: Mapping[str, Any] | None = None,
    ) -> Explain:
        """ "Why not shown": every candidate and what excludes it now (reads only)."""
        placement = self.placements.get(placement_name)
        now = self.clock()
        overlay = self.context_values(placement, context or {}, now)
        held = self.held(placement, subject_id)
        with readonly(self.engine.connect()) as conn:
            state, paused = store.read_state(conn, tenant, subject_id, placement.signal_names,
                                             now=now, pause=self._pause(placement))  # fmt: skip
        state = SubjectState(state.prefs, {**state.values, **overlay}, state.shown, state.events)
        ev = self._evaluate(placement, state, now, held, paused)
        choice = self._choose(placement, ev, subject_id, "explain", tenant)
        statuses = tuple(CandidateStatus(id=c.id, eligible=not ev.excluded[c.id],
                                         excluded_by=tuple(ev.excluded[c.id]), rule=c.rule_name,
                                         priority=c.priority) for c in placement.candidates)  # fmt: skip
        return Explain(placement=placement.name, subject_id=subject_id,
                       level=ev.degradation.level.value, reasons=ev.degradation.reasons,
                       holdout=held, would_show=choice.candidate_id, candidates=statuses)  # fmt: skip

    def recent(
        self, tenant: str, subject_id: str, limit: int = 20
    ) -> dict[str, list[dict[str, Any]]]:
        """The subject's latest decisions and events, newest first (the subject page)."""
        with readonly(self.engine.connect()) as conn:
            return store.recent(conn, tenant, subject_id, limit)


__all__ = ["Ask", "Decider"]
