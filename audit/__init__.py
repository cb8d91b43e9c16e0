"""audit: an append-only, hash-chained, signed audit trail. Knows nothing of the rest of copilot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from audit.stores.sql import SqlAuditStore


def __getattr__(name: str) -> Any:
    """`SqlAuditStore` on first use, so readers of the records (the HTTP client) load no SQL."""
    if name == "SqlAuditStore":
        from audit.stores.sql import SqlAuditStore

        return SqlAuditStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """What `dir()` and completion show: the public names, the lazy ones included."""
    return sorted(set(globals()) | set(__all__))
