"""`copilot report` counts delivery failures per action kind and route."""

from __future__ import annotations

import time
from pathlib import Path

from copilot.delivery import NewDelivery, Policy
from copilot.measure.report.build import build_report
from copilot.measure.report.html import render_body
from tests.support.feed import opened
from tests.support.runtime import build_runtime


def test_the_report_counts_delivery_failures_per_kind_and_route(
    db_url: str, tmp_path: Path
) -> None:
    rt = build_runtime(db_url, tmp_path, woken=[], with_flows=False, delivery_max_attempts=2)
    # Given three outbox notes (one delivered, one dead after two failed attempts, one
    # retrying), a webhook email not yet attempted, and another tenant's action
    try:
        opened(rt, 3)  # post_note via outbox
        rt.deliveries.open(NewDelivery(idempotency_key="w:1", tenant="acme", kind="email_customer",
                                       route="webhook", payload={}))  # fmt: skip
        rt.deliveries.open(NewDelivery(idempotency_key="g:1", tenant="globex", kind="post_note",
                                       route="outbox", payload={}))  # fmt: skip
        rt.deliveries.policy = Policy(max_attempts=2, backoff_base=0.001, backoff_cap=0.001)
        first, second, third = rt.deliveries.claim("acme", "crm", limit=3)
        rt.deliveries.ack("acme", first.id, first.claim or "", "delivered", {})
        rt.deliveries.ack("acme", second.id, second.claim or "", "failed", {"error": "x"})
        time.sleep(0.01)
        (second,) = rt.deliveries.claim("acme", "crm", only=second.id)
        rt.deliveries.ack("acme", second.id, second.claim or "", "failed", {"error": "x"})  # dead
        rt.deliveries.ack("acme", third.id, third.claim or "", "failed", {"error": "y"})
        report = build_report(rt.engine, tenant="acme", outcomes=rt.registry.outcomes)
    finally:
        rt.close()
    counts = {(c.kind, c.route): c.model_dump(exclude={"kind", "route"}) for c in report.deliveries}
    assert counts == {
        ("email_customer", "webhook"): {"actions": 1, "delivered": 0, "retrying": 0, "dead": 0,
                                        "cancelled": 0, "failed_attempts": 0},
        ("post_note", "outbox"): {"actions": 3, "delivered": 1, "retrying": 1, "dead": 1,
                                  "cancelled": 0, "failed_attempts": 3},
    }  # fmt: skip
    assert "Delivery to the app" in render_body(report)
