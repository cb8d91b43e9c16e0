"""Weeks: Monday 00:00 UTC to the next, named by the Monday's ISO date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WEEK = 7 * 86400.0


def week_start(t: float) -> float:
    """The Monday 00:00 UTC at or before `t`."""
    d = datetime.fromtimestamp(t, UTC)
    monday = (d - timedelta(days=d.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday.timestamp()


def name(start: float) -> str:
    """A week's name: its Monday as an ISO date."""
    return datetime.fromtimestamp(start, UTC).date().isoformat()


def reviewed(now: float, weeks: int) -> list[float]:
    """The starts of the last `weeks` complete weeks before `now`, oldest first."""
    end = week_start(now)
    return [end - WEEK * (weeks - i) for i in range(weeks)]
