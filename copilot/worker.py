"""Celery: the app factory, the task that advances runs, and sweep, retention and schedules on beat."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer

from audit.dberrors import transient
from copilot import broker
from copilot.errors import TransientError
from copilot.governance.retention import purge
from copilot.runtime import Runtime
from copilot.settings import Settings

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0
# How soon a worker tries its broker again after losing it (Celery's: 2 s, then 4, 6, ... 30).
RECONNECT = {"interval_start": 0.2, "interval_step": 0.2, "interval_max": 1.0}


class BriskConsumer(Consumer):  # type: ignore[misc]  # Celery ships no types
    """Celery's consumer, reconnecting to a broker that went away every second at most.

    With Celery's own intervals a worker can come back half a minute after its broker;
    the backlog the senders drain at once would wait for it.
    """

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT)
        return super().ensure_connected(conn)


def make_celery(settings: Settings) -> Celery:
    """The worker's Celery app: the sending app plus the tasks and the beat schedule."""
    app = broker.celery_app(
        settings.broker_url_resolved,
        queue=settings.queue_resolved,
        home=settings.home,
        visibility_timeout=settings.broker_visibility_timeout,
    )
    app.conf.update(
        task_acks_late=True,  # a message is acknowledged only after its task finished...
        task_reject_on_worker_lost=True,  # ...and redelivered if the worker process died
        worker_prefetch_multiplier=1,
        worker_consumer=f"{__name__}:BriskConsumer",
        worker_hijack_root_logger=False,
        beat_schedule={
            "copilot-sweep": {"task": broker.SWEEP, "schedule": settings.sweep_interval},
            "copilot-retention": {
                "task": broker.RETENTION,
                "schedule": settings.retention_interval,
            },
            "copilot-learn": {"task": broker.LEARN, "schedule": settings.learn_interval},
            # Proactive schedules: each tick dispatches the subjects due so far this period.
            "copilot-schedules": {"task": broker.SCHEDULES, "schedule": settings.schedule_tick},
            # Guarded rollouts: the stop rules' sequential test, one review cycle a day.
            "copilot-guard": {"task": broker.GUARD, "schedule": settings.guard_interval},
            # The weekly review, built and stored per tenant, with its notifier message.
            "copilot-review": {"task": broker.REVIEW, "schedule": settings.review_interval},
        },
    )
    state: dict[int, Runtime] = {}

    def runtime() -> Runtime:
        # One Runtime per process: prefork children must not share the parent's engine.
        pid = os.getpid()
        if pid not in state:
            state.clear()
            # Wake-ups leave from a background thread: a broker that is away must not
            # hold the worker's only process (a sweep would block on every due run).
            sender = broker.Sender(
                lambda run_id, countdown: broker.send(
                    app, broker.ADVANCE, run_id, countdown=countdown
                )
            )
            state[pid] = Runtime(settings, enqueue=sender.submit)
        return state[pid]

    @app.task(name=broker.ADVANCE, shared=False, bind=True, acks_late=True, reject_on_worker_lost=True)
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

    @app.task(name=broker.SWEEP, shared=False)
    def sweep() -> dict[str, int] | None:
        try:
            report: dict[str, int] = runtime().sweeper.sweep().model_dump()
        except Exception as exc:  # a transient fault: the next beat tick tries again
            if not (isinstance(exc, TransientError) or transient(exc)):
                raise
            log.warning("sweep skipped: the database is not reachable (%s)", _first_line(exc))
            return None
        return report

    @app.task(name=broker.RETENTION, shared=False)
    def retention() -> dict[str, dict[str, int]]:
        rt = runtime()
        return purge(rt.engine, rt.audit, rt.registry.signals, now=rt.runs.clock())

    @app.task(name=broker.LEARN, shared=False)
    def learn() -> dict[str, Any]:
        # Every declared surface on the lookback window; each version lands whole or not at
        # all (a killed worker leaves no half-written version), and training the same
        # window again is a no-op, so a redelivered message is harmless.
        return runtime().train_surfaces()

    @app.task(name=broker.GUARD, shared=False)
    def guard() -> list[dict[str, Any]]:
        return runtime().check_stop_rules()

    @app.task(name=broker.REVIEW, shared=False)
    def review() -> list[str]:
        rt = runtime()
        return [rt.build_review(tenant).headline for tenant in rt.tenants()]

    def dispatch(name: str, tenant: str, period_start: float, subject_ids: list[str]) -> None:
        broker.send(app, broker.SCHEDULE_BATCH, name, tenant, period_start, subject_ids)

    @app.task(name=broker.SCHEDULES, shared=False)
    def schedules() -> dict[str, Any]:
        report: dict[str, Any] = runtime().proactive(dispatch).tick().model_dump()
        return report

    @app.task(name=broker.SCHEDULE_BATCH, shared=False, bind=True, acks_late=True, reject_on_worker_lost=True)
    def schedule_batch(
        self: Any, name: str, tenant: str, period_start: float, subject_ids: list[str]
    ) -> int:
        try:
            fired = runtime().proactive().run_batch(name, tenant, period_start, subject_ids)
        except Exception as exc:
            if not transient(exc):
                raise
            # The database is away (audit.dberrors decides): the keys make a retry safe.
            countdown = min(MAX_BACKOFF, 0.5 * 2**self.request.retries)
            raise self.retry(exc=exc, countdown=countdown, max_retries=12) from exc
        return sum(f.created for f in fired)

    return app


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
