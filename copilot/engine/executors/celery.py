"""The `celery` executor: a named Celery task carrying the action, on the app's own queue.

For an app that already runs Celery, the hand-off is a task of its own::

    routes:
      crm_note: {executor: celery, task: crm.record_action, queue: crm,
                 broker_env: CRM_BROKER_URL}

Each approved action is sent once as `task(action={...})` with `kind`, `payload`,
`subject_id`, `idempotency_key`, `approval_id`, `tenant` and `run_id`. The receipt is
written once the broker accepted the message (Redis answered the LPUSH; RabbitMQ's
publisher confirm, which this executor turns on; the SQL transport's commit).

The guarantee: the Celery task id is derived from the idempotency key (a UUID5), so every
message for one action carries the same task id and the same `idempotency_key`. A retried
execution that finds the receipt sends nothing. Only a process that dies between the
broker's acceptance and the receipt's commit sends the message a second time, with the
same task id: the app's task makes its effect once per `idempotency_key` (a unique key
in its own database, as the README's example does).
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from audit.db import readonly
from copilot import broker
from copilot.engine.executor import (
    Action,
    ExecutionError,
    Receipt,
    Route,
    stored_receipt,
    write_receipt,
)
from copilot.errors import ConfigError
from copilot.settings import Settings

# Task ids are uuid5(KEYS, idempotency_key): stable across processes and retries.
KEYS = uuid.UUID("5b0d6a56-2f49-4d0e-9a53-1a4c7c3f0e21")
OPTIONS = {"task", "queue", "broker", "timeout"}


def task_id(idempotency_key: str) -> str:
    """The Celery task id every message for this action carries."""
    return str(uuid.uuid5(KEYS, idempotency_key))


def message(action: Action) -> dict[str, Any]:
    """What the app's task receives as its `action` keyword argument."""
    return {
        "kind": action.kind,
        "payload": action.payload,
        "subject_id": action.subject_id,
        "idempotency_key": action.idempotency_key,
        "approval_id": action.approval_id,
        "tenant": action.tenant,
        "run_id": action.run_id,
    }


class CeleryExecutor:
    """Sends `task` to `queue` on the app's broker, once per idempotency key."""

    name = "celery"

    def __init__(
        self, engine: Engine, app: Celery, task: str, queue: str, *, timeout: float = 5.0
    ) -> None:
        self.engine = engine
        self.app = app
        self.task = task
        self.queue = queue
        self.timeout = timeout

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, *, route: Route | None = None
    ) -> CeleryExecutor:
        """The `copilot.executors` factory: a route's `task`, `queue` (default `celery`) and
        `broker` or `broker_env` (default: `COPILOT_BROKER_URL`)."""
        if route is None or not route.get("task"):
            raise ConfigError(
                "the celery executor needs the app's task name: route the kind in "
                "COPILOT_ROUTES_PATH with {executor: celery, task: app.task_name, queue: ...}"
            )
        unknown = sorted(set(route.options) - OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown celery option(s) {', '.join(unknown)}; use task, queue, "
                "broker (or broker_env), timeout"
            )
        url = str(route.get("broker") or settings.broker_url_resolved)
        timeout = float(route.get("timeout", 5.0))
        return cls(engine, sending_app(url, route.kind, timeout), str(route.get("task")),
                   str(route.get("queue", "celery")), timeout=timeout)  # fmt: skip

    def execute(self, action: Action) -> Receipt:
        """Send once, or replay the stored receipt."""
        with readonly(self.engine.connect()) as conn:
            found = stored_receipt(conn, action.idempotency_key)
        if found is not None:
            return found
        tid = task_id(action.idempotency_key)
        try:
            self.app.send_task(
                self.task,
                kwargs={"action": message(action)},
                task_id=tid,
                queue=self.queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3},
            )
        except (KombuError, KombuOperationalError, OSError) as exc:
            raise ExecutionError(
                f"celery broker for task {self.task!r} did not accept the action "
                f"({type(exc).__name__}: {exc}); it will be sent again with task id {tid}",
                idempotency_key=action.idempotency_key,
            ) from exc
        detail = {"task": self.task, "queue": self.queue, "task_id": tid}
        try:
            with self.engine.begin() as conn:
                return write_receipt(conn, action, self.name, "done", detail)
        except IntegrityError:  # a concurrent execution stored it first (same task id sent)
            with readonly(self.engine.connect()) as conn:
                done = stored_receipt(conn, action.idempotency_key)
            if done is None:
                raise
            return done


def sending_app(url: str, kind: str, timeout: float) -> Celery:
    """A task-less Celery app on the app's broker, that waits for the broker to accept."""
    app = Celery(f"copilot-route-{kind}", broker=broker.broker_url(url), set_as_current=False)
    app.conf.update(
        task_ignore_result=True,
        task_serializer="json",
        broker_connection_timeout=timeout,
        broker_connection_retry=False,
    )
    if url.startswith(("amqp", "pyamqp")):
        # RabbitMQ's publisher confirms: publish returns once the broker has the message.
        app.conf.broker_transport_options = {"confirm_publish": True, "confirm_timeout": timeout}
    elif url.startswith("redis"):
        app.conf.broker_transport_options = {"socket_timeout": timeout,
                                             "socket_connect_timeout": timeout}  # fmt: skip
    return app
