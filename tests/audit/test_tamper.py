"""The tamper suite: an attacker with file or superuser access, triggers dropped or bypassed.

Each test tampers with the real database the way such an attacker would and checks that
verification names the first bad entry and why.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError

from audit import (
    Actor,
    AuditEvent,
    CheckpointLog,
    CheckpointRefusedError,
    Signer,
    SqlAuditStore,
    Trail,
    genesis,
)
from audit.db import create_engine


def make_trail(engine: Engine, tmp_path: Path, n: int = 10) -> Trail:
    store = SqlAuditStore(engine)
    trail = Trail(store, Signer.generate(), log=CheckpointLog(tmp_path / "checkpoints.jsonl"))
    for i in range(n):
        personal = {"email": f"user{i}@example.com"} if i % 3 == 0 else None
        event = AuditEvent(
            event_type="step.completed",
            actor=Actor.agent("rules"),
            run_id=f"run-{i}",
            subject_id=f"acct-{i % 4}",
            data={"i": i},
            personal=personal,
        )
        store.append("acme", [event])
    return trail


def as_attacker(engine: Engine, *statements: str, **params: object) -> None:
    """Run statements with the append-only triggers out of the way."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # superuser
        else:
            names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            for (name,) in names.all():
                conn.execute(text(f"DROP TRIGGER {name}"))
        for sql in statements:
            conn.execute(text(sql), params)


def test_an_untouched_trail_verifies(engine: Engine, tmp_path: Path) -> None:
    trail = make_trail(engine, tmp_path)
    trail.checkpoint("acme")
    assert trail.verify("acme").line() == "OK 10 entries"


def test_modifying_one_entry_names_that_seq(engine: Engine, tmp_path: Path) -> None:
    trail = make_trail(engine, tmp_path)
    as_attacker(
        engine,
        "UPDATE audit_entries SET body = :b WHERE stream = 'acme' AND seq = 5",
        b=b'{"forged":true}',
    )
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (5, "hash_mismatch")
    assert verdict.line().startswith("FAIL seq=5 hash_mismatch")


def test_deleting_one_entry_is_named_as_a_gap(engine: Engine, tmp_path: Path) -> None:
    trail = make_trail(engine, tmp_path)
    as_attacker(engine, "DELETE FROM audit_entries WHERE stream = 'acme' AND seq = 6")
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (6, "gap")


def test_swapping_two_entries_is_detected(engine: Engine, tmp_path: Path) -> None:
    trail = make_trail(engine, tmp_path)
    cols = "prev_hash, hash, commitment, body"
    with engine.connect() as conn:
        a = conn.execute(text(f"SELECT {cols} FROM audit_entries WHERE seq = 3")).one()
        b = conn.execute(text(f"SELECT {cols} FROM audit_entries WHERE seq = 7")).one()
    assign = "prev_hash = :p, hash = :h, commitment = :c, body = :b"
    as_attacker(engine, f"UPDATE audit_entries SET {assign} WHERE seq = 3",
                p=b[0], h=b[1], c=b[2], b=b[3])  # fmt: skip
    as_attacker(engine, f"UPDATE audit_entries SET {assign} WHERE seq = 7",
                p=a[0], h=a[1], c=a[2], b=a[3])  # fmt: skip
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (3, "fork")


def test_truncating_the_tail_is_caught_by_the_signed_checkpoint(
    engine: Engine, tmp_path: Path
) -> None:
    trail = make_trail(engine, tmp_path)
    trail.checkpoint("acme")
    as_attacker(engine, "DELETE FROM audit_entries WHERE stream = 'acme' AND seq > 8")
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (9, "checkpoint_truncated")
    with pytest.raises(CheckpointRefusedError, match="has 8 entries but was signed at 10"):
        trail.checkpoint("acme")


