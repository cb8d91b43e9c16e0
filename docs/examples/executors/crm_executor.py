# acme_crm/executor.py: an executor a package adds through the `copilot.executors` entry point
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from copilot.engine.executor import Action, Receipt, stored_receipt, write_receipt


def create_crm_task(payload: dict, *, key: str) -> str:
    """Your system's call (here a JSON-lines file stands in for the CRM's API)."""
    task_id = f"task-{uuid.uuid4().hex[:8]}"
    with (Path(os.environ.get("COPILOT_HOME", ".")) / "crm.jsonl").open("a") as crm:
        crm.write(json.dumps({"task": task_id, "key": key, **payload}) + "\n")
    return task_id


class CrmExecutor:
    name = "crm"  # must equal the entry point's name

    def __init__(self, engine, settings):
        self.engine = engine

    def execute(self, action: Action) -> Receipt:
        with self.engine.begin() as conn:
            if (done := stored_receipt(conn, action.idempotency_key)) is not None:
                return done  # a replay: act once per key
            task_id = create_crm_task(action.payload, key=action.idempotency_key)
            return write_receipt(conn, action, self.name, "done", {"task": task_id})


if __name__ == "__main__":  # hand it the same approved action twice: it acts once
    from copilot import Settings, make_engine, upgrade

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    upgrade(engine)
    crm = CrmExecutor(engine, settings)
    action = Action(tenant="acme", run_id=None, kind="crm_note", subject_id="acct-1",
                    payload={"text": "Call them about the renewal"}, idempotency_key="approval:42")
    first, again = crm.execute(action), crm.execute(action)
    assert first.detail == again.detail  # the second call replayed the stored receipt
    lines = (settings.home / "crm.jsonl").read_text().splitlines()
    assert len(lines) == 1, lines
    print(first.detail, "- one CRM task for two deliveries")
