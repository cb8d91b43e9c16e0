"""`copilot retention run`: purge signal values past their declared retention."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from copilot.cli.context import Env
from copilot.governance.retention import purge

app = typer.Typer(help="Retention of signal values.", no_args_is_help=True)


@app.command()
def run(
    ctx: typer.Context,
    undeclared: Annotated[
        bool, typer.Option("--undeclared", help="Also delete values of undeclared signals.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete every signal value older than its declared retention (audited as counts)."""
    env = ctx.obj
    assert isinstance(env, Env)
    report = purge(
        env.engine, env.audit, env.registry.signals, now=env.runs.clock(), undeclared=undeclared
    )
    if as_json:
        typer.echo(json.dumps(report, sort_keys=True))
        return
    if not any(report.values()):
        typer.echo("nothing past its retention")
    for tenant, counts in report.items():
        for name, n in sorted(counts.items()):
            typer.echo(f"{tenant}\t{name}\t{n} purged")
