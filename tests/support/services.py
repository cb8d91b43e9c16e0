"""Where the test services are (PostgreSQL, Redis), and the rule for when one is away.

Locally a missing service skips its tests; under CI=true it fails them (dramatiq's rule).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_DSN = os.environ.get("COPILOT_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
# A database of its own: the flush test empties it. COPILOT_TEST_REDIS_DB picks another
# (say, for two checkouts testing at once on one Redis).
REDIS_DB = int(os.environ.get("COPILOT_TEST_REDIS_DB", "7"))
# A second app's broker (the `celery` route's tests): COPILOT_TEST_REDIS_APP_DB, else the next.
APP_REDIS_DB = int(os.environ.get("COPILOT_TEST_REDIS_APP_DB", str((REDIS_DB + 1) % 16)))


def unavailable(service: str, exc: BaseException) -> None:
    """Fail under CI, skip locally (dramatiq's rule)."""
    message = f"{service} is not reachable: {exc}"
    if CI:
        pytest.fail(f"{message} (CI=true requires every service)", pytrace=False)
    pytest.skip(message)


def pg_sqlalchemy_url(schema: str) -> str:
    """A SQLAlchemy URL for the test database with `schema` first on the search path."""
    parts = dict(kv.split("=", 1) for kv in PG_DSN.split())
    return (
        f"postgresql+psycopg://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
        f"{parts.get('port', '5432')}/{parts.get('dbname', 'test')}"
        f"?options=-csearch_path%3D{schema}"
    )


def redis_url(db: int = REDIS_DB) -> str:
    """The test Redis database's URL, once Redis answers (else skip, or fail under CI)."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable("Redis at 127.0.0.1:6379", exc)
    return f"redis://127.0.0.1:6379/{db}"


# The RabbitMQ copy of a Celery test: in `make test-hosts` (the `hosts` marker), since
# running every Celery test twice does not fit `make test`'s time.
RABBITMQ = pytest.param(("pg_url", "rabbitmq"), marks=pytest.mark.hosts, id="pg-rabbitmq")


@contextmanager
def rabbitmq_url() -> Iterator[str]:
    """A vhost of its own on the RabbitMQ at 127.0.0.1:5672 (guest), deleted afterwards."""
    import kombu

    vhost = f"copilot-test-{uuid.uuid4().hex[:10]}"
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    try:
        subprocess.run([ctl, "-q", "add_vhost", vhost], check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        subprocess.run([ctl, "-q", "set_permissions", "-p", vhost, "guest",
                        ".*", ".*", ".*"], check=True, capture_output=True, timeout=60)  # fmt: skip
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        with kombu.Connection(url, connect_timeout=5) as conn:
            conn.connect()
    except (OSError, subprocess.SubprocessError) as exc:
        unavailable("RabbitMQ at 127.0.0.1:5672 (and rabbitmqctl)", exc)
    try:
        yield url
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True,
                       timeout=60)  # fmt: skip
