"""The raw Celery floor: chains of five trivial tasks, the last one counting in Redis."""

from __future__ import annotations

import os

import redis
from celery import Celery

app = Celery(
    "raw", broker=os.environ.get("RAW_BROKER", "redis://127.0.0.1:6379/8"), set_as_current=False
)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    task_default_queue=os.environ.get("RAW_QUEUE", "raw"),
    worker_hijack_root_logger=False,
)


@app.task(name="raw.step")
def step(n: int) -> int:
    return n + 1


@app.task(name="raw.done")
def done(n: int) -> None:
    redis.Redis.from_url(os.environ.get("RAW_COUNTER", "redis://127.0.0.1:6379/8")).incr(
        os.environ.get("RAW_QUEUE", "raw") + ":done"
    )
