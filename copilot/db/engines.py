"""Database engines and migrations (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from audit.db import create_engine as audit_engine
from copilot.errors import DatabaseConfigError
from copilot.settings import Settings, shown_url


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
        raise DatabaseConfigError(explain(exc, _full(engine))) from exc


def ping(engine: Engine) -> None:
    """Raise DatabaseConfigError unless the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseConfigError(explain(exc, _full(engine))) from exc


# What a missing table or column says on each dialect (SQLite, PostgreSQL's UndefinedTable
# and UndefinedColumn): the schema is older than the code, and `db upgrade` is the fix.
_SCHEMA_MISSING = ("no such table", "no such column", "does not exist", "has no column")


def explain(exc: DBAPIError, url: str) -> str:
    """What a database error means for the person at the command line, and the fix.

    A PostgreSQL database that does not exist (SQLSTATE 3D000) is named with its server;
    a SQLite file with nothing in it is named by its absolute path (a wrong URL is the
    usual cause); a schema older than the code gets "run `copilot db upgrade`"; a server
    that does not answer (refused, unknown host, bad credentials) gets that. URLs are
    shown without password or the engine's `options`.
    """
    shown = shown_url(url)
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    absent = _absent_database(exc, url)
    if absent is not None:
        return absent
    if any(marker in detail.lower() for marker in _SCHEMA_MISSING):
        empty = empty_sqlite_file(url)
        if empty is not None:
            return (
                f"no database file at {empty} (sqlite:///path is relative to the current "
                "directory, sqlite:////path is absolute: three slashes or four); fix "
                "COPILOT_DATABASE_URL, or run `copilot db upgrade` to create it there"
            )
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


_NO_DATABASE = re.compile(r'database "([^"]+)" does not exist')


def _absent_database(exc: DBAPIError, url: str) -> str | None:
    """The message for a PostgreSQL server that answers but has no such database (3D000)."""
    text_ = str(exc.orig) if exc.orig is not None else str(exc)
    found = _NO_DATABASE.search(text_)
    if getattr(exc.orig, "sqlstate", None) != "3D000" and found is None:
        return None
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    name = found.group(1) if found else parsed.database
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return (
        f"database {name!r} does not exist on {where}; create it (`createdb -h "
        f"{parsed.host or 'localhost'} -p {parsed.port or 5432} {name}`) or fix "
        "COPILOT_DATABASE_URL"
    )


def sqlite_path(url: str) -> Path | None:
    """The absolute path of a SQLite URL's file; None for another database or `:memory:`."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def empty_sqlite_file(url: str) -> Path | None:
    """The SQLite file's absolute path if it is missing or holds no table (an open made it)."""
    path = sqlite_path(url)
    if path is None:
        return None
    if not path.exists():
        return path
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error:
        return None
    return path if tables == 0 else None


def _full(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)
