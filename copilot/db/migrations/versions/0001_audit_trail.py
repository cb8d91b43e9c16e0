"""The audit trail: entries, the append queue, erasable payloads, checkpoints; append-only triggers.

Revision ID: 0001_audit_trail
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_audit_trail"
down_revision = None
branch_labels = None
depends_on = None

BIG = sa.BigInteger()
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Tables whose rows may never change; payloads may be deleted (erasure) but not rewritten.
APPEND_ONLY = ("audit_entries", "audit_checkpoints")


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("commitment", sa.LargeBinary(32), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("subject_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        *_event_columns(),
        sa.UniqueConstraint("stream", "idempotency_key", name="uq_audit_entries_idempotency"),
    )
    op.create_index("ix_audit_entries_run", "audit_entries", ["stream", "run_id"])
    op.create_index("ix_audit_entries_subject", "audit_entries", ["stream", "subject_id"])
    op.create_index("ix_audit_entries_type", "audit_entries", ["stream", "event_type"])
    op.create_table(
        "audit_pending",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        *_event_columns(),
        sa.UniqueConstraint("stream", "idempotency_key", name="uq_audit_pending_idempotency"),
    )
    op.create_index("ix_audit_pending_stream", "audit_pending", ["stream", "id"])
    op.create_table(
        "audit_payloads",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("size", BIG, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("signed_at", sa.String(32), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )
    op.execute(
        "CREATE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
        "BEGIN SELECT RAISE(ABORT, 'audit_payloads may be erased, never rewritten'); END"
    )


_PG_EVENT_COLS = (
    "commitment, body, recorded_at, actor_kind, actor_id, event_type, run_id, subject_id, "
    "idempotency_key"
)

# The chain's append and drain run inside PostgreSQL, so an append costs one round trip
# like a plain INSERT does. Hash input and genesis are the same as audit/chain.py's; the
# genesis is passed in by the client so there is one definition of it.
_PG_FUNCTIONS = f"""
CREATE FUNCTION audit_drain(p_stream text, p_genesis bytea) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    zero constant bytea := decode(repeat('00', 32), 'hex');
    v_seq bigint;
    v_prev bytea;
    v_hash bytea;
    r record;
    n bigint := 0;
    ids bigint[] := '{{}}';
BEGIN
    -- The caller holds the stream's advisory lock.
    FOR r IN SELECT * FROM audit_pending WHERE stream = p_stream ORDER BY id LOOP
        ids := ids || r.id;
        IF r.idempotency_key IS NOT NULL AND EXISTS (
            SELECT 1 FROM audit_entries e
            WHERE e.stream = p_stream AND e.idempotency_key = r.idempotency_key
        ) THEN
            CONTINUE;
        END IF;
        IF v_prev IS NULL THEN
            SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_entries e
            WHERE e.stream = p_stream ORDER BY e.seq DESC LIMIT 1;
            IF NOT FOUND THEN v_seq := 0; v_prev := p_genesis; END IF;
        END IF;
        v_seq := v_seq + 1;
        v_hash := sha256(v_prev || coalesce(r.commitment, zero) || r.body);
        INSERT INTO audit_entries (stream, seq, prev_hash, hash, {_PG_EVENT_COLS})
        VALUES (p_stream, v_seq, v_prev, v_hash, r.commitment, r.body, r.recorded_at,
                r.actor_kind, r.actor_id, r.event_type, r.run_id, r.subject_id,
                r.idempotency_key);
        IF r.payload IS NOT NULL THEN
            INSERT INTO audit_payloads (stream, seq, salt, payload)
            VALUES (p_stream, v_seq, r.salt, r.payload);
        END IF;
        v_prev := v_hash;
        n := n + 1;
    END LOOP;
    IF array_length(ids, 1) > 0 THEN
        DELETE FROM audit_pending WHERE id = ANY(ids);
    END IF;
    RETURN n;
END $$;

