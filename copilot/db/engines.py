"""Database engines and migrations (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from audit.db import create_engine as audit_engine
from copilot.errors import DatabaseConfigError
from copilot.settings import Settings


def make_engine(settings: Settings) -> Engine:
    """An engine for `settings`, with a message that names the fix when it cannot be made."""
    url = settings.database_url_resolved
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseConfigError(
            f"COPILOT_DATABASE_URL is not a database URL ({exc}); use e.g. "
            "sqlite:///./.copilot/copilot.db or postgresql+psycopg://user@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise DatabaseConfigError(
                "COPILOT_DATABASE_URL must use the psycopg 3 driver: postgresql+psycopg://..."
            )
        if importlib.util.find_spec("psycopg") is None:
            raise DatabaseConfigError(
                "COPILOT_DATABASE_URL points to PostgreSQL but psycopg is not installed; "
                "install with `pip install 'psycopg[binary]'`"
            )
    elif backend != "sqlite":
        raise DatabaseConfigError(
            f"unsupported database {backend!r}: COPILOT_DATABASE_URL must be SQLite or PostgreSQL"
        )
    if backend == "postgresql":
        url = with_session_limits(parsed, settings).render_as_string(hide_password=False)
    return audit_engine(url)


def with_session_limits(url: URL, settings: Settings) -> URL:
    """`url` with the session's bounded waits in libpq's `options` (no round trip: set at connect).

    `lock_timeout` bounds every wait on another session's row or advisory lock,
    `idle_in_transaction_session_timeout` ends a session frozen inside its transaction
    (its locks are released), `statement_timeout` bounds one statement. Every engine made
    from this URL carries them, the run store's asynchronous one included.
    """
    limits = {
        "lock_timeout": settings.db_lock_timeout,
        "idle_in_transaction_session_timeout": settings.db_idle_in_transaction_timeout,
        "statement_timeout": settings.db_statement_timeout,
    }
    given = url.query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    extra = [f"-c {k}={int(v * 1000)}" for k, v in limits.items() if k not in given]
    options = " ".join([given, *extra]).strip()
    return url.update_query_dict({"options": options}) if options else url


def migrations_dir() -> Path:
    """The Alembic scripts, shipped inside the package (one path in a checkout and a wheel)."""
    return Path(__file__).resolve().parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on `engine`'s database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise DatabaseConfigError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}; check COPILOT_DATABASE_URL and that the server is running"
        ) from exc


def ping(engine: Engine) -> None:
    """Raise DatabaseConfigError unless the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseConfigError(explain(exc, engine.url.render_as_string())) from exc


# What a missing table or column says on each dialect (SQLite, PostgreSQL's UndefinedTable
# and UndefinedColumn): the schema is older than the code, and `db upgrade` is the fix.
_SCHEMA_MISSING = ("no such table", "no such column", "does not exist", "has no column")


def explain(exc: DBAPIError, url: str) -> str:
    """What a database error means for the person at the command line, and the fix.

    A schema older than the code gets "run `copilot db upgrade`"; a server that does not
    answer (refused, unknown host, bad credentials) gets that, with the URL (no password).
    """
    shown = _shown(url)
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    if any(marker in detail.lower() for marker in _SCHEMA_MISSING):
        return (
            f"the database at {shown} has no schema for this version ({detail}); "
            "run `copilot db upgrade`"
        )
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return (
            f"cannot reach the database at {shown} ({detail}); check COPILOT_DATABASE_URL "
            "and that the server is running and accepts this user"
        )
    return f"the database at {shown} refused the command ({detail})"


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "COPILOT_DATABASE_URL"
