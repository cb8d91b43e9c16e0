"""`copilot experiment plan` and `copilot report`: plan a holdout test, then measure it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.context import Env
from copilot.cli.output import console
from copilot.measure.evidence.sequential import DEFAULT_HORIZON
from copilot.measure.experiments import Method, plan
from copilot.measure.report.build import build_report
from copilot.measure.report.model import PLACEMENT_COLUMNS, Report
from copilot.measure.rollout import paused_rollouts

experiment_app = typer.Typer(help="Plan experiments against a holdout.", no_args_is_help=True)
out = console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@experiment_app.command("plan")
def plan_(
    baseline: Annotated[float, typer.Option(help="The outcome's rate today, e.g. 0.10.")],
    mde: Annotated[
        float, typer.Option(help="Smallest absolute change worth detecting, e.g. 0.02.")
    ],
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance of detecting a true change of --mde.")] = 0.8,
    holdout: Annotated[float, typer.Option(help="Share of subjects held out.")] = 0.1,
    daily: Annotated[float | None, typer.Option(help="Eligible subjects per day.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Subjects per arm, in total, and days needed to detect --mde from --baseline."""
    p = plan(baseline, mde, alpha=alpha, power=power, holdout=holdout, daily=daily)
    if as_json:
        typer.echo(p.model_dump_json(indent=2))
        return
    days = f", {p.days:.1f} days at {p.daily:g} eligible subjects a day" if p.days else ""
    typer.echo(
        f"{p.treated} treated + {p.holdout} holdout = {p.total} subjects{days} "
        f"to detect {p.baseline:.2%} → {p.target:.2%} (alpha {p.alpha:g}, power {p.power:.0%}, "
        f"{p.holdout_fraction:.0%} held out)"
    )


def report(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's runs.")] = None,
    outcome: Annotated[str | None, typer.Option(help="The primary outcome for the lift.")] = None,
    segment: Annotated[str | None, typer.Option(help="A run input or signal to cut by.")] = None,
    window_days: Annotated[
        float | None, typer.Option(help="Count outcomes this many days after exposure.")
    ] = None,
    method: Annotated[str, typer.Option(help="newcombe, wald or bootstrap.")] = "newcombe",
    alpha: Annotated[float, typer.Option()] = 0.05,
    max_rejection_rate: Annotated[
        float, typer.Option(help="Rejection-rate guardrail ceiling.")
    ] = 0.3,
    html: Annotated[Path | None, typer.Option(help="Write the page (with plots) here.")] = None,
    covariate: Annotated[
        str | None,
        typer.Option(help="CUPED covariate: a numeric signal (default: the outcome's pre-period)."),
    ] = None,
    horizon: Annotated[
        int,
        typer.Option(min=1, help="Planned subjects, where the anytime-valid interval is tightest."),
    ] = DEFAULT_HORIZON,
    as_json: JsonOpt = False,
) -> None:
    """Reviewer feedback, lift over the holdout, guardrails, sample ratio and segment warnings."""
    env = ctx.obj
    assert isinstance(env, Env)
    if method not in ("newcombe", "wald", "bootstrap"):
        raise typer.BadParameter("use newcombe, wald or bootstrap", param_hint="--method")
    found = build_report(
        env.engine,
        tenant=env.settings.tenant,
        outcomes=env.registry.outcomes,
        workflow=workflow,
        outcome=outcome,
        segment=segment,
        window_days=window_days,
        alpha=alpha,
        method=_method(method),
        max_rejection_rate=max_rejection_rate,
        allocations=env.allocations(),
        sources=env.comparison_sources(),
        covariate=covariate,
        horizon=horizon,
        paused=paused_rollouts(env.engine, env.settings.tenant),
        learning=env.learning_provider,
    )
    if html is not None:
        from copilot.measure.report.html import render_html  # matplotlib loads only for the page

        html.write_text(render_html(found), encoding="utf-8")
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
    else:
        _print(found)
    if html is not None and not as_json:
        typer.echo(f"wrote {html}")


def _method(name: str) -> Method:
    return "wald" if name == "wald" else "bootstrap" if name == "bootstrap" else "newcombe"


