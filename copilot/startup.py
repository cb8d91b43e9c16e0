"""What a worker or API process refuses before it says it is ready: parts that cannot meet.

The embedded defaults (a SQLite database and a SQLite broker under COPILOT_HOME) serve
one host: `copilot demo`, a laptop. A deployment that names one shared part and leaves
the other embedded is misconfigured in a way nothing else notices:

- PostgreSQL with the embedded broker: every host has its own broker file, so a run
  triggered through one API host waits for the sweeper (30 s and more) unless a worker
  happens to share that host's file.
- A shared broker (Redis, RabbitMQ, ...) with no COPILOT_DATABASE_URL: every process
  quietly creates its own SQLite file in its working folder, and a worker takes runs it
  cannot find.

Both are refused unless COPILOT_ALLOW_EMBEDDED=true says the mix is meant (a test rig,
one host). Both parts embedded is the one-host default and passes, and says so.
"""

from __future__ import annotations

from copilot.errors import ConfigError, DatabaseConfigError
from copilot.settings import Settings, shown_url

__all__ = ["check_parts", "shown_url"]


def check_parts(settings: Settings) -> list[str]:
    """Refuse a mix of embedded and shared parts; the lines naming the parts in use."""
    database = shown_url(settings.database_url_resolved)
    broker = shown_url(settings.broker_url_resolved)
    postgres = database.startswith("postgresql")
    if not settings.allow_embedded:
        if postgres and settings.embedded_broker:
            raise ConfigError(
                "COPILOT_DATABASE_URL points to PostgreSQL but the broker is the embedded SQLite "
                f"file ({broker}), which only this host sees: workers elsewhere never hear of "
                "new runs. Set COPILOT_BROKER_URL (e.g. redis://host:6379/0) on every API and "
                "worker process, or COPILOT_ALLOW_EMBEDDED=true if one host is meant"
            )
        if settings.embedded_database and not settings.embedded_broker:
            raise DatabaseConfigError(
                f"COPILOT_BROKER_URL names a shared broker ({broker}) but COPILOT_DATABASE_URL "
                f"is unset: this process would create its own SQLite database at {database}. "
                "Set COPILOT_DATABASE_URL (e.g. postgresql://user@host/db) on every process, "
                "or COPILOT_ALLOW_EMBEDDED=true if one host is meant"
            )
    embedded = " (embedded; set COPILOT_DATABASE_URL for a deployment)"
    return [
        f"database: {database}" + (embedded if settings.embedded_database else ""),
        f"broker: {broker}" + (" (embedded)" if settings.embedded_broker else ""),
        f"queue: {settings.queue_resolved}",
    ]
