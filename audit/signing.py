"""Signed checkpoints: ed25519 over (stream, size, head), so truncation and rewrites show.

The signed message, byte for byte:

    b"copilot.audit.checkpoint.v1\\x00" || canonical({"head": <hex>, "size": <int>, "stream": <str>})

A key is named by its id: the first 16 bytes of SHA-256 over the raw 32-byte public key,
in hex.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.canonical import canonical
from audit.chain import timestamp
from audit.errors import SigningKeyError
from audit.model import Checkpoint

MESSAGE_PREFIX = b"copilot.audit.checkpoint.v1\x00"


def checkpoint_message(stream: str, size: int, head: str) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return MESSAGE_PREFIX + canonical({"head": head, "size": size, "stream": stream})


def key_id(public_raw: bytes) -> str:
    """A public key's id: hex of the first 16 bytes of SHA-256(raw key)."""
    return hashlib.sha256(public_raw).digest()[:16].hex()


def load_public_key(pem: bytes) -> bytes:
    """The raw 32 bytes of a PEM ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("checkpoint keys must be ed25519 public keys")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_public_key(path: Path) -> bytes:
    """The raw public key in the PEM file at `path`; SigningKeyError naming the file otherwise."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(
            f"cannot read the public key {path}: {exc.strerror or exc}; name the `.pub` file "
            "beside the signing key (e.g. .copilot/keys/checkpoint.pem.pub)",
            path=str(path),
        ) from exc
    try:
        return load_public_key(pem)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{path}: {exc.message}", path=str(path)) from exc


def public_pem(public_raw: bytes) -> bytes:
    """A raw public key as PEM (SubjectPublicKeyInfo), the form bundles and `.pub` files use."""
    return Ed25519PublicKey.from_public_bytes(public_raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Signer:
    """Holds the ed25519 private key that signs checkpoints."""

    def __init__(self, private_key: Ed25519PrivateKey, *, path: Path | None = None) -> None:
        self._key = private_key
        self.path = path
        self.public_raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(self.public_raw)

    @classmethod
    def generate(cls) -> Signer:
        """A fresh in-memory key (tests, ephemeral use)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> Signer | None:
        """The key at `path`, or None when there is none (never creates one)."""
        return cls.load_or_create(path) if path.exists() else None

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """Load the PEM key at `path`, creating it (mode 0600, with a `.pub` beside) if absent."""
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError, OSError) as exc:
                raise SigningKeyError(
                    f"cannot read the signing key at {path}: {exc}; point "
                    "COPILOT_SIGNING_KEY_PATH at a PEM ed25519 private key, or move the file "
                    "away to have a new key created",
                    path=str(path),
                ) from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise SigningKeyError(f"the signing key at {path} is not ed25519", path=str(path))
            return cls(key, path=path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        signer = cls(key, path=path)
        path.with_name(path.name + ".pub").write_bytes(public_pem(signer.public_raw))
        return signer

    def sign(self, stream: str, size: int, head: str) -> Checkpoint:
        """Sign (stream, size, head) now."""
        sig = self._key.sign(checkpoint_message(stream, size, head))
        return Checkpoint(
            stream=stream,
            size=size,
            head=head,
            key_id=self.key_id,
            signature=sig.hex(),
            signed_at=timestamp(),
        )


def check_signature(cp: Checkpoint, trusted: Mapping[str, bytes]) -> str | None:
    """None when `cp` is signed by a trusted key, else the failure reason code."""
    raw = trusted.get(cp.key_id)
    if raw is None:
        return "unknown_key"
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(
            bytes.fromhex(cp.signature), checkpoint_message(cp.stream, cp.size, cp.head)
        )
    except (InvalidSignature, ValueError):
        return "bad_signature"
    return None
