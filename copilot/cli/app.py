"""Root of the `copilot` CLI: exit 0 success, 1 a negative result, 2 usage or configuration."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from audit import CopilotError
from copilot.cli import (
    actions_cmd,
    api_cmd,
    approvals_cmd,
    audit_cmd,
    demo,
    learn_cmd,
    measure_cmd,
    retention_cmd,
    review_cmd,
    runs_cmd,
    schedules_cmd,
    signals_cmd,
    subjects_cmd,
    workflows_cmd,
)
from copilot.cli.context import Env
from copilot.db.engines import empty_sqlite_file, explain, upgrade
from copilot.errors import ConfigError
from copilot.settings import Settings, shown_url

# Errors that mean "you asked wrongly or the setup is wrong" (exit 2), not "the answer is no".
USAGE_CODES = frozenset(
    {
        "audit.bundle_invalid",
        "audit.signing_key",
        "run.invalid_inputs",
        "workflow.unknown",
        "workflow.invalid",
        "approval.invalid_payload",
        "key.invalid",
        "experiment.invalid",
        "outcome.undeclared",
        "trigger.invalid",
        "id.ambiguous",
        "signal.undeclared",
        "signal.invalid",
        "learn.bad_evaluation",
        "learn.embedding",
    }
)

app = typer.Typer(
    help="copilot: agentic workflows behind approval gates, on a tamper-evident trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(runs_cmd.runs_app, name="runs")
app.add_typer(approvals_cmd.app, name="approvals")
app.add_typer(actions_cmd.app, name="actions")
app.add_typer(subjects_cmd.app, name="subjects")
app.add_typer(signals_cmd.app, name="signals")
app.add_typer(workflows_cmd.app, name="workflows")
app.add_typer(schedules_cmd.app, name="schedules")
app.add_typer(retention_cmd.app, name="retention")
app.add_typer(learn_cmd.app, name="learn")
app.add_typer(measure_cmd.experiment_app, name="experiment")
app.command(name="report")(measure_cmd.report)
app.add_typer(review_cmd.app, name="review")
app.add_typer(api_cmd.keys_app, name="keys")
app.command(name="api")(api_cmd.api)
app.command(name="demo")(demo.demo)
app.command(name="run")(runs_cmd.run)
app.command(name="worker")(runs_cmd.worker)
app.command(name="sweep")(runs_cmd.sweep)


@app.callback()
def _root(ctx: typer.Context) -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "COPILOT_" + str(first["loc"][0]).upper() if first["loc"] else "COPILOT_*"
        raise ConfigError(f"{name}: {first['msg']}") from exc
    ctx.obj = Env(settings)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply database migrations (idempotent)."""
    env = ctx.obj
    assert isinstance(env, Env)
    url = env.settings.database_url_resolved
    created = empty_sqlite_file(url)  # before the engine opens (and so makes) it
    upgrade(env.engine)
    if created is not None:
        typer.echo(f"created the database file {created}")
    typer.echo(f"database at {shown_url(url)} is up to date")


def main() -> None:
    """Console entry point: map errors to exit codes in one place.

    Click (standalone) exits 2 on usage errors and with `typer.Exit`'s code; our errors
    exit 2 when the usage or configuration is wrong, 1 when the answer is negative.
    """
    try:
        app()
    except CopilotError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        usage = isinstance(exc, ConfigError) or exc.code in USAGE_CODES
        sys.exit(2 if usage else 1)
    except DBAPIError as exc:  # unreachable, or a schema older than this code
        url = _database_url()
        typer.echo(f"error [config.database]: {explain(exc, url)}", err=True)
        sys.exit(2)


def _database_url() -> str:
    try:
        return Settings().database_url_resolved
    except ValidationError:
        return "COPILOT_DATABASE_URL"