CREATE FUNCTION audit_settle(p_stream text, p_genesis bytea, p_durable boolean, p_wait boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    lock_key constant bigint := hashtextextended('copilot.audit:' || p_stream, 0);
BEGIN
    -- Returns how many queued events were chained, or -1 when p_wait is false and another
    -- transaction holds the chain lock (that holder settles again after its commit).
    IF NOT EXISTS (SELECT 1 FROM audit_pending WHERE stream = p_stream) THEN
        RETURN 0;
    END IF;
    IF NOT p_durable THEN
        -- The queued rows are already durable; a crash before this commit is flushed
        -- undoes the drain and its deletes together, and the next settle redoes it.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(lock_key);
    ELSIF NOT pg_try_advisory_xact_lock(lock_key) THEN
        RETURN -1;
    END IF;
    RETURN audit_drain(p_stream, p_genesis);
END $$;

CREATE FUNCTION audit_append(
    p_stream text, p_genesis bytea, p_mode text,
    p_commitments bytea[], p_bodies bytea[], p_salts bytea[], p_payloads bytea[],
    p_recorded_at text[], p_actor_kind text[], p_actor_id text[], p_event_type text[],
    p_run_id text[], p_subject_id text[], p_keys text[]
) RETURNS TABLE (o_seq bigint, o_hash bytea, o_status text)
LANGUAGE plpgsql AS $$
DECLARE
    zero constant bytea := decode(repeat('00', 32), 'hex');
    lock_key constant bigint := hashtextextended('copilot.audit:' || p_stream, 0);
    n int := coalesce(array_length(p_bodies, 1), 0);
    v_seq bigint;
    v_prev bytea;
    v_hash bytea;
    v_keep boolean[] := array_fill(false, ARRAY[n]);
    v_seqs bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_prevs bytea[] := array_fill(NULL::bytea, ARRAY[n]);
    v_hashes bytea[] := array_fill(NULL::bytea, ARRAY[n]);
    v_keys text[] := array_fill(NULL::text, ARRAY[n]);
    i int;
    j int;
BEGIN
    -- p_mode: 'wait' takes the chain lock; 'try' takes it if free, else queues; 'queue'
    -- queues. A queued event is durable with the caller's commit, which then proceeds in
    -- parallel with others; a settle chains the queue in one batch.
    -- 'try_async' is 'try' whose inline chaining commits without waiting for the WAL
    -- flush, so the chain lock is released at once; the caller then waits for durability
    -- with a flushing commit of its own, outside the lock, before it reports success.
    IF p_mode = 'wait' THEN
        PERFORM pg_advisory_xact_lock(lock_key);
    ELSIF p_mode = 'try_async' AND pg_try_advisory_xact_lock(lock_key) THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    ELSIF p_mode = 'queue' OR p_mode = 'try_async' OR NOT pg_try_advisory_xact_lock(lock_key) THEN
        FOR i IN 1 .. n LOOP
            IF p_keys[i] IS NOT NULL THEN
                SELECT e.seq, e.hash INTO o_seq, o_hash FROM audit_entries e
                WHERE e.stream = p_stream AND e.idempotency_key = p_keys[i];
                IF FOUND THEN o_status := 'duplicate'; RETURN NEXT; CONTINUE; END IF;
            END IF;
            INSERT INTO audit_pending (stream, salt, payload, {_PG_EVENT_COLS})
            VALUES (p_stream, p_salts[i], p_payloads[i], p_commitments[i], p_bodies[i],
                    p_recorded_at[i], p_actor_kind[i], p_actor_id[i], p_event_type[i],
                    p_run_id[i], p_subject_id[i], p_keys[i])
            ON CONFLICT DO NOTHING;
            o_seq := NULL;
            o_hash := NULL;
            o_status := CASE WHEN FOUND THEN 'pending' ELSE 'duplicate' END;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;
    PERFORM audit_drain(p_stream, p_genesis);
    SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_entries e
    WHERE e.stream = p_stream ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN v_seq := 0; v_prev := p_genesis; END IF;
    -- Link in a loop (each hash needs the one before), insert as one set.
    FOR i IN 1 .. n LOOP
        IF p_keys[i] IS NOT NULL THEN
            SELECT e.seq, e.hash INTO o_seq, o_hash FROM audit_entries e
            WHERE e.stream = p_stream AND e.idempotency_key = p_keys[i];
            IF NOT FOUND THEN
                j := array_position(v_keys, p_keys[i]);  -- earlier in this batch
                IF j IS NOT NULL THEN
                    o_seq := v_seqs[j];
                    o_hash := v_hashes[j];
                END IF;
            END IF;
            IF o_seq IS NOT NULL THEN
                o_status := 'duplicate';
                RETURN NEXT;
                o_seq := NULL;
                CONTINUE;
            END IF;
        END IF;
        v_seq := v_seq + 1;
        v_hash := sha256(v_prev || coalesce(p_commitments[i], zero) || p_bodies[i]);
        v_keep[i] := true;
        v_seqs[i] := v_seq;
        v_prevs[i] := v_prev;
        v_hashes[i] := v_hash;
        v_keys[i] := p_keys[i];
        v_prev := v_hash;
        o_seq := v_seq;
        o_hash := v_hash;
        o_status := 'chained';
        RETURN NEXT;
        o_seq := NULL;
    END LOOP;
    INSERT INTO audit_entries (stream, seq, prev_hash, hash, {_PG_EVENT_COLS})
    SELECT p_stream, u.s, u.pv, u.h, u.c, u.b, u.ra, u.ak, u.ai, u.et, u.ri, u.si, u.k
    FROM unnest(v_seqs, v_prevs, v_hashes, p_commitments, p_bodies, p_recorded_at,
                p_actor_kind, p_actor_id, p_event_type, p_run_id, p_subject_id, p_keys, v_keep)
         AS u(s, pv, h, c, b, ra, ak, ai, et, ri, si, k, keep)
    WHERE u.keep;
    INSERT INTO audit_payloads (stream, seq, salt, payload)
    SELECT p_stream, u.s, u.sa, u.pl
    FROM unnest(v_seqs, p_salts, p_payloads, v_keep) AS u(s, sa, pl, keep)
    WHERE u.keep AND u.pl IS NOT NULL;
END $$;

-- One event, scalar arguments and no arrays: the hot path of standalone appends.
-- Same modes and results as audit_append.
CREATE FUNCTION audit_append_one(
    p_stream text, p_genesis bytea, p_mode text,
    p_commitment bytea, p_body bytea, p_salt bytea, p_payload bytea,
    p_recorded_at text, p_actor_kind text, p_actor_id text, p_event_type text,
    p_run_id text, p_subject_id text, p_key text
) RETURNS TABLE (o_seq bigint, o_hash bytea, o_status text)
LANGUAGE plpgsql AS $$
DECLARE
    zero constant bytea := decode(repeat('00', 32), 'hex');
    lock_key constant bigint := hashtextextended('copilot.audit:' || p_stream, 0);
    v_seq bigint;
    v_prev bytea;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT e.seq, e.hash INTO o_seq, o_hash FROM audit_entries e
        WHERE e.stream = p_stream AND e.idempotency_key = p_key;
        IF FOUND THEN o_status := 'duplicate'; RETURN NEXT; RETURN; END IF;
    END IF;
    IF p_mode = 'wait' THEN
        PERFORM pg_advisory_xact_lock(lock_key);
    ELSIF p_mode = 'try_async' AND pg_try_advisory_xact_lock(lock_key) THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    ELSIF p_mode = 'queue' OR p_mode = 'try_async' OR NOT pg_try_advisory_xact_lock(lock_key) THEN
        INSERT INTO audit_pending (stream, salt, payload, {_PG_EVENT_COLS})
        VALUES (p_stream, p_salt, p_payload, p_commitment, p_body, p_recorded_at, p_actor_kind,
                p_actor_id, p_event_type, p_run_id, p_subject_id, p_key)
        ON CONFLICT DO NOTHING;
        o_status := CASE WHEN FOUND THEN 'pending' ELSE 'duplicate' END;
        RETURN NEXT;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM audit_pending WHERE stream = p_stream) THEN
        PERFORM audit_drain(p_stream, p_genesis);
        IF p_key IS NOT NULL THEN  -- the queue may have held the same key
            SELECT e.seq, e.hash INTO o_seq, o_hash FROM audit_entries e
            WHERE e.stream = p_stream AND e.idempotency_key = p_key;
            IF FOUND THEN o_status := 'duplicate'; RETURN NEXT; RETURN; END IF;
        END IF;
    END IF;
    SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_entries e
    WHERE e.stream = p_stream ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN v_seq := 0; v_prev := p_genesis; END IF;
    o_seq := v_seq + 1;
    o_hash := sha256(v_prev || coalesce(p_commitment, zero) || p_body);
    INSERT INTO audit_entries (stream, seq, prev_hash, hash, {_PG_EVENT_COLS})
    VALUES (p_stream, o_seq, v_prev, o_hash, p_commitment, p_body, p_recorded_at, p_actor_kind,
            p_actor_id, p_event_type, p_run_id, p_subject_id, p_key);
    IF p_payload IS NOT NULL THEN
        INSERT INTO audit_payloads (stream, seq, salt, payload)
        VALUES (p_stream, o_seq, p_salt, p_payload);
    END IF;
    o_status := 'chained';
    RETURN NEXT;
END $$;
"""


def _postgres_triggers() -> None:
    op.execute(_PG_FUNCTIONS)
    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% on % refused: the audit trail is append-only', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    op.execute(
        "CREATE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    )


def downgrade() -> None:
    for table in ("audit_checkpoints", "audit_payloads", "audit_pending", "audit_entries"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        for fn in (
            "audit_append_one",
            "audit_append",
            "audit_settle",
            "audit_drain",
            "audit_refuse_change",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {fn} CASCADE")
