"""The embedded broker: Celery's SQLAlchemy transport on a SQLite file, polling briskly.

kombu's SQLAlchemy transport sleeps a second whenever a poll finds nothing it may take,
and with `acks_late` and a prefetch of one a worker polls between every two tasks: a
laptop would top out near one run per second. This subclass polls every 50 ms. It is
registered as the `copilot-sqla` transport (kombu's own alias table is the extension
point; registering is idempotent), and `sqla+...` broker URLs are routed to it.
"""

from __future__ import annotations

import kombu.transport
from kombu.transport.sqlalchemy import Transport

ALIAS = "copilot-sqla"


class BriskSqlTransport(Transport):
    """kombu's SQLAlchemy transport with a 50 ms polling interval."""

    polling_interval = 0.05


def broker_url(url: str) -> str:
    """The URL Celery should use: `sqla+...` goes to the brisk transport."""
    if url.startswith("sqla+"):
        kombu.transport.TRANSPORT_ALIASES[ALIAS] = f"{__name__}:BriskSqlTransport"
        return f"{ALIAS}+{url.removeprefix('sqla+')}"
    return url
