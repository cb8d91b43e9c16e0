"""The floor under any database-backed page: a bare FastAPI route that reads the same page.

No key, no query validation, no pool: one asyncpg connection held per in-flight request
(kept between requests, generic plans as the API's reader), the queue's first-page
statement, the stored documents joined.
What is left is what every listing pays on this machine: uvicorn and FastAPI's route, one
PostgreSQL round trip, and the page's bytes in and out. `GET /v1/approvals` does all that
plus authentication, validation, pooling and cursors; bench/api.py sets it beside this.
"""

from __future__ import annotations

import os

import asyncpg
from fastapi import FastAPI, Response

from approvals.queue import QueueQuery, positional

app = FastAPI()
_idle: list[asyncpg.Connection] = []
SQL, ARGS = positional(os.environ.get("BENCH_FLOOR_TENANT", "bench"), QueueQuery(limit=50))


@app.get("/floor")
async def floor() -> Response:
    conn = _idle.pop() if _idle else await asyncpg.connect(os.environ["BENCH_FLOOR_DSN"])
    try:
        rows = await conn.fetch(SQL, *ARGS)
    finally:
        _idle.append(conn)
    items = ",".join(row[3] for row in rows[:50])
    return Response(
        f'{{"items":[{items}],"next_cursor":null}}'.encode(), media_type="application/json"
    )
