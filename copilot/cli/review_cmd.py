"""`copilot review build|show|prune`: the weekly review, on demand and from the stored ones."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from copilot.cli.context import Env
from copilot.errors import CopilotError
from copilot.measure.review.store import load

app = typer.Typer(help="The weekly review: trends, cohorts, funnel, pruning.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the review's JSON.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


@app.command()
def build(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Build and store this tenant's review of the last complete week (what beat does weekly)."""
    env = _env(ctx)
    review = env.build_review(env.settings.tenant)
    typer.echo(review.model_dump_json(indent=2) if as_json else review.headline)


@app.command()
def show(
    ctx: typer.Context,
    week: Annotated[
        str | None, typer.Option(help="The week's Monday (ISO date); default latest.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A stored review (old reviews stay readable)."""
    env = _env(ctx)
    review = load(env.engine, env.settings.tenant, week)
    if review is None:
        raise CopilotError(f"no stored review for week {week or '(latest)'}; run `copilot review build`",
                           code="review.not_found")  # fmt: skip
    typer.echo(review.model_dump_json(indent=2) if as_json else review.headline)


@app.command()
def prune(
    ctx: typer.Context,
    week: Annotated[str | None, typer.Option(help="A stored week; default: build one now.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Prune candidates and keeps, with the evidence: the review's `prune` list."""
    env = _env(ctx)
    review = load(env.engine, env.settings.tenant, week) if week else None
    if week and review is None:
        raise CopilotError(f"no stored review for week {week}", code="review.not_found")
    review = review or env.build_review(env.settings.tenant)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in review.prune], indent=2))
        return
    for i in review.prune:
        typer.echo(f"{i.verdict}\t{i.kind}\t{i.name}\t{i.why}")
