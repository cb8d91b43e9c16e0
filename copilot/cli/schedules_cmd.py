"""`copilot schedules list|tick`: the declared schedules and event triggers, and a tick by hand."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from copilot.cli.context import Env
from copilot.cli.output import console
from copilot.workflow.triggers import EventTrigger, Schedule, iso

app = typer.Typer(help="Proactive schedules and event triggers.", no_args_is_help=True)
out = console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def describe(item: Schedule | EventTrigger, now: float) -> dict[str, Any]:
    """One declaration as a document (a schedule with its current and next period start)."""
    if isinstance(item, Schedule):
        start = item.period_start(now)
        return {
            "kind": "schedule",
            "name": item.name,
            "workflow": item.workflow,
            "every_s": item.every.total_seconds(),
            "jitter_s": item.jitter.total_seconds(),
            "subjects": {
                "having": list(item.subjects.having),
                "where": [str(c) for c in item.subjects.where],
                "seen_within_s": item.subjects.seen_within.total_seconds()
                if item.subjects.seen_within is not None
                else None,
            },
            "period_start": iso(start),
            "next_period_start": iso(start + item.every.total_seconds()),
        }
    return {
        "kind": "event",
        "name": item.name,
        "workflow": item.workflow,
        "when": [str(c) for c in item.when],
        "debounce_s": item.debounce.total_seconds(),
    }


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Schedules (with the next period start) and event triggers (with their conditions)."""
    env = _env(ctx)
    now = env.runs.clock()
    docs = [describe(item, now) for item in env.registry.triggers.items()]
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
        return
    table = Table("kind", "name", "workflow", "when", "subjects", "next period / debounce")
    for d in docs:
        if d["kind"] == "schedule":
            subjects = d["subjects"]
            having = "any of " + ", ".join(subjects["having"]) if subjects["having"] else ""
            where = " and ".join(subjects["where"])
            table.add_row("schedule", d["name"], d["workflow"], f"every {_span(d['every_s'])}, "
                          f"jitter {_span(d['jitter_s'])}", "; ".join(filter(None, [having, where])),
                          d["next_period_start"])  # fmt: skip
        else:
            table.add_row("event", d["name"], d["workflow"], " or ".join(d["when"]), "the ingested subject",
                          f"debounce {_span(d['debounce_s'])}")  # fmt: skip
    out.print(table)


@app.command("tick")
def tick(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """What beat does each tick, once, in this process: start the runs due so far this period."""
    report = _env(ctx).proactive().tick()
    if as_json:
        typer.echo(report.model_dump_json())
        return
    due = ", ".join(f"{k}: {v}" for k, v in report.due.items()) or "nothing"
    typer.echo(f"due {due}; {report.batches} batches run")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
