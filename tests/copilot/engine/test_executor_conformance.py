"""Every built-in executor keeps the `Executor` contract, on SQLite and PostgreSQL.

The contract: an action is carried out and a receipt returned; the same idempotency key
never acts twice (in this process or another); a target that is away raises an error the
runner retries (`ExecutionError`, or a database `OperationalError`) and stores no receipt,
so the retry acts once with the same key. Each executor is built through the registry
from settings, the way a worker builds it.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from audit.db import create_engine
from copilot.db.tables import outbox, receipts
from copilot.engine.executor import (
    BUILT_IN,
    Action,
    ExecutionError,
    Executor,
    ExecutorRegistry,
    Route,
)
from copilot.settings import Settings
from tests.support.receiver import SECRET, Receiver
from tests.support.services import redis_url

# What the runner treats as "try again later with the same key" (Runner.advance).
RETRYABLE = (ExecutionError, OperationalError)


@dataclass
class Harness:
    """One executor under test: how to build it, count its effects, and build it broken."""

    name: str
    build: Callable[[], Executor]
    effects: Callable[[str], int]  # how often the world saw the action with this key
    broken: Callable[[], Executor]  # the same executor with its target away
    fails_with: type[Exception]  # what it raises then: one of RETRYABLE


def closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_engine(engine: Engine, tmp_path: Path) -> Engine:
    """An engine of the same dialect whose database cannot be reached."""
    if engine.dialect.name == "sqlite":
        return create_engine(f"sqlite:///{tmp_path}/no-such-dir/copilot.db")
    return create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test")


def queued_keys(client: redis.Redis, queue: str) -> list[str]:
    """The idempotency keys of the task messages waiting in a Redis queue (kombu's format)."""
    keys = []
    for raw in client.lrange(queue, 0, -1):
        _, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        keys.append(kwargs["action"]["idempotency_key"])
    return keys


def celery_harness(engine: Engine, tmp_path: Path, registry: ExecutorRegistry) -> Iterator[Harness]:
    url = redis_url()
    client = redis.Redis.from_url(url)
    queue = f"app-{uuid.uuid4().hex[:8]}"
    settings = Settings(home=tmp_path)

    def route(broker: str) -> Route:
        options = {"task": "crm.record_action", "queue": queue, "broker": broker, "timeout": 1}
        return Route(kind="email_customer", executor="celery", options=options)

    away = f"redis://127.0.0.1:{closed_port()}/0"
    yield Harness(
        "celery",
        build=lambda: registry.build("celery", engine, settings, route=route(url)),
        effects=lambda key: queued_keys(client, queue).count(key),
        broken=lambda: registry.build("celery", engine, settings, route=route(away)),
        fails_with=ExecutionError,
    )
    client.delete(queue)
    client.close()


def outbox_harness(engine: Engine, tmp_path: Path, registry: ExecutorRegistry) -> Harness:
    settings = Settings(home=tmp_path)

    def effects(key: str) -> int:
        with engine.connect() as conn:
            query = select(func.count()).select_from(outbox)
            return int(conn.execute(query.where(outbox.c.idempotency_key == key)).scalar_one())

    return Harness(
        "outbox",
        build=lambda: registry.build("outbox", engine, settings),
        effects=effects,
        broken=lambda: registry.build("outbox", unreachable_engine(engine, tmp_path), settings),
        fails_with=OperationalError,
    )


def webhook_harness(
    engine: Engine, tmp_path: Path, registry: ExecutorRegistry, receiver: Receiver
) -> Harness:
    settings = Settings(home=tmp_path, webhook_url=receiver.url, webhook_secret=SECRET.decode())
    away = settings.model_copy(update={"webhook_url": f"http://127.0.0.1:{closed_port()}/hook"})
    return Harness(
        "webhook",
        build=lambda: registry.build("webhook", engine, settings),
        effects=lambda key: sum(1 for s in receiver.seen if s["key"] == key and s["valid"]),
        broken=lambda: registry.build("webhook", engine, away),
        fails_with=ExecutionError,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(params=sorted(BUILT_IN))
def harness(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path, receiver: Receiver
) -> Iterator[Harness]:
    registry = ExecutorRegistry.discover()
    if request.param == "outbox":
        yield outbox_harness(engine, tmp_path, registry)
        return
    if request.param == "webhook":
        yield webhook_harness(engine, tmp_path, registry, receiver)
        return
    if request.param == "celery":
        yield from celery_harness(engine, tmp_path, registry)
        return
    raise AssertionError(f"built-in executor {request.param!r} has no conformance harness")


def approved(key: str = "approval:apr-1") -> Action:
    """An approved action as the gate hands it over (the key is the approval id)."""
    return Action(
        tenant="acme",
        run_id="run-1",
        kind="email_customer",
        payload={"to": "acct-1", "subject": "Check-in", "body": "Hi"},
        idempotency_key=key,
    )


def stored_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(receipts.c.idempotency_key)).scalars())


def test_it_executes_an_approved_action_and_returns_its_receipt(
    harness: Harness, engine: Engine
) -> None:
    executor = harness.build()
    receipt = executor.execute(approved())
    assert executor.name == harness.name
    assert receipt.status == "done" and receipt.executor == harness.name
    assert receipt.idempotency_key == "approval:apr-1" and not receipt.replayed
    assert harness.effects("approval:apr-1") == 1
    assert stored_keys(engine) == {"approval:apr-1"}


def test_the_same_key_never_acts_twice_even_from_another_process(harness: Harness) -> None:
    first = harness.build().execute(approved())
    again = harness.build().execute(approved())  # a second worker, after a redelivery
    assert again.replayed and again.detail == first.detail and again.status == first.status
    assert harness.effects("approval:apr-1") == 1


def test_distinct_keys_act_separately(harness: Harness) -> None:
    executor = harness.build()
    executor.execute(approved("approval:a"))
    executor.execute(approved("approval:b"))
    assert harness.effects("approval:a") == harness.effects("approval:b") == 1


def test_a_target_that_is_away_raises_a_retryable_error_and_the_retry_acts_once(
    harness: Harness, engine: Engine
) -> None:
    assert issubclass(harness.fails_with, RETRYABLE)
    with pytest.raises(harness.fails_with):
        harness.broken().execute(approved())
    assert stored_keys(engine) == set(), "a failed execution must leave no receipt"
    assert harness.effects("approval:apr-1") == 0
    receipt = harness.build().execute(approved())  # the runner's retry, same key
    assert receipt.status == "done" and not receipt.replayed
    assert harness.effects("approval:apr-1") == 1


def test_every_built_in_is_registered_under_its_own_name() -> None:
    registry = ExecutorRegistry.discover()
    assert set(BUILT_IN) <= set(registry.names())
