"""One `Settings`, read from `COPILOT_*` environment variables at the edges (CLI, app, worker)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

# `none`, `provider:model` (LangChain's init_chat_model resolves it), or `module:factory`
# / `module.factory` naming a callable that returns a chat model (see copilot.llm).
_LLM = re.compile(r"^(none|[A-Za-z_][A-Za-z0-9_.\-]*:[^\s]+|[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+)$")
# Spellings of a PostgreSQL URL that name no driver (Heroku's and libpq's `postgres://`,
# SQLAlchemy's bare `postgresql://`): the only driver we ship is psycopg 3.
_PG_SCHEMES = ("postgres://", "postgresql://")


class Settings(BaseSettings):
    """Everything configurable, with embedded defaults that need nothing installed.

    >>> Settings(home=Path("/tmp/x")).database_url_resolved
    'sqlite:////tmp/x/copilot.db'
    """

    model_config = SettingsConfigDict(env_prefix="COPILOT_", extra="ignore")

    home: Path = Field(
        default=Path(".copilot"), description="Holds the embedded database, broker and key."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under home."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; default SQLite under home."
    )
    llm: str = Field(
        default="none",
        description="`none` (rules only), `provider:model` (e.g. `openai:gpt-4o-mini`, "
        "`ollama:llama3.2`), or a dotted path to a factory returning a chat model.",
    )
    builtin_workflows: bool = Field(
        default=True,
        description="Register the built-in demo workflows (their signals, kinds, schedule "
        "and event trigger); `false` in a deployment of your own workflows.",
    )
    allow_embedded: bool = Field(
        default=False,
        description="Allow an embedded part (SQLite database or broker) beside a shared one "
        "(PostgreSQL, Redis, ...); refused at start-up otherwise.",
    )
    signing_key_path: Path | None = Field(
        default=None, description="ed25519 PEM key for checkpoints."
    )
    tenant: str = Field(
        default="default", description="The tenant (audit stream) the CLI acts for."
    )
    checkpoint_every: int = Field(
        default=1000, ge=0, description="Sign a checkpoint every N entries (0: never)."
    )
    workflow_modules: str = Field(
        default="", description="Comma-separated modules whose workflows to register."
    )
    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a worker owns a run between checkpoints."
    )
    sweep_interval: float = Field(default=5.0, gt=0, description="Seconds between sweeps (beat).")
    sweep_grace: float = Field(
        default=30.0, ge=0, description="A run queued longer than this is re-enqueued."
    )
    db_lock_timeout: float = Field(
        default=5.0, ge=0,
        description="PostgreSQL `lock_timeout`, seconds: the longest wait for a row or chain lock (0: none).",
    )  # fmt: skip
    db_idle_in_transaction_timeout: float = Field(
        default=30.0, ge=0,
        description="PostgreSQL `idle_in_transaction_session_timeout`, seconds: a frozen holder's locks are freed (0: never).",
    )  # fmt: skip
    db_statement_timeout: float = Field(
        default=300.0, ge=0,
        description="PostgreSQL `statement_timeout`, seconds: the longest one statement runs (0: none).",
    )  # fmt: skip
    audit_settle_wait: float = Field(
        default=10.0, gt=0,
        description="Seconds readers, the signer and the sweeper wait for a stream's chain lock before going on with what is chained.",
    )  # fmt: skip
    step_timeout: float = Field(
        default=120.0, ge=0,
        description="Seconds a step may run before it is interrupted, unless its workflow sets `step_timeout` (0: none).",
    )  # fmt: skip
    step_timeouts_max: int = Field(
        default=2, ge=1, le=100,
        description="Timed-out attempts after which a run fails `run.step_timeout` (quarantined).",
    )  # fmt: skip
    llm_timeout: float = Field(
        default=20.0, gt=0, description="Seconds before a model call times out."
    )
    action_executors: str = Field(
        default="",
        description="Executor per action kind: `kind=executor,...` (unrouted kinds: `outbox`).",
    )
    routes_path: Path | None = Field(
        default=None, description="YAML routes: executor and options per action kind."
    )
    learn_path: Path | None = Field(
        default=None,
        description="YAML of the learning wing: surfaces (candidates, descriptions), rewards, "
        "training, evidence, guardrails (copilot.learn.config).",
    )
    embeddings: str = Field(
        default="offline",
        description="Embeddings for cold start: `offline` (a static CPU model, no network), "
        "`openai:<model>` (langchain-openai), or `none`.",
    )
    webhook_url: str | None = Field(default=None, description="Where the webhook executor POSTs.")
    webhook_secret: str | None = Field(default=None, description="HMAC key for webhook signatures.")
    delivery_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts before an action's delivery is `dead`."
    )
    delivery_backoff: float = Field(
        default=1.0, gt=0, description="Seconds before a failed delivery's first retry (doubles)."
    )
    delivery_backoff_cap: float = Field(
        default=300.0, gt=0, description="The longest wait between delivery retries, seconds."
    )
    delivery_visibility: float = Field(
        default=30.0, gt=0, le=3600,
        description="Seconds a feed claim holds an action before it returns to the feed.",
    )  # fmt: skip
    policy_path: Path | None = Field(default=None, description="YAML approval policy.")
    placement_modules: str = Field(
        default="",
        description="Modules declaring placements (and their signals), comma-separated; "
        "`copilot.placements.onboarding` is the built-in onboarding journey.",
    )
    placements_path: Path | None = Field(default=None, description="YAML placement declarations.")
    cors_origins: str = Field(
        default="",
        description="Origins (comma-separated, e.g. https://app.example.com) whose pages may call "
        "decide and events with copilot.js; empty: none (same origin only).",
    )
    subject_token_secret: str | None = Field(
        default=None,
        description="HMAC secret for subject tokens (16+ bytes); unset: a key in COPILOT_HOME.",
    )
    signals_path: Path | None = Field(default=None, description="YAML signal declarations.")
    outcomes_path: Path | None = Field(default=None, description="YAML outcome declarations.")
    triggers_path: Path | None = Field(
        default=None, description="YAML schedules and event triggers."
    )
    schedule_tick: float = Field(
        default=60.0, gt=0, description="Seconds between schedule ticks (beat): jitter resolution."
    )
    notify_url: str | None = Field(
        default=None, description="Webhook told of new pending approvals."
    )
    notify_secret: str | None = Field(default=None, description="HMAC key for notifier webhooks.")
    public_url: str = Field(
        default="",
        description="Where people reach the pages (the review's link), e.g. https://copilot.example",
    )
    review_interval: float = Field(
        default=7 * 86400.0, gt=0, description="Seconds between weekly reviews (beat)."
    )
    holdouts: str = Field(
        default="",
        description="Holdout overrides: `workflow=fraction,...` (e.g. `next_actions=0.1`).",
    )
    holdout_salt: str = Field(
        default="copilot", description="Salt of holdout assignment; change it to reshuffle."
    )
    guard_interval: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds between guarded-rollout checks of the stop rules (beat; daily).",
    )
    retention_interval: float = Field(
        default=3600.0, gt=0, description="Seconds between retention purges (beat)."
    )
    learn_interval: float = Field(
        default=86400.0, gt=0,
        description="Seconds between beat's training of every declared learning surface.",
    )
    queue: str = Field(
        default="",
        description="Celery queue name (one per deployment); default `copilot.<digest of the "
        "database URL>`.",
    )
    broker_visibility_timeout: float = Field(
        default=300.0, gt=0, description="Seconds before Redis redelivers an unacknowledged task."
    )
    worker_concurrency: int = Field(default=2, ge=1, description="Processes per `copilot worker`.")
    api_max_body_bytes: int = Field(
        default=262_144, ge=1024, description="Largest request body the HTTP API accepts."
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How long an API process trusts a key it checked: a key revoked through another "
            "process (the CLI, another API process) may work that long here; the process "
            "that revokes it forgets it at once."
        ),
    )
    api_decide_connections: int = Field(
        default=8,
        ge=1,
        le=200,
        description=(
            "PostgreSQL connections each API process keeps for `POST /v1/decide` on its event "
            "loop (at most this many decides in flight at once; the rest wait their turn)."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated IPs or networks (or `*`) of the TLS-terminating proxies whose "
            "X-Forwarded-Proto and X-Forwarded-For are honoured; empty: none are."
        ),
    )
    metrics_token: str = Field(
        default="",
        description=(
            "The bearer token `/metrics` requires (it names tenants); empty: `/metrics` "
            "answers 401 to everyone."
        ),
    )

    @field_validator("llm")
    @classmethod
    def _llm(cls, v: str) -> str:
        if not _LLM.match(v):
            raise ValueError(
                "COPILOT_LLM must be `none`, `provider:model` (e.g. openai:gpt-4o-mini, "
                "anthropic:claude-3-5-haiku-latest, ollama:llama3.2) or a dotted path to a "
                "factory returning a chat model (e.g. myapp.llm.make_chat)"
            )
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        if v is not None:
            for scheme in _PG_SCHEMES:
                if v.startswith(scheme):
                    return "postgresql+psycopg://" + v.removeprefix(scheme)
        return v

    @property
    def workflow_module_list(self) -> list[str]:
        """`workflow_modules` split on commas."""
        return [m.strip() for m in self.workflow_modules.split(",") if m.strip()]

    @property
    def embedded_database(self) -> bool:
        """Whether the database is the embedded default (no COPILOT_DATABASE_URL)."""
        return self.database_url is None

    @property
    def embedded_broker(self) -> bool:
        """Whether the broker is the embedded SQLite transport (unset, or an `sqla+sqlite` URL)."""
        return self.broker_url is None or self.broker_url.startswith("sqla+sqlite")

    @property
    def queue_resolved(self) -> str:
        """The Celery queue: COPILOT_QUEUE, else one named after this deployment's database.

        Two deployments on one broker must never take each other's tasks (a sweep or an
        advance for another database): the default queue is `copilot.` plus a digest of
        the database URL (without its password), so only processes on one database share it.
        """
        if self.queue:
            return self.queue
        try:
            url = make_url(self.database_url_resolved)._replace(password=None).render_as_string()
        except Exception:  # a malformed URL is refused by make_engine, with its own message
            url = self.database_url_resolved
        return "copilot." + hashlib.sha256(url.encode()).hexdigest()[:12]

    @property
    def database_url_resolved(self) -> str:
        """The database URL, defaulting to the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.home.absolute()}/copilot.db"

    @property
    def broker_url_resolved(self) -> str:
        """The broker URL, defaulting to Celery's SQLAlchemy transport on a SQLite file."""
        return self.broker_url or f"sqla+sqlite:///{self.home.absolute()}/broker.db"

    @property
    def signing_key_path_resolved(self) -> Path:
        """Where the checkpoint signing key lives (created on first use)."""
        return self.signing_key_path or self.home / "keys" / "checkpoint.pem"


def shown_url(url: str) -> str:
    """A database or broker URL as messages, logs and /healthz show it.

    Never its password (`***`), and never the libpq `options` the engine adds (the
    session's lock and statement timeouts): those are ours, not the URL the person set.
    """
    try:
        parsed = make_url(url)
    except Exception:  # a broker URL SQLAlchemy cannot parse (amqp://, sqs://): shown as given
        return url.split("@")[-1] if "@" in url else url
    return parsed.difference_update_query(["options"]).render_as_string(hide_password=True)
