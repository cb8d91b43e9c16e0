"""Stored reviews: one JSON document per tenant and week, written with its audit event."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select

from audit import Actor, AuditEvent, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import reviews
from copilot.measure.review.model import WeeklyReview


def save(engine: Engine, audit: TransactionalAuditLog, review: WeeklyReview) -> None:
    """Store (or rebuild) the tenant's review of its week, audited in the same transaction."""
    r = reviews.c
    with engine.begin() as conn:
        conn.execute(delete(reviews).where(r.tenant == review.tenant, r.week == review.week))
        conn.execute(insert(reviews).values(tenant=review.tenant, week=review.week,
                                            created_at=review.generated_at,
                                            doc=review.model_dump_json()))  # fmt: skip
        audit.append_in(conn, review.tenant, [AuditEvent(
            event_type="review.built", actor=Actor.system("review"),
            data={"week": review.week, "headline": review.headline})])  # fmt: skip


def load(engine: Engine, tenant: str, week: str | None = None) -> WeeklyReview | None:
    """The tenant's review of `week` (default: the latest stored), or None."""
    r = reviews.c
    stmt = select(r.doc).where(r.tenant == tenant)
    stmt = stmt.where(r.week == week) if week else stmt.order_by(r.week.desc()).limit(1)
    with readonly(engine.connect()) as conn:
        doc = conn.execute(stmt).scalar()
    return WeeklyReview.model_validate_json(doc) if doc is not None else None


def weeks(engine: Engine, tenant: str) -> list[str]:
    """Every stored week of the tenant, newest first."""
    r = reviews.c
    with readonly(engine.connect()) as conn:
        return [w for (w,) in conn.execute(select(r.week).where(r.tenant == tenant)
                                           .order_by(r.week.desc()))]  # fmt: skip
