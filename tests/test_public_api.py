"""Each package's `__init__` is its public API; this pins it."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "audit": {
        "Actor", "ActorKind", "AppendResult", "AuditEvent", "Checkpoint", "Entry", "Versions",
        "canonical", "genesis", "link", "seal",
        "AuditStore", "MemoryAuditStore", "Query", "SqlAuditStore", "TransactionalAuditLog",
        "CheckpointLog", "Row", "Signer", "Trail", "Verdict", "checkpoint_message",
        "export_bundle", "verify_bundle", "verify_chain",
        "AuditError", "BundleError", "CanonicalizationError", "CheckpointRefusedError",
        "CopilotError", "SigningKeyError",
    },
    "copilot": {
        "Settings", "make_engine", "upgrade", "ConfigError", "CopilotError",
        "DatabaseConfigError", "Again", "Await", "SignalNeed", "StepContext", "Workflow", "ActionKind",
        "Catalog", "OnExpiry", "Risk", "Sensitivity", "SignalRegistry", "SignalSpec",
        "Degradation", "Explanation", "Level", "SignalUse", "ModelCall", "Pseudonymizer",
        "GuardrailSpec", "OutcomeRegistry", "OutcomeSpec",
        "Condition", "EventTrigger", "Schedule", "Subjects", "TriggerRegistry",
    },
    "approvals": {
        "ActionKind", "Catalog", "OnExpiry", "Risk", "Evaluation", "Facts", "Hold", "Match", "Outcome",
        "Policy", "Predicate", "Rule", "ApprovalRequest", "Gate", "payload_hash", "Notifier", "WebhookNotifier",
        "ApprovalConflictError", "ApprovalError", "ApprovalForbiddenError",
        "ApprovalNotFoundError", "ClaimedError", "InvalidPayloadError", "UnknownActionKindError",
        "SeparationOfDutiesError", "SubjectLockedError", "SubjectMismatchError",
    },
    "workflows": set(),
    "copilot.api": {"app_from_env", "create_app"},
    "copilot.server": {"app_from_env", "create_app"},
    "copilot.testing": {"RecordingExecutor", "StaticContext", "WorkflowHarness"},
    "copilot.learn": {
        "ArtifactError", "EmbeddingError", "EvaluationError", "LearnError", "NotBetterError",
        "NotEnoughDataError", "PolicyNotFoundError", "PolicyStateError", "SegmentHarmedError",
        "Artifact", "CandidateModel", "FeatureSpec", "LearnedPolicy", "TrainConfig",
        "empty_artifact", "fit_spec", "igw", "load_artifact", "train",
        "Difference", "Estimate", "Logged", "compare", "estimate", "evaluate",
        "DecisionLog", "Feedback", "Joined", "RewardSpec", "join", "rewards_of",
        "UnknownDecisionError", "EvidenceConfig", "LearnConfig", "LearnStore", "Learning",
        "PolicyVersion", "Promotions", "StaticEmbeddings", "build_evidence", "make_embeddings",
    },
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_exports_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED[package]
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_one_error_root_across_packages() -> None:
    import audit
    import copilot

    assert copilot.CopilotError is audit.CopilotError
    assert issubclass(audit.AuditError, copilot.CopilotError)
    assert issubclass(copilot.ConfigError, copilot.CopilotError)
