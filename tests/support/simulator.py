"""A seeded world for the learning loop: contexts, hidden reward probabilities, reviewers, delays.

Nothing here is learned from: the tests and `bench/learn.py` ask it for contexts, play a
policy's picks against it, and compare with its oracle, which knows the hidden truth.

- Contexts: a segment (`majority` 84 %, two small ones, `agency` and `enterprise`, 8 % each),
  `usage` and `seats` (standard normal), `mobile` (a flag, 30 %).
- Four candidates. The rules rank `checklist` first (priority 2). The hidden probability
  that a reviewer accepts candidate k in context x is a logistic function of x whose
  weights differ per candidate; `checklist` is best for the majority at low usage only,
  `tour` at high usage, and the small segments prefer `webinar` (agency) and `template`
  (enterprise), whom the rules serve worst.
- Reviewers decide by a hidden rule: with that probability they approve (3 in 4) or edit
  with edit distance 0.3 (1 in 4; reward 0.7), else they reject (reward 0).
- Delays: nine reviewers in ten decide within hours (exponential, mean 2 h), one in ten
  after days (mean 48 h); a decision whose reward has not arrived when its window
  (24 h) closes gets the default reward 0. The expected joined reward accounts for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from copilot.learn.model import empty_artifact
from copilot.learn.policy import LearnedPolicy
from copilot.learn.rewards import Feedback, RewardSpec, join, rewards_of
from copilot.learn.train import TrainConfig, train
from copilot.ranking import Candidate, LoggedDecision, PolicyInput

CANDIDATES = ("checklist", "template", "tour", "webinar")
PRIORITY = {"checklist": 2, "tour": 1, "webinar": 1, "template": 0}
SEGMENTS = ("majority", "agency", "enterprise")
SEGMENT_SHARE = (0.84, 0.08, 0.08)
WINDOW = 24 * 3600.0
STEP = 10.0  # simulated seconds between decisions
APPROVE_SHARE, EDIT_REWARD = 0.75, 0.7
FAST_SHARE, FAST_MEAN, SLOW_MEAN = 0.9, 2 * 3600.0, 48 * 3600.0
DESCRIPTIONS = {
    "checklist": "a checklist of setup steps for new accounts",
    "template": "ready-made templates for enterprise reporting",
    "tour": "a guided product tour of advanced features",
    "webinar": "a live webinar for agencies managing many clients",
    "walkthrough": "a guided walkthrough of advanced product features",
}

# Hidden logistic weights: [bias, usage, seats, mobile, agency, enterprise] per candidate.
_THETA = np.array(
    [
        [0.6, -1.0, 0.0, 0.3, -1.8, -1.5],  # checklist
        [-1.0, 0.0, 0.4, -0.3, -0.6, 2.6],  # template
        [-0.2, 1.2, 0.2, -0.2, -0.8, -0.8],  # tour
        [-1.2, 0.1, 0.0, 0.2, 2.9, -0.6],  # webinar
    ]
)


def _arrival() -> float:
    """Probability that a reward arrives within the window (exponential delays)."""
    fast = 1 - math.exp(-WINDOW / FAST_MEAN)
    slow = 1 - math.exp(-WINDOW / SLOW_MEAN)
    return FAST_SHARE * fast + (1 - FAST_SHARE) * slow


ARRIVAL = _arrival()
VALUE_OF_ACCEPT = APPROVE_SHARE + (1 - APPROVE_SHARE) * EDIT_REWARD


@dataclass(frozen=True)
class Contexts:
    """n contexts as columns."""

    segment: NDArray[np.int64]
    usage: NDArray[np.float64]
    seats: NDArray[np.float64]
    mobile: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.segment.shape[0])

    def features(self, i: int) -> dict[str, float | bool | str]:
        """Context i as the features mapping a policy sees."""
        return {"segment": SEGMENTS[int(self.segment[i])], "usage": float(self.usage[i]),
                "seats": float(self.seats[i]), "mobile": bool(self.mobile[i])}  # fmt: skip

    def slice(self, start: int, stop: int) -> Contexts:
        """Contexts start..stop."""
        cut = slice(start, stop)
        return Contexts(self.segment[cut], self.usage[cut], self.seats[cut], self.mobile[cut])

    def segment_names(self) -> NDArray[np.str_]:
        """Each context's segment name."""
        return np.array(SEGMENTS)[self.segment]


class Simulator:
    """The seeded world (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def contexts(self, n: int) -> Contexts:
        """n fresh contexts."""
        r = self.rng
        return Contexts(
            segment=r.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE).astype(np.int64),
            usage=r.standard_normal(n), seats=r.standard_normal(n), mobile=r.random(n) < 0.3,
        )  # fmt: skip

    @staticmethod
    def accept_probability(ctx: Contexts) -> NDArray[np.float64]:
        """The hidden (n x K) probability that a reviewer accepts each candidate."""
        x = np.column_stack([np.ones(len(ctx)), ctx.usage, ctx.seats, ctx.mobile.astype(float),
                             ctx.segment == 1, ctx.segment == 2]).astype(float)  # fmt: skip
        return 1.0 / (1.0 + np.exp(-(x @ _THETA.T)))

    @classmethod
    def expected(cls, ctx: Contexts) -> NDArray[np.float64]:
        """The expected joined reward (n x K): accepted value, times arrival in the window."""
        return cls.accept_probability(ctx) * VALUE_OF_ACCEPT * ARRIVAL

    def outcomes(
        self, ctx: Contexts, chosen: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]]:
        """For each pick: the reward, the delay until it arrives, and the reviewer's verdict."""
        n = len(ctx)
        r = self.rng
        p = self.accept_probability(ctx)[np.arange(n), chosen]
        accepted = r.random(n) < p
        approved = r.random(n) < APPROVE_SHARE
        fast = r.random(n) < FAST_SHARE
        delay = r.exponential(np.where(fast, FAST_MEAN, SLOW_MEAN))
        verdict = np.where(accepted, np.where(approved, "approve", "edit"), "reject")
        value = np.where(accepted, np.where(approved, 1.0, EDIT_REWARD), 0.0)
        return value, delay, verdict

    def joined(self, ctx: Contexts, chosen: NDArray[np.int64]) -> NDArray[np.float64]:
        """Rewards as the join sees them: the value if it arrived in the window, else 0."""
        value, delay, _ = self.outcomes(ctx, chosen)
        return np.where(delay <= WINDOW, value, 0.0)


