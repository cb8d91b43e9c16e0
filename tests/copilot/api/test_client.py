"""`copilot.client.Client` against a real `copilot api` process over HTTP, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import Actor, verify_bundle
from copilot.client import ApiError, Client
from copilot.engine.runs import RunState
from copilot.runtime import Runtime
from tests.support.live import LiveServer
from tests.support.runtime import build_runtime


@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Runtime]]:
    """A server on a fresh schema, and a runtime in the test process that plays the worker."""
    rt = build_runtime(pg_url, tmp_path, woken=[])
    env = {
        "COPILOT_DATABASE_URL": pg_url,
        "COPILOT_HOME": str(tmp_path),
        "COPILOT_WORKFLOW_MODULES": "tests.support.flows",
    }
    server = LiveServer(env, tmp_path / "api.log").start()
    try:
        yield server, rt
    finally:
        server.stop()
        rt.close()


def key(rt: Runtime, role: str, name: str) -> str:
    return rt.keys.create(tenant="acme", roles=[role], name=name, actor=Actor.system("t"))[1]


def test_trigger_wait_decide_and_verify_through_the_client(
    served: tuple[LiveServer, Runtime], tmp_path: Path
) -> None:
    server, rt = served
    with (
        Client(server.url, key(rt, "app", "crm")) as app,
        Client(server.url, key(rt, "reviewer", "maya")) as reviewer,
        Client(server.url, key(rt, "auditor", "audra")) as auditor,
    ):
        run = app.trigger("proposing", "acct-1", idempotency_key="crm-1")
        assert run.created and run.state == RunState.QUEUED
        assert app.trigger("proposing", "acct-1", idempotency_key="crm-1").id == run.id
        rt.runner.run_inline(run.id)  # what a worker does (the end-to-end test uses real ones)
        assert app.wait(run.id, timeout=10).state == RunState.WAITING
        why = app.explanation(run.id)
        assert {a.kind for a in why.actions} == {"post_note", "email_customer"}

        pending = list(reviewer.iter_approvals())
        assert [(p.run_id, p.kind) for p in pending] == [(run.id, "email_customer")]
        (email,) = pending  # the post_note was low risk and internal: the policy approved it
        edited = reviewer.approve(email.id, email.payload_hash, edits={"subject": "Quick call?"})
        assert edited.version == 2 and edited.status == "approved"
        with pytest.raises(ApiError) as conflict:  # the version this reviewer saw is gone
            reviewer.approve(email.id, email.payload_hash)
        assert (conflict.value.status, conflict.value.code) == (409, "approval.conflict")

        rt.runner.run_inline(run.id)
        done = app.wait(run.id, timeout=10)
        assert done.state == RunState.COMPLETED
        assert {o["kind"]: o["executed"] for o in (done.result or {})["outcomes"]} == {
            "post_note": True,
            "email_customer": True,
        }

        entries = list(auditor.iter_events(run_id=run.id))
        assert "approval.executed" in {e.event_type for e in entries}
        assert [e.actor.id for e in entries if e.event_type == "approval.vote"] == ["maya"]
        # The signing key exists before the server first reads the trail (it reads the key
        # files once), as on a deployed host that holds the key or its public half.
        rt.signing_trail.checkpoint("acme")
        assert auditor.verify().ok
        bundle = auditor.export(tmp_path / "export")
        verdicts = verify_bundle(bundle)
        assert [v.ok for v in verdicts] == [True], verdicts[0].line()

        with pytest.raises(ApiError) as forbidden:
            app.verify()
        assert (forbidden.value.status, forbidden.value.code) == (403, "auth.forbidden")
    with (
        Client(server.url, "cpk_0123456789abcdef_nope") as stranger,
        pytest.raises(ApiError) as who,
    ):
        stranger.run(run.id)
    assert (who.value.status, who.value.code) == (401, "auth.unauthenticated")
