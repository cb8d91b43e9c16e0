"""The approval queue's hot read for the API: on PostgreSQL, asyncio end to end.

`GET /v1/approvals` is what every reviewer's tool polls. On PostgreSQL it is served on the
event loop through asyncpg (connections kept between requests, closed with the app;
statements prepared once per connection and filter shape), the page joined from stored
documents (see `approvals.queue`): no worker thread and no ORM between the socket and the
rows. asyncpg rather than psycopg's asyncio mode because it reads the same page for about
half the CPU (bench/api.py is CPU-bound on this read). On SQLite, or when the reader is
not open (an app driven without its lifespan), the same page is read through the gate's
engine on a worker thread; the bytes are the same.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

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


# A kept connection the server closed meanwhile (a restart, an idle timeout): not a timeout.
_STALE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


class Connections:
    """Idle asyncpg connections reused last-in first-out, at most `size` open at once.

    Instead of asyncpg's Pool, whose acquire and release (a task per release, to shield it)
    cost about a third of this read's driver time. A connection that fails or is cancelled
    mid-statement is closed, not reused; a read that fails on a stale connection (a
    restarted server) is retried once on a fresh one, which is safe because it only reads.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._idle: list[asyncpg.Connection] = []

    async def fetch(self, sql: str, args: list[Any]) -> list[asyncpg.Record]:
        async with self._slots:
            for attempt in (1, 2):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    rows = await conn.fetch(sql, *args)
                except BaseException as exc:
                    conn.terminate()  # its state is unknown: never reused
                    if reused and attempt == 1 and isinstance(exc, _STALE):
                        continue
                    raise
                self._idle.append(conn)
                return rows
        raise AssertionError("unreachable")

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()


class QueueReader:
    """Pages of a tenant's approval queue as JSON bytes."""

    def __init__(self, gate: Gate, engine: Engine, *, max_connections: int = 4) -> None:
        self.gate = gate
        self.engine = engine
        self.max_connections = max_connections
        self._connections: Connections | None = None

    async def open(self) -> None:
        """Ready the asyncpg connections on PostgreSQL (a no-op on SQLite).

        Nothing connects until the first read: an API process starts while its database is
        away, and its reads answer 503 until the database is back.
        """
        if self.engine.dialect.name != "postgresql" or self._connections is not None:
            return
        url = self.engine.url
        settings = {
            # Plan each statement shape once: re-planning the cursor page on every read (what
            # PostgreSQL does by default for this one) cost the server ~40% more CPU than
            # running it. Every shape has the same right plan: the queue index, in order.
            "plan_cache_mode": "force_generic_plan",
            "application_name": "copilot-api-queue",  # for pg_stat_activity
            **server_settings(str(url.query.get("options", ""))),
        }

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                host=url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=url.database,
                server_settings=settings,
                timeout=10,  # an unreachable server is a 503, not a hung request
                command_timeout=30,
            )

        self._connections = Connections(connect, self.max_connections)

    async def close(self) -> None:
        if self._connections is not None:
            connections, self._connections = self._connections, None
            await connections.close()

    async def page(self, tenant: str, query: QueueQuery) -> bytes:
        """The page: by deadline, then highest risk first, after `query.cursor`."""
        if self._connections is None:  # SQLite, or an app driven without its lifespan
            return await run_in_threadpool(self.gate.queue_page, tenant, query)
        sql, args = positional(tenant, query)
        try:
            rows = await self._connections.fetch(sql, args)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            log.warning("queue read: database unavailable: %s", exc)
            raise CopilotError(
                "the database is not reachable; retry shortly", code="service.unavailable"
            ) from exc
        ids = missing(rows, query.limit)
        rendered = await run_in_threadpool(self.gate.render, ids) if ids else {}
        return assemble(rows, query.limit, rendered)
