"""The approval queue's hot read for the API: on PostgreSQL, asyncio end to end.

`GET /v1/approvals` is what every reviewer's tool polls. On PostgreSQL it is served on the
event loop through asyncpg (a pool opened with the app and closed with it; statements
prepared once per connection and filter shape), the page joined from stored documents
(see `approvals.queue`): no worker thread and no ORM between the socket and the rows.
asyncpg rather than psycopg's asyncio mode because it reads the same page for about half
the CPU (bench/api.py is CPU-bound on this read). On SQLite, or when the pool is not open
(an app driven without its lifespan), the same page is read through the gate's engine on
a worker thread; the bytes are the same.
"""

from __future__ import annotations

import logging
import shlex

import asyncpg
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from approvals import Gate
from approvals.queue import QueueQuery, assemble, missing, positional
from copilot.errors import CopilotError

log = logging.getLogger(__name__)


def server_settings(options: str) -> dict[str, str]:
    """libpq's `options` (`-c name=value ...`, as in COPILOT_DATABASE_URL) as asyncpg's settings."""
    found: dict[str, str] = {}
    words = shlex.split(options)
    for i, word in enumerate(words):
        if word.startswith("-c") or word.startswith("--"):
            setting = word[2:] or (words[i + 1] if i + 1 < len(words) else "")
            name, eq, value = setting.partition("=")
            if eq:
                found[name.replace("-", "_")] = value
    return found


class QueueReader:
    """Pages of a tenant's approval queue as JSON bytes."""

    def __init__(self, gate: Gate, engine: Engine, *, max_connections: int = 4) -> None:
        self.gate = gate
        self.engine = engine
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Make the asyncpg pool on PostgreSQL (a no-op on SQLite). Connects on first use."""
        if self.engine.dialect.name != "postgresql" or self._pool is not None:
            return
        url = self.engine.url
        self._pool = await asyncpg.create_pool(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database,
            server_settings=server_settings(str(url.query.get("options", ""))),
            min_size=0,  # an API process starts while the database is away, and says so
            max_size=self.max_connections,
            timeout=10,  # connecting; an unreachable server is a 503, not a hung request
            command_timeout=30,
            reset=_keep,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def page(self, tenant: str, query: QueueQuery) -> bytes:
        """The page: by deadline, then highest risk first, after `query.cursor`."""
        if self._pool is None:  # SQLite, or an app driven without its lifespan
            return await run_in_threadpool(self.gate.queue_page, tenant, query)
        sql, args = positional(tenant, query)
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(sql, *args)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            log.warning("queue read: database unavailable: %s", exc)
            raise CopilotError(
                "the database is not reachable; retry shortly", code="service.unavailable"
            ) from exc
        ids = missing(rows, query.limit)
        rendered = await run_in_threadpool(self.gate.render, ids) if ids else {}
        return assemble(rows, query.limit, rendered)


async def _keep(conn: asyncpg.Connection) -> None:
    """A read-only autocommit statement leaves nothing to reset between uses (asyncpg's
    default reset costs a round trip per request)."""
