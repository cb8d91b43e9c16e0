"""`copilot subjects prefs ID ...` and `copilot subjects erase ID`: a subject's controls."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from audit import Actor
from copilot.cli.context import Env
from copilot.erasure import erase_subject
from copilot.errors import ConfigError

app = typer.Typer(help="Subjects' controls.", no_args_is_help=True)


@app.command()
def prefs(
    ctx: typer.Context,
    subject_id: str,
    opt_out: Annotated[
        list[str] | None, typer.Option("--opt-out", help="A workflow, or `all`.")
    ] = None,
    opt_in: Annotated[
        list[str] | None, typer.Option("--opt-in", help="Undo an opt-out (`all` too).")
    ] = None,
    snooze_until: Annotated[str | None, typer.Option(help="ISO time, or `none` to clear.")] = None,
    basis: Annotated[
        str | None, typer.Option(help="Consent basis, e.g. contract, consent.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show, or change, a subject's preferences (changes are audited)."""
    env = ctx.obj
    assert isinstance(env, Env)
    tenant = env.settings.tenant
    current = env.consent.get(tenant, subject_id)
    changes: dict[str, object] = {}
    outs = set(current.opt_out_workflows)
    everything = current.opt_out_all
    for w in opt_out or []:
        everything, outs = (True, outs) if w == "all" else (everything, outs | {w})
    for w in opt_in or []:
        everything, outs = (False, outs) if w == "all" else (everything, outs - {w})
    if opt_out or opt_in:
        changes.update(opt_out_all=everything, opt_out_workflows=tuple(sorted(outs)))
    if snooze_until is not None:
        if snooze_until == "none":
            changes["snooze_until"] = None
        else:
            try:
                changes["snooze_until"] = datetime.fromisoformat(
                    snooze_until.replace("Z", "+00:00")
                ).timestamp()
            except ValueError as exc:
                raise ConfigError(
                    f"--snooze-until takes an ISO time like 2026-12-31T09:00:00Z ({exc})"
                ) from exc
    if basis is not None:
        changes["consent_basis"] = basis
    if changes:
        current = env.consent.set(current.model_copy(update=changes), actor=Actor.human("cli"))
    if as_json:
        typer.echo(current.model_dump_json(indent=2))
    else:
        typer.echo(
            f"{subject_id}: opt_out_all={current.opt_out_all} opt_out={list(current.opt_out_workflows)} "
            f"snooze_until={current.snooze_until} basis={current.consent_basis}"
        )


@app.command()
def erase(
    ctx: typer.Context,
    subject_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Erase a subject: signals, preferences, drafts and erasable audit payloads (tombstoned)."""
    env = ctx.obj
    assert isinstance(env, Env)
    counts = erase_subject(env, env.settings.tenant, subject_id, actor=Actor.human("cli"))
    if as_json:
        typer.echo(json.dumps({"subject_id": subject_id, "erased": counts}, sort_keys=True))
        return
    done = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
    typer.echo(f"erased {subject_id}: {done}")
    typer.echo("the trail still verifies: `copilot audit verify`")
