"""`copilot audit sample`: a synthetic trail, for trying the auditor's tools on their own.

Writes the lifecycle of a run per synthetic account (personal content kept erasable),
erases one subject, signs a checkpoint, verifies in the database and offline from an
export bundle, and shows a tampered copy of that bundle caught by the verifier. The
real workflows' trail comes from `copilot demo`.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from audit import Actor, AuditEvent, Versions, export_bundle, verify_bundle
from copilot.cli.context import Env
from copilot.db.engines import upgrade

console = Console()

FIRST = ["Ana", "Bo", "Chen", "Dara", "Emeka", "Fatima", "Goran", "Hana", "Ivo", "Jade"]
LAST = ["Silva", "Berg", "Wu", "Okafor", "Novak", "Haddad", "Ito", "Moreau", "Kaur", "Lund"]


def _run_events(acct: int, rng: random.Random) -> list[AuditEvent]:
    subject = f"acct-{acct:03d}"
    run = f"demo-run-{acct:03d}"
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    versions = Versions(workflow="account_health@1", policy="default@1")
    sysa, agent = Actor.system("worker-1"), Actor.agent("rules")
    reviewer = Actor.human(rng.choice(["reviewer:maya", "reviewer:li"]))
    steps = ["gather_signals", "score_health", "draft_note"]
    events = [
        AuditEvent(
            event_type="run.created", actor=Actor.system("api"), data={"workflow": "account_health"}
        )
    ]
    events += [
        AuditEvent(event_type="step.completed", actor=agent, data={"step": s, "attempt": 1})
        for s in steps
    ]
    approved = rng.random() < 0.8
    events += [
        AuditEvent(
            event_type="action.proposed",
            actor=agent,
            data={"kind": "post_health_note", "risk": "low"},
            personal={
                "to": name,
                "email": f"{name.split()[0].lower()}@example.com",
                "note": f"Hi {name.split()[0]}, usage is up {rng.randint(5, 40)}% this month.",
            },
        ),
        AuditEvent(
            event_type="approval.decided",
            actor=reviewer,
            data={
                "decision": "approve" if approved else "reject",
                "reason": None if approved else "tone too casual",
            },
        ),
    ]
    if approved:
        events.append(
            AuditEvent(event_type="action.executed", actor=sysa, data={"executor": "outbox"})
        )
    events.append(AuditEvent(event_type="run.completed", actor=sysa, data={"state": "completed"}))
    return [
        e.model_copy(
            update={
                "run_id": run,
                "subject_id": subject,
                "versions": versions,
                "idempotency_key": f"{run}:{i}",
            }
        )
        for i, e in enumerate(events)
    ]


def sample(
    ctx: typer.Context,
    accounts: Annotated[int, typer.Option(min=1, max=100_000, help="Synthetic accounts.")] = 50,
) -> None:
    """Write, sign, erase, export and verify a realistic audit trail on the embedded defaults."""
    env = ctx.obj
    assert isinstance(env, Env)
    started = time.perf_counter()
    upgrade(env.engine)
    stream = env.settings.tenant
    rng = random.Random(7)
    appended = duplicates = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("runs", total=accounts)
        for acct in range(accounts):
            for r in env.audit.append(stream, _run_events(acct, rng)):
                duplicates += r.duplicate
                appended += not r.duplicate
            progress.advance(task)
    trail = env.signing_trail
    erased = trail.erase_subject(stream, "acct-007", Actor.human("dpo"))
    cp = trail.checkpoint(stream)
    verdict = trail.verify(stream)
    bundle = env.settings.home / "export"
    shutil.rmtree(bundle, ignore_errors=True)
    export_bundle(trail, bundle, [stream])
    offline = verify_bundle(bundle)[0]
    tampered = _tamper_copy(bundle)
    caught = verify_bundle(tampered)[0]

    table = Table(title=f"copilot audit sample: stream {stream!r}")
    table.add_column("what")
    table.add_column("result")
    table.add_row("entries appended / already there", f"{appended} / {duplicates}")
    table.add_row("signed checkpoint", f"size={cp.size} key={cp.key_id}")
    table.add_row(
        "erasure of acct-007", f"tombstone seq={erased.seq}" if erased else "already erased"
    )
    table.add_row("verify (database)", verdict.line())
    table.add_row("verify (offline bundle)", offline.line())
    table.add_row("verify (tampered copy)", caught.line())
    table.add_row("time", f"{time.perf_counter() - started:.2f} s")
    console.print(table)
    console.print(
        f"Next: `copilot audit tail`, `copilot audit verify --bundle {bundle}`, "
        f"the database at {env.settings.database_url_resolved}"
    )
    if not (verdict.ok and offline.ok) or caught.ok:
        raise typer.Exit(1)


def _tamper_copy(bundle: Path) -> Path:
    """Copy the bundle and change one decision in it, as an insider might."""
    copy = bundle.with_name(bundle.name + "-tampered")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(bundle, copy)
    entries = next(copy.glob("streams/*/entries.jsonl"))
    lines = entries.read_text().splitlines()
    for i, line in enumerate(lines):
        doc = json.loads(line)
        if '"decision":"reject"' in doc["body"]:
            doc["body"] = doc["body"].replace('"decision":"reject"', '"decision":"approve"')
            lines[i] = json.dumps(doc, separators=(",", ":"), sort_keys=True)
            break
    entries.write_text("\n".join(lines) + "\n")
    return copy
