"""The broker seam: task names, the Celery app that sends them, and the embedded transport.

The Runtime sends tasks by name through `send`; only `copilot.worker` defines the tasks
and the beat, so the runtime never imports the worker (the worker imports the runtime).

kombu's SQLAlchemy transport sleeps a second whenever a poll finds nothing it may take,
and with `acks_late` and a prefetch of one a worker polls between every two tasks: a
laptop would top out near one run per second. `BriskSqlTransport` polls every 50 ms. It
is registered as the `copilot-sqla` transport (kombu's own alias table is the extension
point; registering is idempotent), and `sqla+...` broker URLs are routed to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kombu.transport
from celery import Celery
from kombu.transport.sqlalchemy import Transport

ALIAS = "copilot-sqla"

# Task names: the wire contract between senders and `copilot.worker` (never rename one:
# messages already queued under the old name would be dropped).
ADVANCE = "copilot.advance"
SWEEP = "copilot.sweep"
RETENTION = "copilot.retention"
SCHEDULES = "copilot.schedules"
SCHEDULE_BATCH = "copilot.schedule_batch"
GUARD = "copilot.guard"
REVIEW = "copilot.review"


class BriskSqlTransport(Transport):
    """kombu's SQLAlchemy transport with a 50 ms polling interval."""

    polling_interval = 0.05


def broker_url(url: str) -> str:
    """The URL Celery should use: `sqla+...` goes to the brisk transport."""
    if url.startswith("sqla+"):
        kombu.transport.TRANSPORT_ALIASES[ALIAS] = f"{__name__}:BriskSqlTransport"
        return f"{ALIAS}+{url.removeprefix('sqla+')}"
    return url


def celery_app(url: str, *, queue: str, home: Path, visibility_timeout: float) -> Celery:
    """A Celery app on `url` with no tasks: enough to send them (the worker adds its own)."""
    app = Celery("copilot", broker=broker_url(url), set_as_current=False)
    app.conf.update(
        task_ignore_result=True,
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
    )
    if url.startswith("sqla+"):
        home.mkdir(parents=True, exist_ok=True)
        # kombu hands these to SQLAlchemy's create_engine: wait for SQLite's lock, don't fail
        app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
    else:  # Redis: redeliver what a killed worker had taken (acks_late) after this long
        app.conf.broker_transport_options = {"visibility_timeout": visibility_timeout}
    return app


def send(app: Celery, name: str, *args: Any, countdown: float = 0.0) -> None:
    """Send task `name` with `args` on the app's default queue (after `countdown` seconds)."""
    app.send_task(name, args=args, countdown=countdown or None, queue=app.conf.task_default_queue)
