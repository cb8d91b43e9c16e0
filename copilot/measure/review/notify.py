"""The review's notifier message: its headline and a link, signed like the gate's notifications."""

from __future__ import annotations

import logging
import time

import httpx

from approvals.notify import sign_body
from audit import canonical
from copilot.measure.review.model import WeeklyReview

log = logging.getLogger(__name__)


def message(review: WeeklyReview, base_url: str = "") -> dict[str, str]:
    """What the notifier receives: no personal data, the headline and where to read the rest."""
    return {"event": "review.ready", "tenant": review.tenant, "week": review.week,
            "headline": review.headline, "link": f"{base_url}/ui/review?week={review.week}"}  # fmt: skip


def send(
    url: str, secret: bytes, body: dict[str, str], *, client: httpx.Client | None = None
) -> bool:
    """One signed POST; a failure is logged, never raised (the review is stored already)."""
    raw = canonical(body)
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Copilot-Timestamp": stamp,
               "X-Copilot-Signature": sign_body(secret, stamp, raw)}  # fmt: skip
    try:
        with client or httpx.Client(timeout=5.0) as c:
            ok = c.post(url, content=raw, headers=headers).is_success
    except httpx.HTTPError as exc:
        log.warning("review notifier %s failed: %s", url, exc)
        return False
    if not ok:
        log.warning("review notifier %s refused the review of %s", url, body["week"])
    return ok
