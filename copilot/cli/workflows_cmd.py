"""`copilot workflows list`: what this deployment registered, and where it came from."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from copilot.cli.context import Env
from copilot.cli.output import console
from copilot.workflow.definition import Workflow

app = typer.Typer(help="Registered workflows.", no_args_is_help=True)
out = console()


def _doc(wf: Workflow) -> dict[str, Any]:
    return {
        "name": wf.name,
        "version": wf.version,
        "description": wf.description,
        "module": wf.steps[0].fn.__module__ if wf.steps else None,
        "steps": [s.name for s in wf.steps],
        "signals": [n.name for n in wf.signals],
        "actions": list(wf.actions),
        "holdout": wf.holdout,
    }


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered workflow version: its steps, the signals it reads, the kinds it proposes."""
    env = ctx.obj
    assert isinstance(env, Env)
    docs = [_doc(wf) for wf in env.registry]
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
        return
    table = Table("workflow", "module", "steps", "signals", "actions")
    for d in docs:
        table.add_row(
            f"{d['name']}@{d['version']}",
            str(d["module"]),
            " → ".join(d["steps"]),
            ", ".join(d["signals"]),
            ", ".join(d["actions"]),
        )
    out.print(table)
