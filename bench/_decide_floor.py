"""The raw-driver floor under decide: the same reads and insert, with asyncpg, behind a bare route.

No key, no validation, no rules, no policy, no audit entry: one held asyncpg connection per
in-flight request, and in one transaction the subject's advisory lock, the preferences,
the placement's signals, the last day's counted decisions, the capping events, and the
decision row. What is left is what any logged decide pays on this machine.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import asyncpg
from fastapi import FastAPI, Request, Response

app = FastAPI()
_idle: list[asyncpg.Connection] = []
NAMES = ["onboarding.steps_done", "onboarding.has_data", "onboarding.teammates", "onboarding.plan"]
LOCK = "SELECT pg_advisory_xact_lock(1345540171, hashtext($1))"
PREFS = "SELECT * FROM subject_preferences WHERE tenant = $1 AND subject_id = $2"
SIGNALS = ("SELECT name, value, observed_at, source FROM signals WHERE tenant = $1 AND "
           "subject_id = $2 AND name = ANY($3) ORDER BY name, observed_at")  # fmt: skip
SHOWN = ("SELECT placement, decided_at FROM placement_decisions WHERE tenant = $1 AND "
         "subject_id = $2 AND decided_at > $3 AND counted")  # fmt: skip
EVENTS = ("SELECT placement, candidate, kind, at, until FROM placement_events WHERE tenant = $1 "
          "AND subject_id = $2 AND kind = ANY($3)")  # fmt: skip
INSERT = ("INSERT INTO placement_decisions (id, tenant, subject_id, placement, decided_at, chosen, "
          "candidates, features, propensity, policy, version, holdout, level, reasons, counted, "
          "segment, explanation) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,1.0,'rules','1',false,'full','[]',"
          "true,$9,'')")  # fmt: skip


@app.post("/floor")
async def floor(request: Request) -> Response:
    body = json.loads(await request.body())
    subject, now = body["subject_id"], time.time()
    conn = _idle.pop() if _idle else await asyncpg.connect(os.environ["BENCH_FLOOR_DSN"])
    try:
        async with conn.transaction():
            await conn.execute(LOCK, f"bench\x1f{subject}")
            await conn.fetch(PREFS, "bench", subject)
            values = await conn.fetch(SIGNALS, "bench", subject, NAMES)
            await conn.fetch(SHOWN, "bench", subject, now - 86400)
            await conn.fetch(EVENTS, "bench", subject, ["dismiss", "snooze", "complete"])
            features = {r["name"]: json.loads(r["value"]) for r in values}
            await conn.execute(INSERT, uuid.uuid4().hex, "bench", subject, body["placement"], now,
                               "take_the_tour", '["take_the_tour"]', json.dumps(features), "trial")  # fmt: skip
    finally:
        _idle.append(conn)
    return Response(b'{"item":{"id":"take_the_tour"}}', media_type="application/json")
