"""`copilot approvals list|show|claim|approve|reject|edit` (`--as REVIEWER` for local use).

The HTTP API takes the reviewer from the authenticated key; the CLI is for operators on
the machine, who say who they are with `--as`.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from approvals import ApprovalRequest
from copilot.cli import ids
from copilot.cli.context import Env
from copilot.cli.output import console, until
from copilot.cli.params import key_values

app = typer.Typer(help="Work the approval queue.", no_args_is_help=True)
out = console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AsOpt = Annotated[str, typer.Option("--as", help="Who is deciding (the reviewer's id).")]
RoleOpt = Annotated[str, typer.Option("--role", help="The reviewer's role.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def _print(req: ApprovalRequest, as_json: bool) -> None:
    if as_json:
        typer.echo(req.model_dump_json(indent=2))
        return
    out.print(
        f"[bold]{req.id}[/] {req.kind} v{req.version} {req.status} risk={req.risk.value} "
        f"needs {req.required_n}×{req.role} approvals={req.approvals} hash={req.payload_hash[:12]}"
    )
    out.print_json(json.dumps(req.payload))


def _wake(env: Env, req: ApprovalRequest) -> None:
    # The decision already queued the run (same transaction); this only wakes a worker now.
    if req.run_id is not None and req.status != "pending":
        env.enqueue(req.run_id)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str, typer.Option(help="pending, approved, rejected, expired, ...")
    ] = "pending",
    workflow: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    risk: Annotated[str | None, typer.Option()] = None,
    subject: Annotated[str | None, typer.Option("--subject")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The queue, by deadline (soonest first) then risk; `expires` is the time left."""
    env = _env(ctx)
    items, _ = env.gate.queue(
        env.settings.tenant,
        status=status,
        workflow=workflow,
        kind=kind,
        risk=risk,
        subject_id=subject,
        limit=limit,
    )
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        return
    table = Table(
        ids.column(), "kind", "risk", "needs", "subject", ids.column("run"), "status", "expires"
    )
    now = time.time()
    for i in items:
        table.add_row(
            i.id,
            f"{i.kind} v{i.version}",
            i.risk.value,
            f"{len(i.approvals)}/{i.required_n} {i.role}",
            i.subject_id or "",
            i.run_id or "",
            i.status,
            until(i.deadline, now) if i.status == "pending" else "",
        )
    out.print(table)


@app.command()
def show(ctx: typer.Context, approval_id: str, as_json: JsonOpt = False) -> None:
    """One request: payload, hash, risk, why."""
    env = _env(ctx)
    _print(env.gate.get(ids.approval_id(env, approval_id), tenant=env.settings.tenant), as_json)


@app.command()
def claim(ctx: typer.Context, approval_id: str, reviewer: AsOpt, minutes: float = 5.0) -> None:
    """Hold a request for a few minutes."""
    env = _env(ctx)
    req = env.gate.claim(
        ids.approval_id(env, approval_id),
        reviewer=reviewer,
        seconds=minutes * 60,
        tenant=env.settings.tenant,
    )
    typer.echo(f"{req.id} claimed by {req.claimed_by}")


def _decide(
    ctx: typer.Context,
    approval_id: str,
    reviewer: str,
    role: str,
    decision: str,
    reason: str | None,
    as_json: bool,
) -> None:
    env = _env(ctx)
    current = env.gate.get(ids.approval_id(env, approval_id), tenant=env.settings.tenant)
    req = env.gate.decide(
        current.id,
        reviewer=reviewer,
        roles={role},
        decision=decision,  # type: ignore[arg-type]
        payload_hash=current.payload_hash,
        reason=reason,
        tenant=env.settings.tenant,
    )
    _wake(env, req)
    _print(req, as_json)


@app.command()
def approve(
    ctx: typer.Context,
    approval_id: str,
    reviewer: AsOpt,
    role: RoleOpt = "reviewer",
    note: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the payload version shown by `show`."""
    _decide(ctx, approval_id, reviewer, role, "approve", note, as_json)


@app.command()
def reject(
    ctx: typer.Context,
    approval_id: str,
    reviewer: AsOpt,
    reason: Annotated[str, typer.Option(help="Why: the proposer learns from it.")],
    role: RoleOpt = "reviewer",
    as_json: JsonOpt = False,
) -> None:
    """Reject with a reason."""
    _decide(ctx, approval_id, reviewer, role, "reject", reason, as_json)


@app.command()
def edit(
    ctx: typer.Context,
    approval_id: str,
    reviewer: AsOpt,
    sets: Annotated[list[str], typer.Option("--set", help="KEY=VALUE (JSON values); repeatable.")],
    role: RoleOpt = "reviewer",
    as_json: JsonOpt = False,
) -> None:
    """Edit the payload, then approve the new version (policy re-run on it)."""
    env = _env(ctx)
    edits = key_values(sets, "--set")
    current = env.gate.get(ids.approval_id(env, approval_id), tenant=env.settings.tenant)
    req = env.gate.edit(
        current.id,
        reviewer=reviewer,
        roles={role},
        edits=edits,
        payload_hash=current.payload_hash,
        tenant=env.settings.tenant,
    )
    _wake(env, req)
    _print(req, as_json)


@app.command()
def shadow(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """How often each shadow rule agreed with what people decided."""
    env = _env(ctx)
    figures = env.gate.shadow_agreement(env.settings.tenant)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    table = Table("shadow rule", "decided by people", "agreed", "agreement")
    for f in figures:
        table.add_row(str(f["rule"]), str(f["decided"]), str(f["agreed"]), f"{f['agreement']:.0%}")
    out.print(table)
