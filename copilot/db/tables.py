"""The runtime's tables (SQLAlchemy Core). Migrations in `copilot/db/migrations/` create them.

Timestamps are epoch seconds (float): one representation on both dialects, cheap to
compare in the lease and sweeper queries that run on every advance.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("workflow", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("triggered_by", String(200), nullable=False),
    # Whose request caused the run: `key:<key id>` (the key that triggered it, or that
    # ingested the signals that fired its event trigger), `schedule:<name>`, `cli`; NULL
    # for runs created before migration 0012. The gate refuses its decisions by it.
    Column("principal", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("queued_at", Float, nullable=True),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("step_index", Integer, nullable=False, server_default="0"),
    Column("level", String(8), nullable=True),
    Column("reasons", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("holdout", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("tenant", "idempotency_key", name="uq_runs_idempotency"),
    Index("ix_runs_state_queued", "state", "queued_at"),
    Index("ix_runs_state_lease", "state", "lease_expires_at"),
    Index("ix_runs_subject", "tenant", "subject_id"),
    Index("ix_runs_created", "tenant", "created_at"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("output", Text, nullable=False),
    Column("request", Text, nullable=True),
    Column("decision", Text, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("model", String(100), nullable=True),
    Column("prompt_version", String(50), nullable=True),
    Column("usage", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
)

step_rounds = Table(
    "step_rounds",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("round", Integer, primary_key=True, autoincrement=False),
    Column("state", Text, nullable=False),
    Column("proposed", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
)

signals = Table(
    "signals",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Text, nullable=False),
    Column("observed_at", Float, nullable=False),
    Column("source", String(100), nullable=False),
    Index("ix_signals_lookup", "tenant", "subject_id", "name", "observed_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("kind", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)

# One row per approved action on its way to the app: the delivery state machine
# (copilot.delivery). `due_at` is when the row is next claimable: a ready row's creation,
# a failed row's next attempt, a claimed row's claim expiry; NULL once settled.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("tenant", String(100), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("approval_id", String(32), nullable=True),
    Column("subject_id", String(200), nullable=True),
    Column("kind", String(100), nullable=False),
    Column("route", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("receipt", Text, nullable=True),
    Column("claim_token", String(32), nullable=True),
    Column("claimed_by", String(200), nullable=True),
    Column("due_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_deliveries_due", "route", "due_at"),
    Index("ix_deliveries_tenant_state", "tenant", "state", "id"),
    Index("ix_deliveries_approval", "approval_id"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("idempotency_key", String(200), primary_key=True),
    Column("executor", String(50), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("kind", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

subject_preferences = Table(
    "subject_preferences",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("opt_out_all", Boolean, nullable=False),
    Column("opt_out_workflows", Text, nullable=False),
    Column("snooze_until", Float, nullable=True),
    Column("consent_basis", String(50), nullable=True),
    Column("updated_at", Float, nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("action_id", String(64), nullable=True),
    Column("name", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("observed_at", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("source", String(100), nullable=False),
    Index("ix_outcomes_name", "tenant", "name", "observed_at"),
    Index("ix_outcomes_subject", "tenant", "subject_id"),
)

# One row per (event trigger, subject): when it last fired. Firing is a compare-and-set on
# `fired_at`, so of any number of concurrent ingestions exactly one opens a debounce window.
trigger_state = Table(
    "trigger_state",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("trigger", String(64), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("fired_at", Float, nullable=False),
    Column("run_id", String(32), nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("roles", String(100), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Index("ix_api_keys_tenant", "tenant", "id"),
    # A name is what the trail records for a key's acts (`human:<name>`): one key per name
    # in a tenant, revoked ones included, so a name never stands for two keys.
    Index("uq_api_keys_name", "tenant", "name", unique=True),
)

# Web page sessions: the cookie carries a random id; only its SHA-256 is stored, with the
# key it stands for and the session's CSRF token (copilot.web.sessions).
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_web_sessions_key", "key_id"),
)

# Liveness bookkeeping per run, off the hot path (copilot.engine.faults): timed-out attempts
# (the quarantine counts them) and when the sweeper last sent the run a wake-up.
run_liveness = Table(
    "run_liveness",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("timeouts", Integer, nullable=False, server_default="0"),
    Column("woken_at", Float, nullable=True),
)

# The placements wing's decision log (copilot.placements): one row per decide, written in
# the transaction that also appends its `placement.decided` audit entry. `features` and
# `explanation` are the personal parts (erasure redacts them); the rest is what caps,
# "why not shown", the report and learning (copilot.ranking.LoggedDecision) read.
placement_decisions = Table(
    "placement_decisions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("placement", String(200), nullable=False),
    Column("decided_at", Float, nullable=False),
    Column("chosen", String(64), nullable=True),
    Column("candidates", Text, nullable=False),
    Column("features", Text, nullable=False),
    Column("propensity", Float, nullable=False),
    Column("policy", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("holdout", Boolean, nullable=False),
    Column("level", String(8), nullable=False),
    Column("reasons", Text, nullable=False),
    # Whether it spent the subject's daily budget (an item shown outside a bypassing class).
    Column("counted", Boolean, nullable=False),
    Column("segment", String(100), nullable=True),
    Column("explanation", Text, nullable=False),
    Index("ix_pdec_subject", "tenant", "subject_id", "decided_at"),
    Index("ix_pdec_placement", "tenant", "placement", "decided_at"),
)

# Exposure events on decisions; `event_id` (the app's) makes a redelivered post a no-op.
placement_events = Table(
    "placement_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("decision_id", String(32), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("placement", String(200), nullable=False),
    Column("candidate", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("until", Float, nullable=True),
    UniqueConstraint("tenant", "decision_id", "event_id", name="uq_pevents_event"),
    Index("ix_pevents_subject", "tenant", "subject_id", "at"),
    Index("ix_pevents_decision", "decision_id"),
)

# The learning wing (copilot.learn). Decisions ranked by a policy, with what the policy
# saw and how likely its pick was (what off-policy evaluation divides by); the feedback
# joined to them by id; trained policy versions, each stored whole in one row so no
# half-written version can be read; and the evidence each promotion request carried.
learn_decisions = Table(
    "learn_decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("surface", String(200), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("decided_at", Float, nullable=False),
    Column("features", Text, nullable=False),
    Column("candidates", Text, nullable=False),
    Column("chosen", String(200), nullable=True),
    Column("propensity", Float, nullable=False),
    Column("policy", String(100), nullable=False),
    Column("version", String(64), nullable=False),
    Column("holdout", Boolean, nullable=False, server_default=false()),
    Column("segment", String(200), nullable=True),
    Column("distribution", Text, nullable=True),
    # The shadow policy's pick for the same request (it acts on nothing; agreement counts it).
    Column("shadow_version", String(64), nullable=True),
    Column("shadow_pick", String(200), nullable=True),
    Index("ix_learn_decisions_window", "tenant", "surface", "decided_at"),
)

learn_feedback = Table(
    "learn_feedback",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("decision_id", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("event", String(100), nullable=False),
    Column("at", Float, nullable=False),
    Column("edit_distance", Float, nullable=True),
    Column("reason", Text, nullable=True),
    Column("value", Float, nullable=True),
    Index("ix_learn_feedback_decision", "tenant", "decision_id"),
)

learn_policies = Table(
    "learn_policies",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("surface", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("artifact", Text, nullable=False),
    Column("state", String(16), nullable=False),  # shadow | live | retired | demoted
    Column("n_train", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_learn_policies_state", "tenant", "surface", "state"),
)

learn_evidence = Table(
    "learn_evidence",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("surface", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("document", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_learn_evidence_version", "tenant", "surface", "version"),
)

# Guarded rollouts (copilot.measure.rollout): one row per paused-or-resumed thing (a
# workflow today; a placement or learned policy later, by `kind`). Pausing is a
# compare-and-set on `state`, so two guards confirming one breach pause it once. The
# history is in the audit trail (`rollout.paused`, `rollout.resumed`).
rollout_pauses = Table(
    "rollout_pauses",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("target", String(200), primary_key=True),
    Column("state", String(16), nullable=False),  # paused | resumed
    Column("paused_at", Float, nullable=False),
    Column("reason", Text, nullable=False),  # JSON: the stop rule and the evidence
    Column("resume_approval_id", String(32), nullable=True),
    Column("resumed_at", Float, nullable=True),
    Column("resumed_by", String(200), nullable=True),
)

# The weekly review (copilot.measure.review): one stored JSON document per tenant and week.
reviews = Table(
    "reviews",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("week", String(10), primary_key=True),  # ISO date of the week's Monday (UTC)
    Column("created_at", Float, nullable=False),
    Column("doc", Text, nullable=False),
)
