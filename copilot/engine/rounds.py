"""Storage of multi-round steps (`Again`): one row per committed round."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, insert, select

from audit.db import readonly
from copilot.db.tables import step_rounds


class Round(BaseModel):
    """A committed round of a step: its stored state, and whether it proposed actions."""

    model_config = ConfigDict(frozen=True)

    round: int
    state: dict[str, Any]
    proposed: bool


def load(engine: Engine, run_id: str, idx: int) -> list[Round]:
    """The step's committed rounds, in order."""
    c = step_rounds.c
    stmt = (
        select(c.round, c.state, c.proposed)
        .where(c.run_id == run_id, c.idx == idx)
        .order_by(c.round)
    )
    with readonly(engine.connect()) as conn:
        return [
            Round(round=r, state=json.loads(state), proposed=bool(proposed))
            for r, state, proposed in conn.execute(stmt)
        ]


def save(
    conn: Connection,
    run_id: str,
    idx: int,
    n: int,
    state: dict[str, Any],
    *,
    proposed: bool,
    at: float,
) -> None:
    """Store round `n` (a second worker storing the same round violates the primary key)."""
    conn.execute(
        insert(step_rounds).values(
            run_id=run_id, idx=idx, round=n, state=json.dumps(state, sort_keys=True),
            proposed=proposed, created_at=at,
        )
    )  # fmt: skip
