"""Golden vectors: the hash format, byte for byte, as docs/concepts/audit-trail.md documents it.

If one of these changes, every existing trail stops verifying: change the format version
instead.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import Actor, AuditEvent, Versions, checkpoint_message, genesis, link, seal
from audit.signing import Signer

BODY_1 = (
    '{"actor":{"id":"reviewer:maya","kind":"human"},"data":{"decision":"approve",'
    '"note":"ok ✓","quorum":[1,2]},"event_type":"approval.decided",'
    '"recorded_at":"2026-11-26T12:00:00.000000Z","run_id":"run-1","subject_id":"acct-7",'
    '"v":1,"versions":{"policy":"default@3","workflow":"account_health@1"}}'
).encode()
PERSONAL_1 = b'{"email":"ana@example.com","name":"Ana Silva"}'
SALT_1 = bytes(range(16))
BODY_2 = (
    b'{"actor":{"id":"worker-1","kind":"system"},"data":{},"event_type":"run.completed",'
    b'"recorded_at":"2026-11-26T12:00:01.000000Z","run_id":"run-1","subject_id":null,'
    b'"v":1,"versions":{}}'
)
GENESIS = "b7f59b7efb748058fc9289a8565a71f9381898c335750d49fa16da55bb33bf11"
COMMITMENT_1 = "8f6c13bcda704f2585d9e38afeba6ffc8aa5acc431cf4157feed750d621108cb"
HASH_1 = "8d824a58b4a9176db65b9388ac1b0713acaaa5511e4e8a14951b370a2b550134"
HASH_2 = "3397d1a811bb9392ce11b2fd591862a59dec640534a9c5a63b000a887d6f4925"
KEY_ID = "139e3940e64b5491722088d9a0d74162"
SIGNATURE = (
    "e58ae19970299d5c0ff29db83585199cbb9ccd00309bf5c5dbbfff53dafc737e"
    "633837f49a4be34819d95d66dced56abc4f7b330970b1e1ca2eebe48e80c4500"
)


def test_the_recipe_in_plain_hashlib_gives_the_pinned_hashes() -> None:
    """An independent verifier needs only hashlib and the documented format."""
    g = hashlib.sha256(b"copilot.audit.v1\x00" + b"acme").digest()
    assert g.hex() == GENESIS
    commitment = hashlib.sha256(SALT_1 + PERSONAL_1).digest()
    assert commitment.hex() == COMMITMENT_1
    h1 = hashlib.sha256(g + commitment + BODY_1).digest()
    assert h1.hex() == HASH_1
    h2 = hashlib.sha256(h1 + bytes(32) + BODY_2).digest()
    assert h2.hex() == HASH_2


def test_the_library_produces_the_same_bytes_and_hashes() -> None:
    event = AuditEvent(
        event_type="approval.decided",
        actor=Actor.human("reviewer:maya"),
        run_id="run-1",
        subject_id="acct-7",
        versions=Versions(workflow="account_health@1", policy="default@3"),
        data={"decision": "approve", "quorum": [1, 2], "note": "ok ✓"},
        personal={"name": "Ana Silva", "email": "ana@example.com"},
    )
    sealed = seal(event, "2026-11-26T12:00:00.000000Z", salt=SALT_1)
    assert sealed.body == BODY_1
    assert sealed.personal == PERSONAL_1
    assert sealed.commitment is not None and sealed.commitment.hex() == COMMITMENT_1
    assert genesis("acme").hex() == GENESIS
    assert link(genesis("acme"), sealed.commitment, sealed.body).hex() == HASH_1

    second = seal(
        AuditEvent(event_type="run.completed", actor=Actor.system("worker-1"), run_id="run-1"),
        "2026-11-26T12:00:01.000000Z",
    )
    assert second.body == BODY_2
    assert second.commitment is None
    assert link(bytes.fromhex(HASH_1), None, second.body).hex() == HASH_2


def test_checkpoint_message_and_signature_are_pinned() -> None:
    """ed25519 is deterministic: a fixed key signs a fixed message to a fixed signature."""
    signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes(32)))
    assert signer.key_id == KEY_ID
    message = checkpoint_message("acme", 2, HASH_2)
    assert message == (
        b'copilot.audit.checkpoint.v1\x00{"head":"'
        + HASH_2.encode()
        + b'","size":2,"stream":"acme"}'
    )
    assert signer.sign("acme", 2, HASH_2).signature == SIGNATURE
    assert hashlib.sha256(signer.public_raw).digest()[:16].hex() == KEY_ID
