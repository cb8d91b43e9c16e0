"""Root of the `copilot` CLI: exit 0 success, 1 a negative result, 2 usage or configuration."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from audit import CopilotError
from copilot.cli import audit_cmd, demo
from copilot.cli.context import Env
from copilot.db import upgrade
from copilot.errors import ConfigError
from copilot.settings import Settings

app = typer.Typer(
    help="copilot: agentic workflows behind approval gates, on a tamper-evident trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_cmd.app, name="audit")
app.command(name="demo")(demo.demo)


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
    upgrade(env.engine)
    typer.echo(f"database at {env.engine.url.render_as_string(hide_password=True)} is up to date")


def main() -> None:
    """Console entry point: map errors to exit codes in one place."""
    try:
        app(standalone_mode=False)
    except CopilotError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(2 if isinstance(exc, ConfigError) or exc.code.startswith("config.") else 1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


