"""The checkpoint key: created once, private, refused when it is not an ed25519 key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from audit import Signer, SigningKeyError
from audit.signing import check_signature, load_public_key


def test_the_key_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "checkpoint.pem"
    first = Signer.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Signer.load_or_create(path)
    assert again.key_id == first.key_id
    assert (
        load_public_key((tmp_path / "keys" / "checkpoint.pem.pub").read_bytes()) == first.public_raw
    )


def test_a_key_of_another_type_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="not ed25519"):
        Signer.load_or_create(path)
    path.write_text("garbage")
    with pytest.raises(SigningKeyError, match="COPILOT_SIGNING_KEY_PATH"):
        Signer.load_or_create(path)


def test_signatures_bind_stream_size_and_head() -> None:
    signer = Signer.generate()
    cp = signer.sign("acme", 3, "ab" * 32)
    trusted = {signer.key_id: signer.public_raw}
    assert check_signature(cp, trusted) is None
    for change in ({"stream": "globex"}, {"size": 4}, {"head": "cd" * 32}):
        assert check_signature(cp.model_copy(update=change), trusted) == "bad_signature"
