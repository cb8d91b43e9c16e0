"""`copilot signals list`: the registry as the document an auditor or privacy reviewer reads."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from copilot.cli.context import Env

app = typer.Typer(help="Declared signals.", no_args_is_help=True)
out = Console()


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
