"""Errors of the learning wing.

    CopilotError                     (audit.errors) root
    └── LearnError                   learn.*              a learning request cannot be served
        ├── EvaluationError          learn.bad_evaluation  OPE asked something it cannot answer
        ├── ArtifactError            learn.bad_artifact    a stored model fails its hash or schema
        ├── PolicyNotFoundError      learn.not_found       no such policy version (or evidence)
        ├── UnknownDecisionError     learn.unknown_decision  feedback names no logged decision
        ├── PolicyStateError         learn.conflict        the version is not in a state that allows it
        ├── NotEnoughDataError       learn.not_enough_data  too few rewarded decisions to train on
        ├── NotBetterError           learn.not_better      the candidate's lower bound misses the margin
        ├── SegmentHarmedError       learn.segment_harmed  OPE shows a segment harmed
        ├── PromotionLockedError     learn.promotion_locked  an edit of a promotion request
        ├── EvidenceMismatchError    learn.evidence_mismatch  an approved promotion names other
        │                                                    than its version's cleared evidence
        └── EmbeddingError           learn.embedding       the embedding model cannot be used
"""

from __future__ import annotations

from audit.errors import CopilotError


class LearnError(CopilotError):
    """A learning request cannot be served; the message says why."""

    code = "learn.error"


class EvaluationError(LearnError):
    """Off-policy evaluation was asked something it cannot answer (shapes, ranges, no data)."""

    code = "learn.bad_evaluation"


class ArtifactError(LearnError):
    """A stored model does not match its hash or its schema; it is never served."""

    code = "learn.bad_artifact"


class PolicyNotFoundError(LearnError):
    """No such policy version for this tenant and surface."""

    code = "learn.not_found"


class UnknownDecisionError(LearnError):
    """Feedback names a decision this tenant never logged."""

    code = "learn.unknown_decision"


class PolicyStateError(LearnError):
    """The policy version is not in a state that allows this (e.g. promoting a retired one)."""

    code = "learn.conflict"


class NotEnoughDataError(LearnError):
    """Too few rewarded decisions in the lookback window to train or evaluate on."""

    code = "learn.not_enough_data"


class NotBetterError(LearnError):
    """Promotion refused: the candidate's lower bound does not beat the current by the margin."""

    code = "learn.not_better"


class SegmentHarmedError(LearnError):
    """Promotion refused: the evidence shows a segment harmed (its whole interval below zero)."""

    code = "learn.segment_harmed"


class PromotionLockedError(LearnError):
    """A promotion request cannot be edited: it names the version its evidence cleared."""

    code = "learn.promotion_locked"


class EvidenceMismatchError(LearnError):
    """An approved promotion's version, artifact hash or evidence hash is not what the store
    holds for it (the evidence of another version, or evidence that did not clear)."""

    code = "learn.evidence_mismatch"


class EmbeddingError(LearnError):
    """The embedding model cannot be loaded or asked; the message names the setting."""

    code = "learn.embedding"


__all__ = [
    "ArtifactError",
    "EmbeddingError",
    "EvaluationError",
    "EvidenceMismatchError",
    "LearnError",
    "NotBetterError",
    "NotEnoughDataError",
    "PolicyNotFoundError",
    "PolicyStateError",
    "PromotionLockedError",
    "SegmentHarmedError",
    "UnknownDecisionError",
]
