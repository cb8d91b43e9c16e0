"""`copilot signals list`: the registry as an auditor reads it; `copilot signals put`: feed values."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.context import Env
from copilot.cli.output import console
from copilot.cli.params import key_values

app = typer.Typer(help="Declared signals.", no_args_is_help=True)
out = console()


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What powers personalization, why, how long it persists, who may read it."""
    env = ctx.obj
    assert isinstance(env, Env)
    specs = env.registry.signals.specs()
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in specs], indent=2))
        return
    table = Table(
        "signal", "description", "purpose", "type", "sensitivity", "kept for", "source", "workflows"
    )
    for s in specs:
        table.add_row(
            s.name,
            s.description,
            s.purpose,
            s.type,
            s.sensitivity.value,
            f"{s.retention.days} days",
            s.source,
            ", ".join(s.workflows),
        )
    out.print(table)


@app.command("put")
def put(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="The subject (account) id.")],
    sets: Annotated[
        list[str], typer.Option("--set", help="SIGNAL=VALUE (JSON values); repeatable.")
    ],
    source: Annotated[str, typer.Option("--source", help="Where the values come from.")] = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write a subject's signal values (all or nothing, as `POST /v1/signals`), then fire
    the event triggers they satisfy."""
    env = ctx.obj
    assert isinstance(env, Env)
    done = env.proactive().ingest(
        tenant=env.settings.tenant, subject_id=subject, values=key_values(sets, "--set"),
        source=source, principal="cli",
    )  # fmt: skip
    if as_json:
        doc = {"accepted": done.count, "fired": [f.model_dump() for f in done.fired],
               "failed": done.failed}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"accepted {done.count} values for {subject}")
    for f in done.fired:
        typer.echo(f"fired {f.cause}: run {f.run_id} {f.state}")
    for failure in done.failed:
        typer.echo(f"trigger {failure['trigger']} failed: {failure['error']}", err=True)