def _rewrite_from(engine: Engine, start: int) -> None:
    """Forge entry `start` and recompute every hash after it, as a careful attacker would."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seq, prev_hash, hash, commitment, body FROM audit_entries "
                 "WHERE stream = 'acme' ORDER BY seq")
        ).all()  # fmt: skip
    prev = genesis("acme")
    for seq, _, _, commitment, body in rows:
        body = bytes(body)
        if seq == start:
            body = body.replace(b'"i":', b'"i":1000')
        digest = hashlib.sha256(
            prev + (bytes(commitment) if commitment else bytes(32)) + body
        ).digest()
        if seq >= start:
            as_attacker(
                engine,
                "UPDATE audit_entries SET prev_hash = :p, hash = :h, body = :b WHERE seq = :s",
                p=prev, h=digest, b=body, s=seq,
            )  # fmt: skip
        prev = digest


def test_rewriting_the_whole_chain_is_caught_by_the_checkpoint(
    engine: Engine, tmp_path: Path
) -> None:
    trail = make_trail(engine, tmp_path)
    trail.checkpoint("acme")
    _rewrite_from(engine, 4)
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (10, "checkpoint_mismatch")


def test_deleting_the_database_checkpoints_does_not_hide_a_rewrite(
    engine: Engine, tmp_path: Path
) -> None:
    """The signer's own log, outside the database, still holds the signed head."""
    trail = make_trail(engine, tmp_path)
    trail.checkpoint("acme")
    _rewrite_from(engine, 2)
    as_attacker(engine, "DELETE FROM audit_checkpoints")
    assert trail.verify("acme").reason == "checkpoint_mismatch"
    without_log = Trail(trail.store, trail.signer)
    assert without_log.verify("acme").ok  # the chain alone cannot see a full rewrite


def test_a_tampered_checkpoint_or_an_unknown_key_is_refused(engine: Engine, tmp_path: Path) -> None:
    trail = make_trail(engine, tmp_path)
    trail.log = None
    cp = trail.checkpoint("acme")
    assert trail.verify("acme", trusted_keys={}).reason == "unknown_key"
    other = Signer.generate()
    assert (
        trail.verify("acme", trusted_keys={other.key_id: other.public_raw}).reason == "unknown_key"
    )
    as_attacker(engine, "UPDATE audit_checkpoints SET size = 9, head = :h", h=cp.head)
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (9, "bad_signature")


def test_payload_tampering_and_silent_deletion_are_named(engine: Engine, tmp_path: Path) -> None:
    trail = make_trail(engine, tmp_path)
    as_attacker(engine, "UPDATE audit_payloads SET payload = :p WHERE seq = 4",
                p=b'{"email":"someone-else@example.com"}')  # fmt: skip
    assert (trail.verify("acme").bad_seq, trail.verify("acme").reason) == (4, "payload_mismatch")
    as_attacker(engine, "DELETE FROM audit_payloads WHERE seq = 1")
    assert (trail.verify("acme").bad_seq, trail.verify("acme").reason) == (1, "payload_missing")


def test_triggers_refuse_update_and_delete_from_the_application(
    engine: Engine, tmp_path: Path
) -> None:
    make_trail(engine, tmp_path, n=2).checkpoint("acme")
    statements = [
        "UPDATE audit_entries SET event_type = 'x' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 2",
        "UPDATE audit_payloads SET payload = x'00' WHERE seq = 1"
        if engine.dialect.name == "sqlite"
        else "UPDATE audit_payloads SET payload = '\\x00' WHERE seq = 1",
        "DELETE FROM audit_checkpoints",
    ]
    if engine.dialect.name == "postgresql":
        statements += ["TRUNCATE audit_entries", "TRUNCATE audit_checkpoints"]
    for sql in statements:
        with (
            pytest.raises(DatabaseError, match=r"append-only|erased, never rewritten"),
            engine.begin() as conn,
        ):
            conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entries")).scalar() == 2


def test_the_signer_refuses_to_sign_a_database_restored_from_an_old_backup(
    sqlite_url: str, tmp_path: Path
) -> None:
    from copilot.db.engines import upgrade

    engine = create_engine(sqlite_url)
    upgrade(engine)
    trail = make_trail(engine, tmp_path, n=5)
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    engine.dispose()  # the last connection to close folds the WAL into the file
    shutil.copy(db, tmp_path / "backup.db")
    for i in range(3):
        trail.store.append(
            "acme", [AuditEvent(event_type="late", actor=Actor.system(), data={"i": i})]
        )
    trail.checkpoint("acme")
    engine.dispose()
    shutil.copy(tmp_path / "backup.db", db)
    restored = Trail(SqlAuditStore(create_engine(sqlite_url)), trail.signer, log=trail.log)
    with pytest.raises(CheckpointRefusedError, match="restored from an old backup"):
        restored.checkpoint("acme")
    assert restored.verify("acme").reason == "checkpoint_truncated"


def test_a_forged_tombstone_cannot_excuse_a_payload_deleted_elsewhere(
    engine: Engine, tmp_path: Path
) -> None:
    """An appender writes `audit.erased` naming another subject's entry, then deletes its payload."""
    trail = make_trail(engine, tmp_path)  # seq 1, 4, 7, 10 carry payloads; subjects acct-0..3
    forged = AuditEvent(
        event_type="audit.erased",
        actor=Actor.system("insider"),
        subject_id="acct-1",
        data={"erased_seqs": [4], "count": 1},
    )  # seq 4 belongs to acct-3
    trail.store.append("acme", [forged])
    as_attacker(engine, "DELETE FROM audit_payloads WHERE seq = 4")
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (4, "payload_missing")


