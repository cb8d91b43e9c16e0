"""`copilot run`, `copilot runs list|show`, `copilot worker`, `copilot sweep`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from audit import Actor
from copilot.cli import ids
from copilot.cli.context import Env
from copilot.cli.output import console
from copilot.cli.params import key_values
from copilot.engine.faults import quarantined
from copilot.engine.faults import retry as retry_run
from copilot.engine.runs import Run, RunState
from copilot.worker import make_celery

out = console()
runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def _run_doc(run: Run) -> dict[str, Any]:
    doc = run.model_dump(mode="json", exclude={"lease_owner", "lease_expires_at"})
    return {**doc, "quarantined": quarantined(run)}


def _state(run: Run) -> str:
    """The state as a person reads it: a quarantined run names its code."""
    if quarantined(run):
        return f"quarantined ({(run.error or {}).get('code')})"
    return run.state.value


def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="Workflow name (latest version).")],
    subject: Annotated[str, typer.Option("--subject", help="The subject (account) id.")],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", help="KEY=VALUE (JSON values).")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it waits or finishes.")] = False,
    inline: Annotated[
        bool, typer.Option("--inline", help="Run in this process, no worker.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Trigger a run of WORKFLOW for a subject."""
    env = _env(ctx)
    if inline:
        env._enqueue = lambda run_id, countdown: None
    run_, created = env.runner.trigger(
        workflow,
        subject,
        tenant=env.settings.tenant,
        inputs=key_values(inputs, "--input"),
        idempotency_key=idempotency_key,
        triggered_by="cli",
        principal="cli",
    )
    if inline:
        run_ = env.runner.run_inline(run_.id)
    elif wait:
        deadline = time.monotonic() + timeout
        while not (run_.terminal or run_.state == RunState.WAITING) and time.monotonic() < deadline:
            time.sleep(0.2)
            run_ = env.runs.get(run_.id)
    if as_json:
        typer.echo(json.dumps({**_run_doc(run_), "created": created}, indent=2))
    else:
        typer.echo(
            f"{run_.id} {run_.workflow}@{run_.version} {run_.state.value}"
            + ("" if created else " (existing run for this idempotency key)")
        )
    if run_.state == RunState.FAILED:  # the answer is no: say why, exit 1 (also without --wait)
        error = run_.error or {}
        typer.echo(f"run {run_.id} failed: [{error.get('code')}] {error.get('message')}", err=True)
        raise typer.Exit(1)
    if wait and not (run_.terminal or run_.state == RunState.WAITING):
        raise typer.Exit(1)


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    subject: Annotated[str | None, typer.Option("--subject")] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Only runs of this workflow (any version).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Runs, newest first (by creation time), at most --limit."""
    env = _env(ctx)
    found = env.runs.list_runs(
        env.settings.tenant, state=state, subject_id=subject, workflow=workflow, limit=limit
    )
    if as_json:
        typer.echo(json.dumps([_run_doc(r) for r in found], indent=2))
        return
    table = Table("workflow", "subject", "state", "level", "reasons", "created")
    table.columns.insert(0, ids.column())
    for r in found:
        table.add_row(
            r.id,
            f"{r.workflow}@{r.version}",
            r.subject_id,
            _state(r),
            r.level or "",
            ", ".join(r.reasons),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.created_at)),
        )
    out.print(table)


@runs_app.command("retry")
def retry(
    ctx: typer.Context,
    run_id: str,
    by: Annotated[str, typer.Option("--as", help="Who retries it (recorded in the trail).")],
    as_json: JsonOpt = False,
) -> None:
    """Send a failed (quarantined) run back to the queue, after fixing what failed it."""
    env = _env(ctx)
    r = retry_run(env.runs, run_id, actor=Actor.human(by), tenant=env.settings.tenant)
    env.enqueue(r.id)
    if as_json:
        typer.echo(json.dumps(_run_doc(r), indent=2))
        return
    typer.echo(f"{r.id} {r.workflow}@{r.version} {r.state.value} (retried by {by})")


@runs_app.command("show")
def show(ctx: typer.Context, run_id: str, as_json: JsonOpt = False) -> None:
    """One run with its steps (RUN_ID: the id, or any unique start of it)."""
    env = _env(ctx)
    run_id = ids.run_id(env, run_id)
    r = env.runs.get(run_id, tenant=env.settings.tenant)
    steps = env.runs.steps(run_id)
    if as_json:
        typer.echo(
            json.dumps(
                {**_run_doc(r), "steps": [s.model_dump(mode="json") for s in steps]}, indent=2
            )
        )
        return
    out.print(
        f"[bold]{r.id}[/] {r.workflow}@{r.version} subject={r.subject_id} state={_state(r)} "
        f"level={r.level} reasons={r.reasons}"
    )
    for s in steps:
        out.print(f"  {s.idx} {s.name} {s.status} model={s.model or 'rules'} usage={s.usage or {}}")
    if r.error:
        out.print(f"  error: {r.error}")


@runs_app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: str,
    who: Annotated[str, typer.Option("--as", help="Who decides (recorded in the trail).")],
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE (JSON values) of the decision; repeatable."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Resume a run waiting at an `Await`: the next step reads the decision in `ctx.decision`.

    A run waiting on approval requests resumes when they are decided (`copilot approvals`).
    """
    env = _env(ctx)
    run_ = env.runs.resume(
        ids.run_id(env, run_id), key_values(sets, "--set"), actor=Actor.human(who),
        tenant=env.settings.tenant,
    )  # fmt: skip
    env.enqueue(run_.id)
    _print_change(run_, as_json)


@runs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: str,
    who: Annotated[str, typer.Option("--as", help="Who cancels (recorded in the trail).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the trail).")],
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run that has not finished (queued, running or waiting)."""
    env = _env(ctx)
    run_ = env.runs.cancel(
        ids.run_id(env, run_id), actor=Actor.human(who), reason=reason,
        tenant=env.settings.tenant,
    )  # fmt: skip
    _print_change(run_, as_json)


def _print_change(run_: Run, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_run_doc(run_), indent=2))
    else:
        typer.echo(f"{run_.id} {run_.workflow}@{run_.version} {run_.state.value}")


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    beat: Annotated[
        bool, typer.Option("--beat/--no-beat", help="Also run the sweep schedule.")
    ] = True,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker that advances runs (and, with --beat, sweeps)."""
    env = _env(ctx)
    # Refuse an unreachable database, parts that cannot meet, a wrong policy or
    # COPILOT_ACTION_EXECUTORS now, not at the first run (each child builds its own).
    for line in env.check_startup():
        typer.echo(line, err=True)
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        "-Q",
        env.settings.queue_resolved,
        f"--concurrency={concurrency or env.settings.worker_concurrency}",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"copilot-%h-{time.time_ns()}",
    ]
    if beat:
        argv += ["-B", "-s", str(env.settings.home / "celerybeat-schedule")]
    env.settings.home.mkdir(parents=True, exist_ok=True)
    make_celery(env.settings).worker_main(argv)  # the app with the tasks and the beat


def sweep(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-enqueue stranded runs, chain queued audit events, sign due checkpoints."""
    report = _env(ctx).sweeper.sweep()
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        typer.echo(
            f"requeued {report.requeued} runs, chained {report.chained} audit events, "
            f"signed {report.checkpoints} checkpoints"
        )
