"""Routes: the `COPILOT_ROUTES_PATH` file and the short form, and the start-up refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from copilot.engine.executor import ExecutorRegistry, Route
from copilot.engine.executors import CeleryExecutor, WebhookExecutor
from copilot.engine.routes import build_executors, combine, parse_routes_file
from copilot.engine.runs import RunState
from copilot.errors import ConfigError
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.support.gate import REVIEWERS
from tests.support.receiver import SECRET, Receiver
from tests.support.runtime import build_runtime

FLOWS = "tests.support.flows"
SOURCE = "COPILOT_ROUTES_PATH=routes.yaml"


def parse(text: str, **environ: str) -> dict[str, Route]:
    return parse_routes_file(text, source=SOURCE, environ=environ)


def test_a_routes_file_gives_each_kind_its_executor_and_options() -> None:
    routes = parse(
        """
routes:
  email_customer: {executor: webhook, url: "http://app/hook", secret_env: HOOK_SECRET}
  post_note: outbox
  trial_credit: {executor: celery, task: crm.record_action, queue: crm}
""",
        HOOK_SECRET="s3cret",
    )
    email = routes["email_customer"]
    assert (email.executor, email.options, email.get("secret")) == (
        "webhook",
        {"url": "http://app/hook"},
        "s3cret",
    )
    assert "s3cret" not in repr(email)  # secrets stay out of logs
    assert email.key == "webhook:email_customer"  # options: an executor of its own
    assert routes["post_note"].key == "outbox"  # no options: the shared one
    assert routes["trial_credit"].get("queue") == "crm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes: [a, b]", "`routes:` maps each action kind to its route"),
        ("other: {}", "expected one top-level key, `routes:`"),
        ("routes: {email_customer: {url: x}}", "route email_customer: give `executor:`"),
        (
            "routes: {email_customer: {executor: webhook, secret: x}}",
            "route email_customer=webhook: put the secret in the environment",
        ),
        (
            "routes: {email_customer: {executor: webhook, secret_env: NOT_SET}}",
            "route email_customer=webhook: secret_env: the environment variable NOT_SET is unset",
        ),
        ("routes: {a: [", "not valid YAML"),
    ],
)
def test_a_malformed_routes_file_is_refused_naming_the_route(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse(text)
    assert info.value.code == "config.invalid"


def test_the_short_form_and_the_file_combine_but_may_not_disagree() -> None:
    from_file = parse("routes: {post_note: outbox, email_customer: {executor: webhook}}")
    both = combine({"trial_credit": "outbox", "post_note": "outbox"}, from_file)
    assert {k: r.executor for k, r in both.items()} == {
        "trial_credit": "outbox",
        "post_note": "outbox",
        "email_customer": "webhook",
    }
    with pytest.raises(ConfigError, match="routes 'post_note' to outbox; keep one") as info:
        combine({"post_note": "outbox"}, parse("routes: {post_note: webhook}"))
    assert info.value.details == {"route": "post_note=webhook"}


def runtime(tmp_path: Path, routes: str, **settings: str) -> Runtime:
    path = tmp_path / "routes.yaml"
    path.write_text(routes)
    s = Settings(home=tmp_path, workflow_modules=FLOWS, routes_path=path, **settings)
    return Runtime(s, enqueue=lambda run_id, countdown: None)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            "routes: {email_customer: {executor: crm}}",
            "route email_customer=crm: no executor 'crm' is registered",
        ),
        (
            "routes: {send_mail: {executor: outbox}}",
            "route send_mail=outbox: no registered workflow's catalog has the action kind",
        ),
        (
            "routes: {email_customer: {executor: webhook, url: 'http://127.0.0.1:9/h'}}",
            "route email_customer=webhook: COPILOT_WEBHOOK_SECRET is unset",
        ),
        (
            "routes: {email_customer: {executor: webhook, url: 'http://x/h', secret_env: HOME,"
            " retries: 3}}",
            "route email_customer=webhook: unknown webhook option",
        ),
        (
            "routes: {email_customer: {executor: celery, queue: crm}}",
            "route email_customer=celery: the celery executor needs the app's task name",
        ),
        (
            "routes: {email_customer: {executor: outbox, table: mine}}",
            "route email_customer=outbox: executor 'outbox' .* takes no per-route options",
        ),
    ],
)
def test_start_up_refuses_a_bad_route_from_the_file_naming_it(
    tmp_path: Path, routes: str, message: str
) -> None:
    rt = runtime(tmp_path, routes)
    with pytest.raises(ConfigError, match=message) as info:
        rt.prepare()  # what servers and workers build before they serve
    assert info.value.code == "config.invalid"
    assert info.value.details["route"] == message.split()[1].rstrip(":")


def test_a_missing_routes_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, workflow_modules=FLOWS, routes_path=tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"COPILOT_ROUTES_PATH=.*nope\.yaml"):
        Runtime(s, enqueue=lambda run_id, countdown: None).prepare()


def test_routes_with_options_get_executors_of_their_own(engine: Engine, tmp_path: Path) -> None:
    routes = parse(
        """
routes:
  post_note: {executor: webhook, url: "http://a/hook", secret_env: A}
  email_customer: {executor: webhook, url: "http://b/hook", secret_env: B}
  trial_credit: {executor: celery, task: crm.record_action, queue: crm,
                 broker: "redis://127.0.0.1:6379/0"}
""",
        A="a-secret",
        B="b-secret",
    )
    built = build_executors(routes, ExecutorRegistry.discover(), engine, Settings(home=tmp_path))
    a, b = built["webhook:post_note"], built["webhook:email_customer"]
    assert isinstance(a, WebhookExecutor) and isinstance(b, WebhookExecutor)
    assert (a.url, a.secret, b.url, b.secret) == (
        "http://a/hook",
        b"a-secret",
        "http://b/hook",
        b"b-secret",
    )
    crm = built["celery:trial_credit"]
    assert isinstance(crm, CeleryExecutor) and (crm.task, crm.queue) == ("crm.record_action", "crm")
    assert set(built) == {"outbox", "webhook:post_note", "webhook:email_customer",
                          "celery:trial_credit"}  # fmt: skip


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    pair = Receiver(), Receiver()
    yield pair
    for r in pair:
        r.server.shutdown()
        r.server.server_close()


def test_each_kind_reaches_its_own_webhook_url(
    tmp_path: Path,
    db_url: str,
    receivers: tuple[Receiver, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given post_note and email_customer routed to two receivers, each with its own URL
    notes, emails = receivers
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"""routes:
  post_note: {{executor: webhook, url: "{notes.url}", secret_env: HOOK_SECRET}}
  email_customer: {{executor: webhook, url: "{emails.url}", secret_env: HOOK_SECRET}}
"""
    )
    rt = build_runtime(db_url, tmp_path, woken=[], routes_path=str(path))
    try:
        # When a run proposes both and a reviewer approves the email
        run, _ = rt.runner.trigger("proposing", "acct-1", tenant="acme", triggered_by="app:crm")
        assert rt.runner.run_inline(run.id).state == RunState.WAITING
        (email,) = rt.gate.queue("acme")[0]
        rt.gate.decide(email.id, reviewer="maya", roles=REVIEWERS, decision="approve",
                       payload_hash=email.payload_hash)  # fmt: skip
        assert rt.runner.run_inline(run.id).state == RunState.COMPLETED
    finally:
        rt.close()
    # Then each receiver saw its own kind once, signed
    assert [(s["body"]["kind"], s["valid"]) for s in notes.seen] == [("post_note", True)]
    assert [(s["key"], s["valid"]) for s in emails.seen] == [(f"approval:{email.id}", True)]
