"""Celery: the app factory, the task that advances runs, and sweep, retention and schedules on beat."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from sqlalchemy.exc import OperationalError

from copilot.broker import broker_url
from copilot.errors import TransientError
from copilot.governance.retention import purge
from copilot.settings import Settings

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0


def make_celery(settings: Settings) -> Celery:
    """A Celery app on the configured broker (Redis, the embedded SQLite transport, any URL)."""
    app = Celery("copilot", broker=broker_url(settings.broker_url_resolved), set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a message is acknowledged only after its task finished...
        task_reject_on_worker_lost=True,  # ...and redelivered if the worker process died
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "copilot-sweep": {"task": "copilot.sweep", "schedule": settings.sweep_interval},
            "copilot-retention": {
                "task": "copilot.retention",
                "schedule": settings.retention_interval,
            },
            # Proactive schedules: each tick dispatches the subjects due so far this period.
            "copilot-schedules": {"task": "copilot.schedules", "schedule": settings.schedule_tick},
        },
    )
    if settings.broker_url_resolved.startswith("sqla+"):
        settings.home.mkdir(parents=True, exist_ok=True)
        # kombu hands these to SQLAlchemy's create_engine: wait for SQLite's lock, don't fail
        app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
    else:  # Redis: redeliver what a killed worker had taken (acks_late) after this long
        app.conf.broker_transport_options = {
            "visibility_timeout": settings.broker_visibility_timeout
        }
    state: dict[int, Any] = {}

    def runtime() -> Any:
        # One Runtime per process: prefork children must not share the parent's engine.
        pid = os.getpid()
        if pid not in state:
            from copilot.runtime import Runtime

            state.clear()
            state[pid] = Runtime(
                settings, enqueue=lambda run_id, countdown: _send(app, run_id, countdown)
            )
        return state[pid]

    @app.task(name="copilot.advance", bind=True, acks_late=True, reject_on_worker_lost=True)
    def advance(self: Any, run_id: str) -> None:
        rt = runtime()
        try:
            rt.runner.advance(run_id)
        except TransientError as exc:
            try:
                rt.runner.requeue(run_id, "transient")
            except Exception:
                log.warning("could not requeue %s after a transient error", run_id)
            countdown = min(MAX_BACKOFF, 0.5 * 2**self.request.retries)
            raise self.retry(exc=exc, countdown=countdown, max_retries=12) from exc

    @app.task(name="copilot.sweep")
    def sweep() -> dict[str, int]:
        report: dict[str, int] = runtime().sweeper.sweep().model_dump()
        return report

    @app.task(name="copilot.retention")
    def retention() -> dict[str, dict[str, int]]:
        rt = runtime()
        return purge(rt.engine, rt.audit, rt.registry.signals, now=rt.runs.clock())

    def dispatch(name: str, tenant: str, period_start: float, subject_ids: list[str]) -> None:
        app.send_task(
            "copilot.schedule_batch",
            args=(name, tenant, period_start, subject_ids),
            queue=app.conf.task_default_queue,
        )

    @app.task(name="copilot.schedules")
    def schedules() -> dict[str, Any]:
        report: dict[str, Any] = runtime().proactive(dispatch).tick().model_dump()
        return report

    @app.task(name="copilot.schedule_batch", bind=True, acks_late=True, reject_on_worker_lost=True)
    def schedule_batch(
        self: Any, name: str, tenant: str, period_start: float, subject_ids: list[str]
    ) -> int:
        try:
            fired = runtime().proactive().run_batch(name, tenant, period_start, subject_ids)
        except OperationalError as exc:  # the database is away: the keys make a retry safe
            countdown = min(MAX_BACKOFF, 0.5 * 2**self.request.retries)
            raise self.retry(exc=exc, countdown=countdown, max_retries=12) from exc
        return sum(f.created for f in fired)

    return app


def _send(app: Celery, run_id: str, countdown: float) -> None:
    app.send_task(
        "copilot.advance",
        args=(run_id,),
        countdown=countdown or None,
        queue=app.conf.task_default_queue,
    )
