"""Learning: the walk stage. Policies that learn from reviewers and outcomes, under evidence.

Logged decisions (with their propensities) and the feedback joined to them by id train a
per-candidate ridge model explored by inverse-gap weighting (`LearnedPolicy`, a
`copilot.ranking.RankingPolicy`); off-policy evaluation (IPS, SNIPS, DR with intervals and
diagnostics, per segment) is the evidence; a new version runs in shadow first and goes live
only through the `promote_policy` approval of two admins.
"""

from __future__ import annotations

# The loop: storage, evidence, the gate, declarations, embeddings
from copilot.learn.config import LearnConfig
from copilot.learn.embeddings import StaticEmbeddings, make_embeddings

# Errors
from copilot.learn.errors import (
    ArtifactError,
    EmbeddingError,
    EvaluationError,
    LearnError,
    NotBetterError,
    NotEnoughDataError,
    PolicyNotFoundError,
    PolicyStateError,
    SegmentHarmedError,
    UnknownDecisionError,
)
from copilot.learn.evidence import EvidenceConfig, build_evidence

# Features, the artifact, training, the policy
from copilot.learn.features import FeatureSpec, fit_spec
from copilot.learn.gate import Promotions
from copilot.learn.model import Artifact, CandidateModel, empty_artifact, load_artifact

# Off-policy evaluation
from copilot.learn.ope import Difference, Estimate, Logged, compare, estimate, evaluate
from copilot.learn.policy import LearnedPolicy, igw

# Rewards
from copilot.learn.rewards import DecisionLog, Feedback, Joined, RewardSpec, join, rewards_of
from copilot.learn.service import Learning
from copilot.learn.store import LearnStore, PolicyVersion
from copilot.learn.train import TrainConfig, train

__all__ = [
    # Errors
    "ArtifactError",
    "EmbeddingError",
    "EvaluationError",
    "LearnError",
    "NotBetterError",
    "NotEnoughDataError",
    "PolicyNotFoundError",
    "PolicyStateError",
    "SegmentHarmedError",
    "UnknownDecisionError",
    # Features, the artifact, training, the policy
    "Artifact",
    "CandidateModel",
    "FeatureSpec",
    "LearnedPolicy",
    "TrainConfig",
    "empty_artifact",
    "fit_spec",
    "igw",
    "load_artifact",
    "train",
    # Off-policy evaluation
    "Difference",
    "Estimate",
    "Logged",
    "compare",
    "estimate",
    "evaluate",
    # Rewards
    "DecisionLog",
    "Feedback",
    "Joined",
    "RewardSpec",
    "join",
    "rewards_of",
    # The loop: storage, evidence, the gate, declarations, embeddings
    "EvidenceConfig",
    "LearnConfig",
    "LearnStore",
    "Learning",
    "PolicyVersion",
    "Promotions",
    "StaticEmbeddings",
    "build_evidence",
    "make_embeddings",
]
