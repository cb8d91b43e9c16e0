"""`copilot demo`: the main job, end to end, on whatever database and broker are configured.

On the embedded defaults (SQLite database and Celery's SQLite broker under COPILOT_HOME,
no model) it: seeds a synthetic book of accounts, starts a real worker process, triggers
the three built-in workflows for every account, plays a demo reviewer (approves most,
edits some drafts, rejects some with reasons) unless `--no-review`, lets the worker
execute what was approved, signs a checkpoint, verifies the trail, and prints a summary.
Every invocation is a new batch (its own idempotency keys), so re-running is safe.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from approvals import ApprovalRequest
from copilot.cli import demo_data, demo_journey
from copilot.cli.context import Env
from copilot.db.engines import upgrade
from copilot.engine.runs import Run, RunState
from copilot.errors import ConfigError

console = Console()
WORKFLOWS = ("account_health", "next_actions", "tone_draft")
APP, REVIEWER = "demo-app", "demo-reviewer"
_TERMINAL = {RunState.COMPLETED, RunState.FAILED, RunState.SKIPPED, RunState.CANCELLED}
_REJECT_REASONS = {
    "send_email": "Tone is off for this contact; I will call instead",
    "billing_reminder": "Finance is already in touch; no reminder this week",
    "request_review": "Too soon after their last support ticket",
}


def demo(
    ctx: typer.Context,
    accounts: Annotated[int, typer.Option(min=1, max=5000, help="Synthetic accounts.")] = 60,
    no_review: Annotated[
        bool, typer.Option("--no-review", help="Stop before the demo reviewer: approvals wait.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 300,
) -> None:
    """Seed accounts, run every workflow on a real worker, review, execute, verify, summarize."""
    env = ctx.obj
    assert isinstance(env, Env)
    started = time.perf_counter()
    upgrade(env.engine)
    for name in WORKFLOWS:
        env.registry.get(name)  # the built-in workflows come from the installed package
    tenant, batch = env.settings.tenant, uuid.uuid4().hex[:8]
    book = demo_data.accounts(accounts, seed=7, today=date.today())
    worker = _start_worker(env)
    try:
        with _progress() as progress:
            _seed(env, tenant, book, progress)
            runs = _trigger(env, tenant, batch, book, progress)
            _wait(env, runs, progress, "running workflows", timeout, _settled_or_waiting(env))
            reviewed: Counter[str] = Counter()
            if not no_review:
                reviewed = _review(env, runs, progress)
                _wait(env, runs, progress, "executing approved", timeout, _settled)
            journey = demo_journey.run(env, tenant, [a.subject_id for a in book], batch, progress)
        checkpoint = env.signing_trail.checkpoint(tenant)
        verdict = env.trail.verify(tenant)
    finally:
        _stop(worker)
    _summary(env, runs, reviewed, verdict.line(), checkpoint.size, time.perf_counter() - started)
    _journey_summary(journey)
    if no_review:
        pending = sum(1 for r in _requests(env, runs) if r.status == "pending")
        console.print(
            f"{pending} approvals are waiting for a person: `copilot approvals list`, then "
            "`copilot approvals approve ID --as YOU`, `reject ID --as YOU --reason TEXT` or "
            "`edit ID --as YOU --set KEY=VALUE`."
        )
    console.print(
        "Next: `copilot runs list`, `copilot runs show ID`, `copilot approvals list`, "
        "`copilot audit tail`, `copilot audit verify`, `copilot signals list`, "
        f"`COPILOT_PLACEMENT_MODULES={demo_journey.MODULE} copilot report --outcome "
        "onboarding.activated` (the placement rows); "
        f"database {env.settings.database_url_resolved}"
    )
    if not verdict.ok:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _start_worker(env: Env) -> subprocess.Popen[bytes]:
    """A real `copilot worker` process on the same settings (its log under COPILOT_HOME)."""
    env.settings.home.mkdir(parents=True, exist_ok=True)
    log = (env.settings.home / "demo-worker.log").open("ab")
    cmd = [sys.executable, "-m", "copilot", "worker", "--loglevel", "WARNING", "--no-beat"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _seed(env: Env, tenant: str, book: list[demo_data.Account], progress: Progress) -> None:
    task = progress.add_task("seeding signals", total=len(book))
    now = time.time()
    for acct in book:
        for values, age in ((acct.signals, 3600), (acct.stale, 60 * 86400)):
            if values:
                env.registry.signals.ingest(env.engine, env.audit, tenant=tenant,
                                            subject_id=acct.subject_id, values=values,
                                            source="demo-crm", observed_at=now - age)  # fmt: skip
        progress.advance(task)


def _trigger(
    env: Env, tenant: str, batch: str, book: list[demo_data.Account], progress: Progress
) -> list[str]:
    task = progress.add_task("triggering runs", total=len(book) * len(WORKFLOWS))
    ids = []
    for acct in book:
        for name in WORKFLOWS:
            run, _ = env.runner.trigger(name, acct.subject_id, tenant=tenant, triggered_by=APP,
                                        idempotency_key=f"demo-{batch}:{name}:{acct.subject_id}")  # fmt: skip
            ids.append(run.id)
            progress.advance(task)
    return ids


def _settled(run: Run) -> bool:
    return run.state in _TERMINAL


def _settled_or_waiting(env: Env) -> Callable[[Run], bool]:
    """Finished, or parked on an approval a person must decide."""

    def done(run: Run) -> bool:
        if run.state in _TERMINAL:
            return True
        if run.state != RunState.WAITING:
            return False
        return any(r.status == "pending" for r in env.gate.of_run(run.id))

    return done


def _wait(
    env: Env,
    ids: list[str],
    progress: Progress,
    label: str,
    timeout: float,
    done: Callable[[Run], bool],
) -> None:
    task = progress.add_task(label, total=len(ids))
    left, deadline = set(ids), time.monotonic() + timeout
    while left:
        left = {i for i in left if not done(env.runs.get(i))}
        progress.update(task, completed=len(ids) - len(left))
        if not left:
            break
        if time.monotonic() > deadline:
            raise ConfigError(
                f"{len(left)} runs did not finish within {timeout:.0f} s; is the worker "
                f"running? see {env.settings.home / 'demo-worker.log'}"
            )
        time.sleep(0.2)


def _requests(env: Env, ids: list[str]) -> list[ApprovalRequest]:
    return [r for i in ids for r in env.gate.of_run(i)]


def _review(env: Env, ids: list[str], progress: Progress) -> Counter[str]:
    """The demo reviewer: approves most, edits some drafts, rejects some with a reason."""
    pending = [r for r in _requests(env, ids) if r.status == "pending"]
    task = progress.add_task("demo reviewer", total=len(pending))
    done: Counter[str] = Counter()
    roles = {"reviewer"}
    for req in pending:
        roll = int(hashlib.sha256(req.id.encode()).hexdigest()[:4], 16) % 100
        if req.kind == "send_email" and roll < 30:
            body = req.payload["body"].replace("Your account team", "Maya, your account manager")
            env.gate.edit(req.id, reviewer=REVIEWER, roles=roles, payload_hash=req.payload_hash,
                          edits={"body": body, "subject": req.payload["subject"] + " (quick note)"})  # fmt: skip
            done["edited"] += 1
        elif roll >= 85 or (req.kind == "billing_reminder" and req.payload.get("tone") == "firm"):
            reason = _REJECT_REASONS.get(req.kind, "Not now: the account owner is already on it")
            env.gate.decide(req.id, reviewer=REVIEWER, roles=roles, decision="reject",
                            payload_hash=req.payload_hash, reason=reason)  # fmt: skip
            done["rejected"] += 1
        else:
            env.gate.decide(req.id, reviewer=REVIEWER, roles=roles, decision="approve",
                            payload_hash=req.payload_hash)  # fmt: skip
            done["approved"] += 1
        progress.advance(task)
    return done


def _summary(
    env: Env, ids: list[str], reviewed: Counter[str], verdict: str, signed: int, seconds: float
) -> None:
    runs = [env.runs.get(i) for i in ids]
    requests = _requests(env, ids)
    table = Table(title=f"copilot demo: {len(runs)} runs over {len(runs) // 3} accounts")
    for column in ("workflow", "full", "partial", "thin", "none", "held out", "failed"):
        table.add_column(column, justify="right" if column != "workflow" else "left")
    for name in WORKFLOWS:
        mine = [r for r in runs if r.workflow == name]
        levels = Counter(r.level for r in mine)
        table.add_row(name, *(str(levels[lv]) for lv in ("full", "partial", "thin", "none")),
                      str(sum(r.holdout for r in mine)),
                      str(sum(r.state == RunState.FAILED for r in mine)))  # fmt: skip
    console.print(table)
    decided = Table(title="proposals and decisions")
    decided.add_column("what")
    decided.add_column("count", justify="right")
    rows = [  # one row per proposed action (an edit's new version replaces the old)
        ("proposals", len(requests)),
        ("auto-approved by policy", sum(r.policy_rule.startswith("low-risk") for r in requests)),
        ("approved by the demo reviewer", reviewed["approved"]),
        ("edited then approved", reviewed["edited"]),
        ("rejected with a reason", reviewed["rejected"]),
        ("still pending", sum(r.status == "pending" for r in requests)),
        ("executed", sum(r.execution_status == "done" for r in requests)),
    ]
    for what, n in rows:
        decided.add_row(what, str(n))
    decided.add_row("audit trail", f"{verdict} (checkpoint signed at {signed})")
    decided.add_row("time", f"{seconds:.1f} s")
    console.print(decided)


def _journey_summary(done: Counter[str]) -> None:
    table = Table(title="onboarding journey (placements)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what in ("decisions", "holdout", "impression", "accept", "dismiss", "complete", "activated"):
        table.add_row(what if what != "holdout" else "held out (control)", str(done[what]))
    console.print(table)
