"""The `outbox` executor: a row in the `outbox` table, for the app to pick up."""

from __future__ import annotations

import json
import time

from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from audit.db import readonly
from copilot.db.tables import outbox
from copilot.engine.executor import Action, Receipt, stored_receipt, write_receipt
from copilot.settings import Settings


class OutboxExecutor:
    """Writes the action to the `outbox` table and its receipt in one transaction."""

    name = "outbox"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> OutboxExecutor:
        """The `copilot.executors` factory: needs only the database."""
        return cls(engine)

    def execute(self, action: Action) -> Receipt:
        """Insert once; a redelivered action finds the receipt and does nothing."""
        try:
            with self.engine.begin() as conn:
                found = stored_receipt(conn, action.idempotency_key)
                if found is not None:
                    return found
                result = conn.execute(
                    insert(outbox).values(
                        tenant=action.tenant,
                        run_id=action.run_id,
                        idempotency_key=action.idempotency_key,
                        kind=action.kind,
                        payload=json.dumps(action.payload, sort_keys=True),
                        created_at=time.time(),
                    )
                )
                pk = result.inserted_primary_key
                return write_receipt(
                    conn, action, self.name, "done", {"outbox_id": pk[0] if pk else None}
                )
        except IntegrityError:  # a concurrent execution of the same key won the insert
            with readonly(self.engine.connect()) as conn:
                found = stored_receipt(conn, action.idempotency_key)
            if found is None:
                raise
            return found
