"""The approval queue's hot read for the API: on PostgreSQL, asyncio end to end.

`GET /v1/approvals` is what every reviewer's tool polls. On PostgreSQL it is served on the
event loop through asyncpg (connections kept between requests, closed with the app;
statements prepared once per connection and filter shape), the page joined from stored
documents (see `approvals.queue`): no worker thread and no ORM between the socket and the
rows. asyncpg rather than psycopg's asyncio mode because it reads the same page for
0.5-0.7 of the client CPU (bench/queue_read.py). On SQLite, or when the reader is
not open (an app driven without its lifespan), the same page is read through the gate's
engine on a worker thread; the bytes are the same.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import URL, Engine
from starlette.concurrency import run_in_threadpool

from approvals import Gate
from approvals.queue import QueueQuery, assemble, missing, positional
from copilot.errors import CopilotError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Connection parameters asyncpg honours in a DSN as libpq does (TLS among them). A URL with
# any other parameter is not guessed at: the reader then stays on the engine.
DSN_PARAMS = frozenset(
    {
        "host", "port", "user", "password", "dbname", "database", "passfile", "service",
        "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword",
        "sslnegotiation", "ssl_min_protocol_version", "ssl_max_protocol_version",
        "target_session_attrs", "krbsrvname", "gsslib",
    }
)  # fmt: skip
# The server or the connection went away: a kept connection is not reused after these, and
# a read that met one on a kept connection is tried once more on a fresh one.
_GONE: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,  # shut down, terminated, starting up
)


class ConnectRefused(ConnectionError):
    """The server refused a new connection with an error of its own (a role or database it
    does not know, a bad password, no pg_hba entry): as unavailable as a refused socket,
    and what psycopg raises for it is an OperationalError too (503 on the threaded paths)."""


class Closed(ConnectionError):
    """The kept connections were closed (the app is stopping): nothing new is opened."""


# What answers 503 `service.unavailable` (timeouts and refusals are OSErrors).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    *_GONE,
    OSError,
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, out of memory
)


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


def connect_args(url: URL) -> tuple[str, dict[str, str], float] | None:
    """asyncpg's DSN, server settings and connect timeout for the engine's URL.

    None when the URL holds a parameter asyncpg would not honour as libpq does.
    """
    settings = {
        # Plan each statement shape once: by default PostgreSQL re-plans the cursor page on
        # every read; planned once, a page costs it ~0.7 of the CPU (bench/queue_read.py).
        # Every shape has one right plan: an index, in the queue's order.
        "plan_cache_mode": "force_generic_plan",
    }
    timeout = 10.0  # connecting; an unreachable server is a 503, not a hung request
    kept: dict[str, str] = {}
    for name, value in url.query.items():
        if not isinstance(value, str):  # a repeated parameter
            return None
        if name == "options":
            settings.update(server_settings(value))
        elif name == "application_name":
            settings[name] = value
        elif name == "connect_timeout":
            timeout = float(value)
        elif name in DSN_PARAMS:
            kept[name] = value
        else:
            return None
    dsn = url.set(drivername="postgresql", query=kept).render_as_string(hide_password=False)
    return dsn, settings, timeout


class Connections:
    """Idle asyncpg connections reused last-in first-out, at most `size` in use at once.

    Instead of asyncpg's Pool, whose acquire and release (a task per release, to shield it)
    add to every read on this hot path. A connection the server or the network
    dropped, or one cancelled mid-statement, is closed, never reused; a statement error
    leaves it usable. A read that finds its kept connection dead (a restarted server, an
    idle timeout) drops every idle one and is tried once more on a fresh connection: safe,
    because it only reads.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._idle: list[asyncpg.Connection] = []
        self._open: set[asyncpg.Connection] = set()
        self._closed = False

    async def fetch(self, sql: str, args: list[Any]) -> list[asyncpg.Record]:
        async with self._slots:
            conn, reused = await self._take()
            try:
                return await self._run(conn, sql, args)
            except _GONE:
                if not reused:
                    raise
            return await self._run(await self._retake(), sql, args)

    async def _retake(self) -> asyncpg.Connection:
        """A fresh connection, after a kept one was found dead: a server that dropped one
        dropped them all, so every idle one goes too."""
        while self._idle:
            self._discard(self._idle.pop())
        conn, _ = await self._take()
        return conn

    async def _take(self) -> tuple[asyncpg.Connection, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn, True
            self._discard(conn)
        if self._closed:  # a caller that waited for a slot while the app stopped
            raise Closed("the database connections are closed (the app is stopping)")
        try:
            conn = await self._connect()
        except asyncpg.PostgresError as exc:
            raise ConnectRefused(f"the database refused the connection: {exc}") from exc
        if self._closed:  # closed while this one connected: nothing would ever close it
            conn.terminate()
            raise Closed("the database connections are closed (the app is stopping)")
        self._open.add(conn)
        return conn, False

    def _keep(self, conn: asyncpg.Connection) -> None:
        """Back to the idle ones; closed instead when the connections were closed meanwhile."""
        if self._closed:
            self._discard(conn)
        else:
            self._idle.append(conn)

    async def _run(self, conn: asyncpg.Connection, sql: str, args: list[Any]) -> list[Any]:
        try:
            rows = await conn.fetch(sql, *args)
        except asyncpg.PostgresError as exc:
            if isinstance(exc, _GONE):
                self._discard(conn)
            else:
                self._keep(conn)  # the statement failed; the connection did not
            raise
        except BaseException:
            self._discard(conn)  # dropped, or cancelled mid-statement: its state is unknown
            raise
        self._keep(conn)
        return rows

    async def transact(
        self, body: Callable[[asyncpg.Connection], Awaitable[T]], begin: str = "BEGIN"
    ) -> T:
        """`body(conn)` in one transaction of its own, committed when it returns.

        `begin` (a parameterless statement, sent in the simple protocol: it may append more
        statements after `BEGIN;`) is the first thing sent: a kept connection found dead
        there (nothing written) drops every idle one and `begin` is tried once on a fresh
        connection.
        After BEGIN nothing is retried (the body writes). Anything the body raises rolls
        the transaction back; the connection is kept only when the rollback went through
        and it was neither dropped nor cancelled mid-statement.
        """
        async with self._slots:
            conn, reused = await self._take()
            try:
                await conn.execute(begin)
            except BaseException as exc:
                self._discard(conn)
                cancelled = isinstance(exc, asyncpg.exceptions.QueryCanceledError)
                if not reused or not isinstance(exc, _GONE) or cancelled:
                    raise  # a fresh connection failed, or someone cancelled us: not retried
                conn = await self._retake()
                try:
                    await conn.execute(begin)
                except BaseException:
                    self._discard(conn)
                    raise
            try:
                out = await body(conn)
                await conn.execute("COMMIT")
            except Exception as exc:
                if isinstance(exc, _GONE):
                    self._discard(conn)
                    raise
                try:
                    await conn.execute("ROLLBACK")
                except BaseException:
                    self._discard(conn)
                    raise exc from None
                self._keep(conn)
                raise
            except BaseException:  # cancelled mid-statement: the connection's state is unknown
                self._discard(conn)
                raise
            self._keep(conn)
            return out

    def _discard(self, conn: asyncpg.Connection) -> None:
        self._open.discard(conn)
        conn.terminate()

    async def close(self) -> None:
        """Close every connection, idle or not (the app is stopping); never hangs on one.
        Nothing is opened after this: a caller still waiting for a slot gets `Closed`, and
        a connection in use is closed when its caller is done with it."""
        self._closed = True
        self._idle.clear()
        while self._open:
            conn = self._open.pop()
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()


def connections(engine: Engine, application_name: str, size: int) -> Connections | None:
    """Kept asyncpg connections to the engine's PostgreSQL database, configured as the
    engine's URL says (None on SQLite, or for a URL asyncpg would not take as libpq does).
    Nothing connects until first used."""
    if engine.dialect.name != "postgresql":
        return None
    args = connect_args(engine.url)
    if args is None:
        return None
    dsn, settings, timeout = args
    settings = {"application_name": application_name, **settings}
    # The server's own limits bound each statement (statement_timeout, lock_timeout: the
    # engine's URL carries them); the client gives up a little after statement_timeout, so
    # a server that stopped answering cannot hold a request for ever, and with none (0) it
    # waits as the threaded paths do.
    limit = _ms(settings.get("statement_timeout", "0"))
    command_timeout = limit + 5.0 if limit > 0 else None

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(
            dsn, server_settings=settings, timeout=timeout, command_timeout=command_timeout
        )

    return Connections(connect, size)


def _ms(value: str) -> float:
    """A PostgreSQL duration setting in seconds: `300000`, `300s`, `5min` (milliseconds bare)."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
    text = value.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                return 0.0
    try:
        return float(text) / 1000
    except ValueError:
        return 0.0


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
        self._connections = connections(self.engine, "copilot-api-queue", self.max_connections)
        if self._connections is None:
            log.warning(
                "COPILOT_DATABASE_URL has a parameter asyncpg does not take as libpq does; "
                "the approval queue is read through the engine"
            )

    async def close(self) -> None:
        if self._connections is not None:
            connections, self._connections = self._connections, None
            await connections.close()

    async def page(self, tenant: str, query: QueueQuery) -> bytes:
        """The page: by deadline, then highest risk first, after `query.cursor`."""
        if self._connections is not None:
            sql, args = positional(tenant, query)
            try:
                rows = await self._connections.fetch(sql, args)
            except UNAVAILABLE as exc:
                log.warning("queue read: database unavailable: %s", exc)
                raise CopilotError(
                    "the database is not reachable; retry shortly", code="service.unavailable"
                ) from exc
            if not missing(rows, query.limit):
                return assemble(rows, query.limit, {})
        # SQLite; no asyncpg; or an item without its stored document: the engine reads the
        # page and renders those items in one snapshot.
        return await run_in_threadpool(self.gate.queue_page, tenant, query)
