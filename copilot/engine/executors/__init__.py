"""The built-in executors: `outbox`, `webhook` and `celery`. The Protocol is in `copilot.engine.executor`.

`OutboxExecutor` writes a row in the `outbox` table, for the app to pick up;
`WebhookExecutor` sends an HMAC-signed POST with an `Idempotency-Key` header, retried;
`CeleryExecutor` sends a named task carrying the action to the app's own Celery queue.
All three are registered as `copilot.executors` entry points like any third-party executor.
"""

from __future__ import annotations

from copilot.engine.executors.celery import CeleryExecutor
from copilot.engine.executors.outbox import OutboxExecutor
from copilot.engine.executors.webhook import WebhookExecutor

__all__ = [
    "CeleryExecutor",
    "OutboxExecutor",
    "WebhookExecutor",
]
