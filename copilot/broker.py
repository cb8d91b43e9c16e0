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

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kombu.transport
from celery import Celery
from kombu.entity import Queue
from kombu.transport.sqlalchemy import Transport

log = logging.getLogger(__name__)
ALIAS = "copilot-sqla"

# Task names: the wire contract between senders and `copilot.worker` (never rename one:
# messages already queued under the old name would be dropped).
ADVANCE = "copilot.advance"
SWEEP = "copilot.sweep"
RETENTION = "copilot.retention"
LEARN = "copilot.learn.train"
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
    elif url.startswith(("amqp", "pyamqp")):
        # RabbitMQ: a quorum queue (replicated by Raft across the cluster's nodes, so a
        # node's loss keeps the messages) and publisher confirms (a send returns once the
        # broker has the message). A killed worker's unacked tasks come back when its
        # connection drops; no visibility timeout is involved.
        app.conf.task_queues = [
            Queue(queue, queue_arguments={"x-queue-type": "quorum"}, durable=True)  # type: ignore[no-untyped-call]
        ]
        app.conf.broker_transport_options = {"confirm_publish": True}
    else:  # Redis: redeliver what a killed worker had taken (acks_late) after this long
        app.conf.broker_transport_options = {"visibility_timeout": visibility_timeout}
    return app


def send(app: Celery, name: str, *args: Any, countdown: float = 0.0) -> None:
    """Send task `name` with `args` on the app's default queue (after `countdown` seconds)."""
    app.send_task(name, args=args, countdown=countdown or None, queue=app.conf.task_default_queue)


class Sender:
    """Sends wake-ups from a background thread, so a broker that is down never blocks a caller.

    A wake-up is only a hint (the sweeper re-enqueues what a lost one stranded), so a
    trigger commits its run and returns at once; this thread sends after, retrying every
    `retry` seconds while the broker is away, so the backlog drains as soon as it returns.
    Wake-ups are kept per run (one pending per run id, the earliest countdown) and at most
    `limit` of them: beyond, they are dropped and left to the sweeper.
    """

    def __init__(
        self, send: Callable[[str, float], None], *, limit: int = 10_000, retry: float = 0.2
    ) -> None:
        self._send = send
        self._limit = limit
        self._retry = retry
        self._pending: dict[str, float] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.dropped = 0

    def submit(self, run_id: str, countdown: float = 0.0) -> None:
        """Queue a wake-up for `run_id` (a no-op when one is already queued); never blocks."""
        with self._cv:
            if run_id in self._pending:
                self._pending[run_id] = min(self._pending[run_id], countdown)
                return
            if len(self._pending) >= self._limit:
                self.dropped += 1
                return
            self._pending[run_id] = countdown
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="copilot-wakeups", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    @property
    def backlog(self) -> int:
        """Wake-ups not sent yet."""
        with self._cv:
            return len(self._pending)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the backlog to drain; whether it did."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending and time.monotonic() < deadline:
                self._cv.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            return not self._pending

    def stop(self) -> None:
        """Stop the thread; what is still queued is left to the sweeper."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopped:
                    self._cv.wait()
                if self._stopped:
                    return
                run_id, countdown = next(iter(self._pending.items()))
            try:
                self._send(run_id, countdown)
            except Exception as exc:  # the broker is away: keep it, try again shortly
                log.debug("wake-up for %s not sent yet: %s", run_id, exc)
                with self._cv:
                    self._cv.wait(self._retry)
                continue
            with self._cv:
                if self._pending.get(run_id) == countdown:
                    del self._pending[run_id]
                self._cv.notify_all()
