"""`copilot actions list|show|ack|retry|cancel`: the action feed for operators on the machine.

`list` never claims. `ack` settles an action by hand (say, an email sent by hand): with
`--claim` it settles that claim, as an app would; without, it claims the action for
`--as` first, so it refuses one a consumer holds (`delivery.claim_lost`: wait for its
claim to time out). `retry` and `cancel` are for dead actions, as the reviewer's API is.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from audit import Actor
from copilot.cli.context import Env
from copilot.cli.output import console
from copilot.cli.params import key_values
from copilot.delivery import ClaimLostError, Delivery

app = typer.Typer(
    help="See and settle approved actions on their way to the app.", no_args_is_help=True
)
out = console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AsOpt = Annotated[str, typer.Option("--as", help="Who you are (recorded in the audit trail).")]


class AckStatus(StrEnum):
    """What an ack says."""

    DELIVERED = "delivered"
    FAILED = "failed"


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def _print(d: Delivery, as_json: bool) -> None:
    if as_json:
        typer.echo(d.model_dump_json(indent=2))
        return
    out.print(f"[bold]{d.id}[/] {d.kind} via {d.route}: {d.state.value} "
              f"attempts={d.attempts}/{d.max_attempts} key={d.idempotency_key}")  # fmt: skip
    if d.last_error:
        out.print(f"last error: {d.last_error}")
    if d.receipt:
        out.print_json(json.dumps(d.receipt))


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="ready, claimed, delivered, failed, dead, cancelled")
    ] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    subject: Annotated[str | None, typer.Option("--subject")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Actions, newest first (by id), with their delivery state; no claim is taken."""
    env = _env(ctx)
    found = env.deliveries.page(env.settings.tenant, states=[status] if status else (),
                                kind=kind, subject_id=subject, limit=limit,
                                newest_first=True)  # fmt: skip
    if as_json:
        typer.echo(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return
    table = Table("id", "kind", "route", "state", "attempts", "subject", "last error")
    for d in found:
        table.add_row(str(d.id), d.kind, d.route, d.state.value,
                      f"{d.attempts}/{d.max_attempts}", d.subject_id or "",
                      (d.last_error or "")[:60])  # fmt: skip
    out.print(table)


@app.command()
def show(ctx: typer.Context, action_id: int, as_json: JsonOpt = False) -> None:
    """One action: state, attempts, last error, receipt."""
    env = _env(ctx)
    _print(env.deliveries.get(action_id, tenant=env.settings.tenant), as_json)


@app.command()
def ack(
    ctx: typer.Context,
    action_id: int,
    who: AsOpt,
    status: Annotated[AckStatus, typer.Option(help="delivered or failed")] = AckStatus.DELIVERED,
    claim: Annotated[str | None, typer.Option(help="The claim's token (else: claim it).")] = None,
    detail: Annotated[list[str] | None, typer.Option(help="key=value for the receipt.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Settle an action by hand: delivered (with a receipt) or failed (retried later)."""
    env = _env(ctx)
    tenant = env.settings.tenant
    if claim is None:
        taken = env.deliveries.claim(tenant, f"operator:{who}", only=action_id, limit=1)
        if not taken:
            current = env.deliveries.get(action_id, tenant=tenant)  # 404 if there is none
            raise ClaimLostError(
                f"action {action_id} is {current.state.value}, not claimable now; pass the "
                "holder's --claim, or wait until its claim times out",
                action_id=action_id,
            )
        claim = taken[0].claim or ""
    body = key_values(detail or [], "--detail")
    _print(env.deliveries.ack(tenant, action_id, claim, status.value, body), as_json)


@app.command()
def retry(ctx: typer.Context, action_id: int, who: AsOpt, as_json: JsonOpt = False) -> None:
    """Put a dead (or failed) action back to ready, attempts from zero."""
    env = _env(ctx)
    d = env.deliveries.retry(env.settings.tenant, action_id, actor=Actor.human(who))
    _print(d, as_json)


@app.command()
def cancel(
    ctx: typer.Context,
    action_id: int,
    who: AsOpt,
    reason: Annotated[str, typer.Option(help="Why it is given up (kept in the trail).")],
    as_json: JsonOpt = False,
) -> None:
    """Give up on an action that is not delivered nor in flight."""
    env = _env(ctx)
    d = env.deliveries.cancel(env.settings.tenant, action_id, actor=Actor.human(who), reason=reason)
    _print(d, as_json)
