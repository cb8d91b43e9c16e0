"""The Runtime routes approved actions per kind (COPILOT_ACTION_EXECUTORS) and refuses bad routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from copilot.db.engines import upgrade
from copilot.db.tables import outbox, receipts
from copilot.engine.runs import RunState
from copilot.errors import ConfigError
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.support import flows
from tests.support.cli import cli
from tests.support.receiver import SECRET, Receiver

REVIEWERS = frozenset({"reviewer"})
FLOWS = "tests.support.flows"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def runtime(tmp_path: Path, db_url: str | None = None, **settings: str) -> Runtime:
    s = Settings(home=tmp_path, database_url=db_url, workflow_modules=FLOWS, **settings)
    return Runtime(s, enqueue=lambda run_id, countdown: None)


@pytest.mark.parametrize(
    ("routes", "extra", "message"),
    [
        ("email_customer=crm", {}, "route email_customer=crm: no executor 'crm' is registered"),
        (
            "send_mail=outbox",
            {},
            "route send_mail=outbox: no registered workflow's catalog has the action kind",
        ),
        (
            "email_customer=webhook",
            {"webhook_url": "http://127.0.0.1:9/hook"},
            "route email_customer=webhook: COPILOT_WEBHOOK_SECRET is unset",
        ),
        (
            "email_customer=webhook",
            {"webhook_secret": "s"},
            "route email_customer=webhook: COPILOT_WEBHOOK_URL is unset",
        ),
        ("email_customer", {}, "COPILOT_ACTION_EXECUTORS item 'email_customer'"),
    ],
)
def test_start_up_refuses_a_bad_route_naming_it(
    tmp_path: Path, routes: str, extra: dict[str, str], message: str
) -> None:
    rt = runtime(tmp_path, action_executors=routes, **extra)
    with pytest.raises(ConfigError, match=message) as info:
        rt.prepare()  # what servers and workers build before they serve
    assert info.value.code == "config.invalid"


def test_copilot_worker_refuses_a_route_to_an_unknown_executor_before_starting(
    tmp_path: Path,
) -> None:
    env = {"COPILOT_WORKFLOW_MODULES": FLOWS, "COPILOT_ACTION_EXECUTORS": "post_note=crm"}
    done = cli(tmp_path, "worker", "--no-beat", **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "route post_note=crm: no executor 'crm'" in done.stderr


def test_a_routed_kind_goes_to_its_executor_and_the_rest_to_the_outbox(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    rt = runtime(
        tmp_path,
        db_url,
        action_executors="email_customer=webhook",
        webhook_url=receiver.url,
        webhook_secret=SECRET.decode(),
    )
    try:
        check_routing(rt, receiver)
    finally:
        rt.close()


def check_routing(rt: Runtime, receiver: Receiver) -> None:
    upgrade(rt.engine)
    flows.create_tables(rt.engine)
    run, _ = rt.runner.trigger("proposing", "acct-1", tenant="acme", triggered_by="app:crm")
    assert rt.runner.run_inline(run.id).state == RunState.WAITING
    (email,) = rt.gate.queue("acme")[0]
    rt.gate.decide(
        email.id,
        reviewer="maya",
        roles=REVIEWERS,
        decision="approve",
        payload_hash=email.payload_hash,
    )
    done = rt.runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert [(s["key"], s["body"]["kind"]) for s in receiver.seen] == [
        (f"approval:{email.id}", "email_customer")
    ]
    with rt.engine.connect() as conn:
        assert list(conn.execute(select(outbox.c.kind)).scalars()) == ["post_note"]
        by_kind = dict(conn.execute(select(receipts.c.kind, receipts.c.executor)).all())
    assert by_kind == {"post_note": "outbox", "email_customer": "webhook"}
    assert rt.gate.get(email.id).execution_status == "done"  # closed as executed