def _print(r: Report) -> None:
    out.print(f"[bold]{r.tenant}[/]: {r.subjects} subjects ({r.treated} treated, "
              f"{r.holdout} holdout)")  # fmt: skip
    if r.lift is not None:
        x = r.lift.lift
        out.print(
            f"lift on {r.lift.outcome}: {x.treated_rate:.2%} vs {x.holdout_rate:.2%} = "
            f"{x.difference * 100:+.2f} pts [{x.low * 100:+.2f}, {x.high * 100:+.2f}] "
            f"p={x.p_value:.3g}" + (f", MDE {x.mde * 100:.2f} pts" if x.mde else "")
        )
    for w in r.warnings:
        out.print(f"[yellow]warning[/] {w.code}: {w.message}", highlight=False)
    for e in r.evidence:
        line = f"{e.kind} {e.name}: SRM p={e.srm.p_value:.3g}" + (
            " MISMATCH" if e.srm.mismatch else ""
        )
        if e.anytime is not None:
            a = e.anytime
            line += f"; anytime-valid [{a.low * 100:+.2f}, {a.high * 100:+.2f}] pts"
        if e.cuped is not None and e.cuped.applied:
            cu = e.cuped
            line += (
                f"; CUPED ({cu.covariate}) {cu.difference * 100:+.2f} pts "
                f"[{cu.low * 100:+.2f}, {cu.high * 100:+.2f}], variance -{cu.variance_reduction:.0%}"
            )
        elif e.cuped is not None:
            line += f"; CUPED not applied ({e.cuped.reason})"
        out.print(line + f". Trust {e.trust}", highlight=False)
    checks = r.guardrails + [c for s in r.segments for c in s.guardrails]
    if checks:
        table = Table("guardrail", "scope", "rule", "threshold", "value", "status")
        for c in checks:
            table.add_row(c.metric, c.scope, c.rule, f"{c.threshold:g}", f"{c.value:.2%}", c.status)
        out.print(table)
    if r.groups:
        table = Table("workflow", "segment", "level", "runs", "decided", "accepted", "edited",
                      "rejected", "median time", "exec. failed", "shadow")  # fmt: skip
        for g in r.groups:
            table.add_row(
                g.workflow, g.segment, g.level, str(g.runs), str(g.decided),
                *(f"{v:.0%}" if v is not None else "-"
                  for v in (g.acceptance_rate, g.edit_rate, g.rejection_rate)),
                f"{g.median_seconds_to_decision:.0f} s" if g.median_seconds_to_decision else "-",
                str(g.execution_failed),
                f"{g.shadow_agreement:.0%}" if g.shadow_agreement is not None else "-",
            )  # fmt: skip
        out.print(table)
    if r.deliveries:
        table = Table("kind", "route", "actions", "delivered", "retrying", "dead", "cancelled",
                      "failed attempts", title="delivery to the app")  # fmt: skip
        for d in r.deliveries:
            counts = (d.actions, d.delivered, d.retrying, d.dead, d.cancelled, d.failed_attempts)
            table.add_row(d.kind, d.route, *(str(v) for v in counts))
        out.print(table)
    if r.placements:
        table = Table(
            *PLACEMENT_COLUMNS, title=f"placements (lift on {r.outcome or 'no --outcome'})"
        )
        for row in r.placements:
            table.add_row(*row.cells())
        out.print(table)
    if r.funnel:
        table = Table("segment", "proposed", "accepted", "completed",
                      title="funnel per workflow / level")  # fmt: skip
        for f in r.funnel:
            table.add_row(f.segment, str(f.proposed), str(f.accepted), str(f.completed))
        out.print(table)
    if r.cohorts:
        table = Table("comparison", "cohort", "arm", "size", "retention by week",
                      title=f"cohorts by first exposure ({r.retention_outcome})")  # fmt: skip
        for co in r.cohorts:
            table.add_row(co.name, co.week, co.arm, str(co.size), co.curve)
        out.print(table)
    for learned in r.learning:
        out.print("\n".join(learned.lines()), highlight=False, markup=False)