def candidates() -> list[Candidate]:
    """The four candidates with the rules' priorities."""
    return [Candidate(id=c, priority=PRIORITY[c], order=i) for i, c in enumerate(CANDIDATES)]


def draws(n: int, seed: int) -> NDArray[np.float64]:
    """The per-decision draws a policy picks with (deterministic per decision)."""
    return np.random.default_rng(seed + 7919).random(n)


def logged(
    ctx: Contexts,
    chosen: NDArray[np.int64],
    propensity: NDArray[np.float64],
    reward: NDArray[np.float64] | None,
    *,
    policy: str = "logger",
    version: str = "1",
    start: float = 0.0,
    prefix: str = "d",
) -> list[LoggedDecision]:
    """The decisions as the decision log would keep them."""
    return [
        LoggedDecision(
            decision_id=f"{prefix}{i:07d}", tenant="t1", surface="onboarding",
            subject_id=f"s{i}", decided_at=start + i * STEP, features=ctx.features(i),
            candidates=list(CANDIDATES), chosen=CANDIDATES[int(chosen[i])],
            propensity=float(propensity[i]), policy=policy, version=version,
            segment=SEGMENTS[int(ctx.segment[i])],
            reward=None if reward is None else float(reward[i]),
        )
        for i in range(len(ctx))
    ]


@dataclass(frozen=True)
class Played:
    """A policy played against the world: its picks, their propensities, the oracle's view."""

    contexts: Contexts
    chosen: NDArray[np.int64]
    propensity: NDArray[np.float64]
    expected: NDArray[np.float64]  # (n x K) hidden expected rewards
    artifacts: int  # how many times it was retrained

    def regret(self, chosen: NDArray[np.int64] | None = None) -> float:
        """Cumulative regret against the oracle, in expected reward."""
        picks = self.chosen if chosen is None else chosen
        n = len(self.contexts)
        return float((self.expected.max(1) - self.expected[np.arange(n), picks]).sum())


def play_learning(
    seed: int, n: int, *, batch: int = 2000, config: TrainConfig | None = None
) -> Played:
    """The learning loop against the world: decide, log, wait for rewards, join, retrain.

    The first batch is decided by an artifact with no models (the rules' pick leads, every
    candidate keeps the floor); after each batch the policy is retrained on every decision
    whose reward is final by then, joined by `copilot.learn.rewards.join`.
    """
    sim = Simulator(seed)
    ctx = sim.contexts(n)
    draw = draws(n, seed)
    cands = candidates()
    index = {c: i for i, c in enumerate(CANDIDATES)}
    chosen = np.zeros(n, np.int64)
    propensity = np.zeros(n)
    spec = RewardSpec(window=WINDOW)
    policy = LearnedPolicy(empty_artifact("onboarding", (config or TrainConfig()).floor))
    final: list[LoggedDecision] = []
    pending: list[LoggedDecision] = []
    feedback: dict[str, Feedback] = {}
    trained = 0
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        for i in range(start, stop):
            request = PolicyInput(surface="onboarding", subject_id=f"s{i}",
                                  features=ctx.features(i), eligible=cands)  # fmt: skip
            choice = policy.choose(request, float(draw[i]))
            chosen[i] = index[choice.candidate_id or CANDIDATES[0]]
            propensity[i] = choice.probability
        part = ctx.slice(start, stop)
        _, delay, verdict = sim.outcomes(part, chosen[start:stop])
        new = logged(part, chosen[start:stop], propensity[start:stop], None,
                     start=start * STEP, prefix=f"d{start:07d}-")  # fmt: skip
        for j, d in enumerate(new):
            feedback[d.decision_id] = Feedback(
                decision_id=d.decision_id, source="reviewer", event=str(verdict[j]),
                at=d.decided_at + float(delay[j]),
                edit_distance=1 - EDIT_REWARD if verdict[j] == "edit" else None,
                reason="wrong account" if verdict[j] == "reject" else None,
            )  # fmt: skip
        pending += new
        joined = join(pending, (feedback[d.decision_id] for d in pending), spec, now=stop * STEP)
        final += rewards_of(joined)
        pending = [j.decision for j in joined if not j.final]
        artifact = train(final, surface="onboarding", window=(0.0, stop * STEP), config=config)
        policy = LearnedPolicy(artifact)
        trained += 1
    return Played(ctx, chosen, propensity, sim.expected(ctx), trained)


__all__ = [
    "Played",
    "play_learning",
    "ARRIVAL",
    "CANDIDATES",
    "DESCRIPTIONS",
    "SEGMENTS",
    "STEP",
    "WINDOW",
    "Contexts",
    "Simulator",
    "candidates",
    "draws",
    "logged",
]
