"""The worker's Celery app at module level, for Celery's own tools.

    celery -A copilot.celery_app inspect ping      # every `copilot worker` answers
    celery -A copilot.celery_app inspect active    # what each is running now
    celery -A copilot.celery_app inspect stats
    celery -A copilot.celery_app control enable_events && celery -A copilot.celery_app events
    celery -A copilot.celery_app flower            # with `pip install flower`

It is built from `COPILOT_*` at import, exactly as `copilot worker` builds its own, so
the tools reach the same broker and see the same queue (`COPILOT_QUEUE`, else one per
database). Remote control needs a broker with broadcast (Redis, RabbitMQ): the embedded
SQLite transport has none. This module is an edge like the CLI; nothing imports it.
"""

from __future__ import annotations

from copilot.settings import Settings
from copilot.worker import make_celery

app = make_celery(Settings())

__all__ = ["app"]
