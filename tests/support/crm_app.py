"""An app's own Celery app and the task copilot's `celery` route sends it.

    CRM_BROKER_URL=redis://... CRM_DATABASE="host=... dbname=crm" \
        celery -A tests.support.crm_app worker -Q crm

Every message for one action carries the same task id and `idempotency_key`, so the task
acts once per key: the key is unique in the app's own table.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg
from celery import Celery

app = Celery("crm", broker=os.environ.get("CRM_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,  # acknowledged once recorded; redelivered if this worker dies
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
)

TABLES = """
CREATE TABLE IF NOT EXISTS crm_actions (
    idempotency_key text PRIMARY KEY, kind text, subject_id text, payload jsonb
);
CREATE TABLE IF NOT EXISTS crm_received (idempotency_key text, task_id text);
"""


@app.task(name="crm.record_action", bind=True)
def record_action(self: Any, action: dict[str, Any]) -> bool:
    """Record an approved action once; True when this message made the effect."""
    with psycopg.connect(os.environ["CRM_DATABASE"]) as conn:
        conn.execute(  # every message, so redeliveries can be seen
            "INSERT INTO crm_received VALUES (%s, %s)",
            (action["idempotency_key"], self.request.id),
        )
        made = conn.execute(
            "INSERT INTO crm_actions VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (
                action["idempotency_key"],
                action["kind"],
                action["subject_id"],
                json.dumps(action["payload"]),
            ),
        ).rowcount
    return made == 1
