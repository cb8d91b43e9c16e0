"""The learning loop as one object: decide (live, shadow, holdout), train, evaluate, promote.

Built at the edge (CLI, API, worker) from a store and the declarations of each surface;
`source` is where decisions and feedback are read from (the wing's own tables by default;
the placements decision log is the other `DecisionLog`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from approvals import ApprovalRequest
from audit import Actor
from copilot.learn.evidence import EvidenceConfig, build_evidence
from copilot.learn.gate import PolicyNotifier, Promotions
from copilot.learn.policy import LearnedPolicy
from copilot.learn.rewards import DecisionLog, RewardSpec, join, rewards_of
from copilot.learn.store import LearnStore, PolicyVersion
from copilot.learn.train import TrainConfig, train
from copilot.measure.guardrails import Guardrail, GuardrailCheck
from copilot.ranking import (
    Candidate,
    Choice,
    LoggedDecision,
    PolicyInput,
    RankingPolicy,
    RulesPolicy,
)

DAY = 86400.0


def in_holdout(tenant: str, surface: str, subject_id: str, share: float) -> bool:
    """Whether a subject is in the surface's holdout (stable per subject, never trained on)."""
    digest = hashlib.sha256(f"{tenant}\x00{surface}\x00{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class Learning:
    """Decide, train, evaluate, shadow, promote and demote, for every surface of a store."""

    def __init__(
        self,
        store: LearnStore,
        *,
        source: DecisionLog | None = None,
        rewards: RewardSpec | None = None,
        training: TrainConfig | None = None,
        evidence: EvidenceConfig | None = None,
        catalogs: Mapping[str, Sequence[Candidate]] | None = None,
        descriptions: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
        guardrails: Sequence[Guardrail] = (),
        holdout_share: float = 0.05,
        lookback: float = 30 * DAY,
        notifier: PolicyNotifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.source: DecisionLog = source or store
        self.rewards = rewards or RewardSpec()
        self.training = training or TrainConfig()
        self.evidence_config = evidence or EvidenceConfig()
        self.catalogs = {s: {c.id: c for c in cs} for s, cs in (catalogs or {}).items()}
        self.descriptions = descriptions or {}  # surface -> candidate -> embedding
        self.guardrails = tuple(guardrails)
        self.holdout_share = holdout_share
        self.lookback = lookback
        self.clock = clock
        self.promotions = Promotions(store, notifier=notifier, clock=clock)
        self._loaded: dict[tuple[str, str, str], LearnedPolicy] = {}

    # -- deciding ---------------------------------------------------------------------------

    def policy(self, tenant: str, surface: str, version: str) -> LearnedPolicy:
        """A stored version as a policy (loaded once; its hash checked on load)."""
        key = (tenant, surface, version)
        if key not in self._loaded:
            artifact = self.store.artifact(tenant, surface, version)
            self._loaded[key] = LearnedPolicy(artifact, version=version)
        return self._loaded[key]

    def _serving(self, tenant: str, surface: str) -> tuple[RankingPolicy, LearnedPolicy | None]:
        live = self.store.in_state(tenant, surface, "live")
        shadow = self.store.in_state(tenant, surface, "shadow")
        current: RankingPolicy = (self.policy(tenant, surface, live.version) if live
                                  else RulesPolicy())  # fmt: skip
        return current, self.policy(tenant, surface, shadow.version) if shadow else None

    def decide(self, tenant: str, request: PolicyInput, *, decision_id: str, draw: float,
               segment: str | None = None) -> Choice:  # fmt: skip
        """Choose with the live policy (the rules in the holdout), score the shadow, log both."""
        holdout = in_holdout(tenant, request.surface, request.subject_id, self.holdout_share)
        current, shadow = self._serving(tenant, request.surface)
        policy = RulesPolicy() if holdout else current
        choice = policy.choose(request, draw)
        seen = shadow.choose(request, draw) if shadow is not None else None
        self.store.log_decision(LoggedDecision(
            decision_id=decision_id, tenant=tenant, surface=request.surface,
            subject_id=request.subject_id, decided_at=self.clock(), features=request.features,
            candidates=[c.id for c in request.eligible], chosen=choice.candidate_id,
            propensity=choice.probability, policy=choice.policy, version=choice.version,
            holdout=holdout, segment=segment,
        ), distribution=choice.distribution, shadow=seen)  # fmt: skip
        return choice

    # -- training and evidence -----------------------------------------------------------

    def rewarded(self, tenant: str, surface: str, *, now: float | None = None,
                 lookback: float | None = None) -> tuple[list[LoggedDecision], tuple[float, float]]:  # fmt: skip
        """The window's decisions whose reward is final, reward joined."""
        until = self.clock() if now is None else now
        since = until - (self.lookback if lookback is None else lookback)
        decisions = self.source.decisions(tenant, surface, since, until)
        feedback = self.source.feedback(tenant, [d.decision_id for d in decisions])
        return rewards_of(join(decisions, feedback, self.rewards, now=until)), (since, until)

    def train(self, tenant: str, surface: str, *, actor: Actor | None = None,
              now: float | None = None, lookback: float | None = None) -> PolicyVersion:  # fmt: skip
        """Train on the window (the holdout left out) and store the version in shadow."""
        rows, window = self.rewarded(tenant, surface, now=now, lookback=lookback)
        artifact = train([d for d in rows if not d.holdout], surface=surface, window=window,
                         config=self.training, descriptions=self.descriptions.get(surface))  # fmt: skip
        return self.store.save(tenant, artifact, actor=actor or Actor.system("learn.train"))

    def evaluate(self, tenant: str, surface: str, version: str, *, now: float | None = None,
                 lookback: float | None = None) -> tuple[dict[str, Any], str]:  # fmt: skip
        """The evidence for ``version`` against what serves now, and its hash."""
        rows, window = self.rewarded(tenant, surface, now=now, lookback=lookback)
        current, _ = self._serving(tenant, surface)
        candidate = self.policy(tenant, surface, version)
        pv = self.store.get(tenant, surface, version)
        return build_evidence(rows, candidate, current, surface=surface, window=window,
                              catalog=self.catalogs.get(surface), config=self.evidence_config,
                              candidate_hash=pv.hash)  # fmt: skip

    def request_promotion(self, tenant: str, surface: str, version: str, *, requested_by: str,
                          principal: str | None = None, now: float | None = None,
                          lookback: float | None = None) -> ApprovalRequest:  # fmt: skip
        """Evaluate, then file the `promote_policy` approval (or refuse with the verdict's code).

        The requester (`requested_by`, and `principal`: their key over HTTP) cannot approve it.
        """
        document, digest = self.evaluate(tenant, surface, version, now=now, lookback=lookback)
        return self.promotions.request(tenant, surface, version, document=document,
                                       evidence_hash=digest, requested_by=requested_by,
                                       principal=principal)  # fmt: skip

    def check_guardrails(self, tenant: str, surface: str, *,
                         now: float | None = None) -> list[GuardrailCheck]:  # fmt: skip
        """The live version's guardrails over the lookback; a breach demotes it to the rules."""
        until = self.clock() if now is None else now
        return self.promotions.check_guardrails(tenant, surface, self.guardrails,
                                                since=until - self.lookback, until=until)  # fmt: skip

    def status(self, tenant: str, surface: str) -> dict[str, Any]:
        """Versions over time, what serves, and the shadow's agreement with it."""
        versions = self.store.versions(tenant, surface)
        shadow = self.store.in_state(tenant, surface, "shadow")
        live = self.store.in_state(tenant, surface, "live")
        scored, agreed = self.store.agreement(tenant, surface, shadow.version) if shadow else (0, 0)
        return {
            "surface": surface,
            "serving": f"learned@{live.version}" if live else "rules",
            "shadow": {"version": shadow.version, "scored": scored, "agreed": agreed,
                       "agreement": agreed / scored if scored else None} if shadow else None,
            "versions": [v.model_dump() for v in versions],
        }  # fmt: skip


__all__ = ["DAY", "Learning", "in_holdout"]
