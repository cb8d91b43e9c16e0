"""Placements and the learning wing, wired: the decision log as a `DecisionLog`, the promoted policy.

`PlacementLog` reads `placement_decisions` and `placement_events` as the learning wing's
`copilot.learn.rewards.DecisionLog`: each decision that showed an item is a logged
decision (features as seen, eligible set, pick, propensity, policy@version), each event a
`placement` feedback (accept and complete reward, dismiss counts against, per the learn
config's `rewards.placement`). Decisions that showed nothing carry no pick to learn from.
A decision is in the holdout (never trained on) when the placement held the subject out or
the learning wing's holdout did (`copilot.learn.service.in_holdout`, the rules serve it).

`PromotedPolicy` is registered in the placements' policy registry as `learned`: a
placement declared with `policy: learned` is served by the surface's live version once
two admins promoted one, and by the rules otherwise (the rules' pick leading, every
eligible candidate keeping the exploration floor, so the first version's evidence has
support; floor 0 is the plain rules). A demoted version stops serving at the next decide:
the live version is read on every decide; so does one a stop rule paused (the learn
config's guardrails over `copilot.placements.evidence.PolicyHoldouts`, kind `policy` in
`rollout_pauses`), until an admin resumes it. It only ever picks from `request.eligible`.

The learning wing loads numpy and LangChain: it is imported when a policy is first asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, text

from audit.db import readonly
from copilot.db.tables import placement_decisions as dec
from copilot.db.tables import placement_events as evt
from copilot.ranking import Choice, LoggedDecision, PolicyInput, RankingPolicy, RulesPolicy

if TYPE_CHECKING:
    from copilot.learn.rewards import DecisionLog, Feedback
    from copilot.learn.service import Learning

LEARNED = "learned"
_CHUNK = 500  # bounded IN lists


class PlacementLog:
    """The placements decision log as `copilot.learn.rewards.DecisionLog` (two methods)."""

    def __init__(self, engine: Engine, *, holdout_share: float = 0.0) -> None:
        self.engine = engine
        self.holdout_share = holdout_share

    def decisions(
        self, tenant: str, surface: str, since: float, until: float
    ) -> list[LoggedDecision]:
        """The window's decisions of placement `surface` that showed an item, oldest first."""
        from copilot.learn.service import in_holdout

        c = dec.c
        query = (select(dec).where(c.tenant == tenant, c.placement == surface,
                                   c.decided_at >= since, c.decided_at < until,
                                   c.chosen.is_not(None))
                 .order_by(c.decided_at, c.id))  # fmt: skip
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(query).all()
        return [LoggedDecision(
            decision_id=r.id, tenant=r.tenant, surface=r.placement, subject_id=r.subject_id,
            decided_at=r.decided_at, features=json.loads(r.features),
            candidates=json.loads(r.candidates), chosen=r.chosen, propensity=r.propensity,
            policy=r.policy, version=r.version, segment=r.segment,
            holdout=bool(r.holdout) or in_holdout(tenant, surface, r.subject_id,
                                                  self.holdout_share),
        ) for r in rows if "erased" not in json.loads(r.features)]  # fmt: skip

    def feedback(self, tenant: str, decision_ids: Sequence[str]) -> list[Feedback]:
        """The events on these decisions, as `placement` feedback."""
        from copilot.learn.rewards import Feedback

        out: list[Feedback] = []
        c = evt.c
        with readonly(self.engine.connect()) as conn:
            for start in range(0, len(decision_ids), _CHUNK):
                chunk = list(decision_ids[start : start + _CHUNK])
                rows = conn.execute(select(c.decision_id, c.kind, c.at).where(
                    c.tenant == tenant, c.decision_id.in_(chunk)).order_by(c.at, c.event_id))  # fmt: skip
                out += [Feedback(decision_id=d, source="placement", event=k, at=at)
                        for d, k, at in rows]  # fmt: skip
        return out


class RoutedLog:
    """Placement surfaces read from the placements log, every other surface from `other`."""

    def __init__(self, placements: DecisionLog, other: DecisionLog,
                 names: Collection[str]) -> None:  # fmt: skip
        self.placements = placements
        self.other = other
        self.names = frozenset(names)

    def decisions(
        self, tenant: str, surface: str, since: float, until: float
    ) -> Sequence[LoggedDecision]:
        log = self.placements if surface in self.names else self.other
        return log.decisions(tenant, surface, since, until)

    def feedback(self, tenant: str, decision_ids: Sequence[str]) -> Sequence[Feedback]:
        # Decision ids are unique across both logs (uuids): each id finds its own feedback.
        return [*self.placements.feedback(tenant, decision_ids),
                *self.other.feedback(tenant, decision_ids)]  # fmt: skip


POLICY_KIND = "policy"  # a learned policy's rows in rollout_pauses (target: the surface)
# The live version as LearnStore.in_state(..., "live") finds it (the newest), and the pause.
_SERVING = text(
    "SELECT (SELECT version FROM learn_policies WHERE tenant = :t AND surface = :s "
    "AND state = 'live' ORDER BY created_at DESC, version DESC LIMIT 1), "
    "(SELECT state FROM rollout_pauses WHERE tenant = :t AND kind = :k AND target = :s)"
)


class PromotedPolicy:
    """`learned` in the placements' policy registry: the live version, else the rules."""

    def __init__(self, learning: Callable[[], Learning], *, floor: float = 0.0,
                 name: str = LEARNED) -> None:  # fmt: skip
        self._learning = learning
        self._floor = floor
        self._name = name
        self._rules = RulesPolicy()
        self._explorers: dict[str, RankingPolicy] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return "live"  # each choice names the version that made it

    @staticmethod
    def serving(engine: Engine, tenant: str, surface: str) -> tuple[str | None, bool]:
        """The surface's live version (None: none is) and whether its policy is paused, in
        one read of two indexed rows: this runs on every decide of a learned placement."""
        with readonly(engine.connect()) as conn:
            version, state = conn.execute(_SERVING, {"t": tenant, "s": surface,
                                                     "k": POLICY_KIND}).one()  # fmt: skip
        return version, state == "paused"

    def choose(self, request: PolicyInput, draw: float) -> Choice:
        """The live version's choice for the tenant's surface; the rules in its holdout or none."""
        from copilot.learn.model import empty_artifact
        from copilot.learn.policy import LearnedPolicy
        from copilot.learn.service import in_holdout

        learning = self._learning()
        tenant, surface = request.tenant or "default", request.surface
        if in_holdout(tenant, surface, request.subject_id, learning.holdout_share):
            return self._rules.choose(request, draw)
        live, paused = self.serving(learning.store.engine, tenant, surface)
        if live is not None and not paused:
            return learning.policy(tenant, surface, live).choose(request, draw)
        if self._floor <= 0:
            return self._rules.choose(request, draw)
        if surface not in self._explorers:
            self._explorers[surface] = LearnedPolicy(empty_artifact(surface, self._floor),
                                                     version="floor", name="rules")  # fmt: skip
        return self._explorers[surface].choose(request, draw)


__all__ = ["LEARNED", "POLICY_KIND", "PlacementLog", "PromotedPolicy", "RoutedLog"]
