"""audit: an append-only, hash-chained, signed audit trail. Knows nothing of the rest of copilot."""

from __future__ import annotations

# Encoding and the chain
from audit.canonical import canonical
from audit.chain import genesis, link, seal

# Errors
from audit.errors import (
    AuditError,
    BundleError,
    CanonicalizationError,
    CheckpointRefusedError,
    CopilotError,
    SigningKeyError,
)
from audit.export import export_bundle, verify_bundle

# Records
from audit.model import Actor, ActorKind, AppendResult, AuditEvent, Checkpoint, Entry, Versions

# Signing, verification, export
from audit.signing import Signer, checkpoint_message

# Stores
from audit.stores import AuditStore, Query, TransactionalAuditLog
from audit.stores.memory import MemoryAuditStore
from audit.stores.sql import SqlAuditStore
from audit.trail import CheckpointLog, Trail
from audit.verify import Row, Verdict, verify_chain

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
    "TransactionalAuditLog",
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
