"""The API's queue read, piece by piece, each beside what it replaced, in the same run.

Pages of 50 over N pending requests on PostgreSQL (the first page, then cursor pages, as
`GET /v1/approvals` reads them: `approvals.queue.positional`), on one kept connection:
(a) this process's CPU per page read with asyncpg (copilot/api/reads.py), beside the same
    statements through psycopg's asyncio connection. Target: <= 0.75 of it.
(b) the PostgreSQL backend's CPU per page (from /proc) when every statement shape is
    planned once (`plan_cache_mode=force_generic_plan`, as the reader sets it), beside
    PostgreSQL's default (which re-plans the cursor page on every read); median of 3
    interleaved rounds. Target: <= 0.9.

    python -m bench.queue_read [--quick]
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from typing import Any

import asyncpg
import psycopg
import uvloop

from approvals.queue import QueueQuery, positional
from bench._common import Result, parser, pg_dsn, pg_schema, pg_url, report
from bench.api import asyncpg_dsn, cpu_seconds
from bench.approvals import seed
from tests.support.runtime import build_runtime


def pages(schema: str, count: int) -> list[tuple[str, list[Any]]]:
    """The statements of the first `count` pages (cursors from the gate itself)."""
    rt = build_runtime(pg_url(schema), woken=[], with_flows=False)
    statements, cursor = [], None
    for _ in range(count):
        statements.append(positional("bench", QueueQuery(cursor=cursor)))
        _, cursor = rt.gate.queue("bench", cursor=cursor, limit=50)
    rt.close()
    return statements


def as_psycopg(sql: str, args: list[Any]) -> tuple[str, list[Any]]:
    """`$n` placeholders as psycopg's `%s`, the values repeated where a `$n` repeats."""
    order = [int(n) - 1 for n in re.findall(r"\$(\d+)", sql)]
    return re.sub(r"\$\d+", "%s", sql), [args[i] for i in order]


async def client_cpu(statements: list[tuple[str, list[Any]]], reads: int, dsn: str) -> float:
    """µs of this process's CPU per page, with asyncpg on one kept connection."""
    conn = await asyncpg.connect(dsn)
    try:
        for sql, args in statements:  # prepared, as on a server that is up
            await conn.fetch(sql, *args)
        start = time.process_time()
        for i in range(reads):
            sql, args = statements[i % len(statements)]
            await conn.fetch(sql, *args)
        return (time.process_time() - start) / reads * 1e6
    finally:
        await conn.close()


async def client_cpu_psycopg(
    statements: list[tuple[str, list[Any]]], reads: int, schema: str
) -> float:
    """The same with psycopg's asyncio connection (prepared statements too)."""
    converted = [as_psycopg(sql, args) for sql, args in statements]
    conn = await psycopg.AsyncConnection.connect(
        pg_dsn(schema),
        options=f"-csearch_path={schema} -cplan_cache_mode=force_generic_plan",  # as asyncpg's
        autocommit=True,
        prepare_threshold=0,
    )
    try:
        for sql, args in converted:
            await (await conn.execute(sql, args)).fetchall()
        start = time.process_time()
        for i in range(reads):
            sql, args = converted[i % len(converted)]
            await (await conn.execute(sql, args)).fetchall()
        return (time.process_time() - start) / reads * 1e6
    finally:
        await conn.close()


def backend_cpu(
    statements: list[tuple[str, list[Any]]], reads: int, schema: str, generic: bool
) -> float:
    """µs of the PostgreSQL backend's CPU per page (psycopg, prepared, one connection)."""
    converted = [as_psycopg(sql, args) for sql, args in statements]
    mode = "force_generic_plan" if generic else "auto"
    with psycopg.connect(
        pg_dsn(schema), options=f"-csearch_path={schema} -cplan_cache_mode={mode}", autocommit=True
    ) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        for sql, args in converted:
            conn.execute(sql, args, prepare=True).fetchall()
        start = cpu_seconds(backend)
        for i in range(reads):
            sql, args = converted[i % len(converted)]
            conn.execute(sql, args, prepare=True).fetchall()
        return (cpu_seconds(backend) - start) / reads * 1e6


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, reads = (20_000, 2_000) if args.quick else (100_000, 6_000)
    with pg_schema() as schema:
        build_runtime(pg_url(schema), woken=[], with_flows=False).close()  # migrated
        seed(schema, n)
        statements = pages(schema, 21)
        dsn = asyncpg_dsn(schema)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:  # as under uvicorn
            ours = loop.run(client_cpu(statements, reads, dsn))
            theirs = loop.run(client_cpu_psycopg(statements, reads, schema))
        rounds: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(3):  # interleaved: the machine's drift hits both; medians compared
            for generic in (True, False):
                rounds[generic].append(backend_cpu(statements, reads, schema, generic))
        planned, replanned = statistics.median(rounds[True]), statistics.median(rounds[False])
    label = f"page of 50 over {n:,} pending"
    report(
        "queue_read",
        [
            Result(f"client CPU per {label}, asyncpg (psycopg async: baseline)", ours, "us",
                   theirs, ours / theirs, "<= 0.75"),
            Result(f"PostgreSQL CPU per {label}, planned once (default: baseline)", planned,
                   "us", replanned, planned / replanned, "<= 0.9"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
