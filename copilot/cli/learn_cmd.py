"""`copilot learn train|evaluate|shadow|promote|approve|reject|check|status`: the walk stage."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from copilot.cli.context import Env

app = typer.Typer(help="Learned policies: train, evaluate, shadow, promote.", no_args_is_help=True)

Surface = Annotated[str, typer.Argument(help="The ranked surface (a placement or workflow:<name>).")]
Version = Annotated[str, typer.Argument(help="A policy version (its artifact hash prefix).")]
AsJson = Annotated[bool, typer.Option("--json")]
Admin = Annotated[str, typer.Option("--as", help="The admin deciding.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def _out(data: dict[str, Any], as_json: bool, line: str) -> None:
    typer.echo(json.dumps(data, sort_keys=True) if as_json else line)


@app.command()
def train(ctx: typer.Context, surface: Surface, as_json: AsJson = False) -> None:
    """Train on the lookback window; the version starts in shadow (the same window: a no-op)."""
    env = _env(ctx)
    v = env.learning.train(env.settings.tenant, surface)
    _out(v.model_dump(), as_json, f"{surface}@{v.version} {v.state} hash={v.hash} n={v.n_train}")


@app.command()
def evaluate(ctx: typer.Context, surface: Surface, version: Version, as_json: AsJson = False) -> None:
    """Off-policy estimates of a version against what serves now (IPS, SNIPS, DR, per segment)."""
    env = _env(ctx)
    document, digest = env.learning.evaluate(env.settings.tenant, surface, version)
    if as_json:
        typer.echo(json.dumps({"evidence_hash": digest, **document}, sort_keys=True))
        return
    for side in ("candidate", "current"):
        for name, e in document[side]["estimates"].items():
            typer.echo(f"{side}\t{name}\t{e['value']:.4f}\t[{e['low']:.4f}, {e['high']:.4f}]"
                       f"\tess={e['ess']:.0f}\tmax_w={e['max_weight']:.2f}")  # fmt: skip
    d = document["difference"]
    typer.echo(f"difference\t{d['difference']:+.4f}\t[{d['low']:+.4f}, {d['high']:+.4f}]")
    for s in document["segments"]:
        typer.echo(f"segment {s['segment']}\t{s['difference']:+.4f}\t[{s['low']:+.4f}, "
                   f"{s['high']:+.4f}]{'  HARMED' if s['harmed'] else ''}")  # fmt: skip
    typer.echo(f"verdict\t{document['verdict']}\tevidence={digest}")


@app.command()
def shadow(ctx: typer.Context, surface: Surface, as_json: AsJson = False) -> None:
    """The shadow version's agreement with the policy that acted."""
    env = _env(ctx)
    status = env.learning.status(env.settings.tenant, surface)
    s = status["shadow"]
    line = ("no shadow version" if s is None else
            f"{surface}@{s['version']} scored {s['scored']} decisions, agreed on {s['agreed']}"
            + (f" ({s['agreement']:.1%})" if s["agreement"] is not None else ""))  # fmt: skip
    _out(s or {}, as_json, line)


@app.command()
def promote(ctx: typer.Context, surface: Surface, version: Version, admin: Admin,
            as_json: AsJson = False) -> None:  # fmt: skip
    """Request promotion: refused with a code unless the evidence clears; else two admins decide."""
    env = _env(ctx)
    req = env.learning.request_promotion(env.settings.tenant, surface, version, requested_by=admin)
    _out(req.model_dump(mode="json"), as_json,
         f"approval {req.id} pending: {req.required_n} admins decide "
         f"(evidence {req.payload['evidence_hash']})")  # fmt: skip


@app.command()
def approve(ctx: typer.Context, approval_id: str, admin: Admin, as_json: AsJson = False) -> None:
    """One admin's approval of a promotion (the version goes live at the second)."""
    env = _env(ctx)
    req = env.learning.promotions.decide(approval_id, admin=admin, roles={"admin"}, approve=True,
                                         tenant=env.settings.tenant)  # fmt: skip
    _out(req.model_dump(mode="json"), as_json, f"approval {req.id} {req.status}")


@app.command()
def reject(ctx: typer.Context, approval_id: str, admin: Admin,
           reason: Annotated[str, typer.Option("--reason")], as_json: AsJson = False) -> None:  # fmt: skip
    """An admin's rejection of a promotion, with its reason."""
    env = _env(ctx)
    req = env.learning.promotions.decide(approval_id, admin=admin, roles={"admin"}, approve=False,
                                         reason=reason, tenant=env.settings.tenant)  # fmt: skip
    _out(req.model_dump(mode="json"), as_json, f"approval {req.id} {req.status}")


@app.command()
def check(ctx: typer.Context, surface: Surface, as_json: AsJson = False) -> None:
    """The live version's guardrails against the holdout; a breach demotes it to the rules."""
    env = _env(ctx)
    checks = env.learning.check_guardrails(env.settings.tenant, surface)
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in checks], sort_keys=True))
        return
    for c in checks:
        typer.echo(f"{c.metric}\t{c.rule}\t{c.value:+.4f}\t{c.status}")
    if not checks:
        typer.echo("nothing to check (no live learned version, or no guardrails declared)")


@app.command()
def status(ctx: typer.Context, surface: Surface, as_json: AsJson = False) -> None:
    """What serves, the shadow's agreement, and every version with its state."""
    env = _env(ctx)
    report = env.learning.status(env.settings.tenant, surface)
    if as_json:
        typer.echo(json.dumps(report, sort_keys=True))
        return
    typer.echo(f"{surface}: serving {report['serving']}")
    for v in report["versions"]:
        typer.echo(f"  {v['version']}\t{v['state']}\tn={v['n_train']}\thash={v['hash'][:16]}")