def test_a_tombstone_cannot_pre_erase_later_entries(engine: Engine, tmp_path: Path) -> None:
    store = SqlAuditStore(engine)
    trail = Trail(store, Signer.generate())
    store.append(
        "acme",
        [
            AuditEvent(
                event_type="audit.erased",
                actor=Actor.system(),
                subject_id="s",
                data={"erased_seqs": [2], "count": 1},
            )
        ],
    )
    store.append(
        "acme",
        [AuditEvent(event_type="x", actor=Actor.system(), subject_id="s", personal={"a": 1})],
    )
    as_attacker(engine, "DELETE FROM audit_payloads WHERE seq = 2")
    assert trail.verify("acme").reason == "payload_missing"


# Index columns: what queries filter on must be what the chain vouches for.
INDEX_TAMPERS = [
    ("event_type", "'approval.decided'"),  # the case: misfiled for every filter
    ("event_type", "'audit.erased'"),  # a fake tombstone by column: the body says otherwise
    ("actor_kind", "'human'"),
    ("actor_id", "'mallory'"),
    ("run_id", "'run-999'"),
    ("run_id", "NULL"),  # hidden from the run's timeline
    ("subject_id", "'acct-9'"),
    ("subject_id", "NULL"),  # hidden from the subject's history (and from erasure)
    ("recorded_at", "'2000-01-01T00:00:00.000000Z'"),
    ("subject_id", "'acct-1 '"),  # one byte more
    ("subject_id", "'acct-1\\\"'"),  # a backslash and a quote: escapes are not matched blindly
]


@pytest.mark.parametrize(("column", "value"), INDEX_TAMPERS)
def test_changing_an_index_column_names_that_seq_and_column(
    engine: Engine, tmp_path: Path, column: str, value: str
) -> None:
    trail = make_trail(engine, tmp_path)
    trail.checkpoint("acme")
    as_attacker(engine, f"UPDATE audit_entries SET {column} = {value} WHERE seq = 6")
    verdict = trail.verify("acme")
    assert (verdict.bad_seq, verdict.reason) == (6, "index_mismatch"), verdict.line()
    assert column in verdict.detail
    assert verdict.line().startswith(f"FAIL seq=6 index_mismatch: column {column}")


def test_a_misfiled_entry_was_hidden_from_queries_and_now_fails_verification(
    engine: Engine, tmp_path: Path
) -> None:
    from audit import Query

    trail = make_trail(engine, tmp_path)
    as_attacker(engine, "UPDATE audit_entries SET event_type = 'x' WHERE seq = 3")
    found = trail.store.query("acme", Query(event_type="step.completed", limit=100))
    assert 3 not in [e.seq for e in found]  # what the auditor's filtered page no longer shows
    assert trail.verify("acme").line().startswith("FAIL seq=3 index_mismatch: column event_type")


def test_an_index_column_holding_a_blob_is_a_mismatch_not_a_crash(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite keeps a BLOB in a text column; no text filter matches it, so it must fail."""
    from copilot.db.engines import upgrade

    engine = create_engine(sqlite_url)
    upgrade(engine)
    trail = make_trail(engine, tmp_path)
    as_attacker(
        engine, "UPDATE audit_entries SET event_type = CAST(event_type AS BLOB) WHERE seq = 2"
    )
    assert trail.verify("acme").line().startswith("FAIL seq=2 index_mismatch: column event_type")


def test_awkward_but_honest_index_values_verify(engine: Engine, tmp_path: Path) -> None:
    """Quotes, backslashes, control characters, non-ASCII and nulls render as the body has them."""
    store = SqlAuditStore(engine)
    trail = Trail(store, Signer.generate())
    for actor, subject, run in [
        (Actor.human('a"b\\c@example.com'), 'acct "quoted" \\ \n\t\x01', None),
        (Actor.agent("agent-é-日本"), "☃ \u2028 \x7f", "run-1"),
        (Actor.system(), None, None),
    ]:
        # The data mimics the body's own keys: the tail is matched at the top level only.
        fake = {"event_type": "x", "recorded_at": "y", "run_id": run, "subject_id": subject,
                "v": 1, "versions": {}}  # fmt: skip
        store.append("acme", [AuditEvent(event_type="t.ex", actor=actor, subject_id=subject,
                                         run_id=run, data={"nested": fake, **fake})])  # fmt: skip
    assert trail.verify("acme").line() == "OK 3 entries"
