"""audit: an append-only, hash-chained, signed audit trail. Knows nothing of the rest of copilot."""

from __future__ import annotations

# Records
from audit.model import Actor, ActorKind, AppendResult, AuditEvent, Checkpoint, Entry, Versions

# Encoding and the chain
from audit.canonical import canonical
from audit.chain import genesis, link, seal

# Stores
from audit.stores import AuditStore, Query
from audit.stores.memory import MemoryAuditStore
from audit.stores.sql import SqlAuditStore

# Signing, verification, export
from audit.signing import Signer, checkpoint_message
from audit.verify import Row, Verdict, verify_chain
from audit.trail import CheckpointLog, Trail
from audit.export import export_bundle, verify_bundle

# Errors
from audit.errors import (
    AuditError,
    BundleError,
    CanonicalizationError,
    CheckpointRefusedError,
    CopilotError,
    SigningKeyError,
)

__all__ = [
    # Records
    "Actor",
    "ActorKind",
    "AppendResult",
    "AuditEvent",
    "Checkpoint",
    "Entry",
    "Versions",
    # Encoding and the chain
    "canonical",
    "genesis",
    "link",
    "seal",
    # Stores
    "AuditStore",
    "MemoryAuditStore",
    "Query",
    "SqlAuditStore",
    # Signing, verification, export
    "CheckpointLog",
    "Row",
    "Signer",
    "Trail",
    "Verdict",
    "checkpoint_message",
    "export_bundle",
    "verify_bundle",
    "verify_chain",
    # Errors
    "AuditError",
    "BundleError",
    "CanonicalizationError",
    "CheckpointRefusedError",
    "CopilotError",
    "SigningKeyError",
]
