"""`copilot api` (serve the HTTP API with uvicorn) and `copilot keys create|list|revoke`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from audit import Actor
from copilot.cli.context import Env

keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant the key belongs to.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def api(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (`/v1`, `/ui`, `/healthz`, `/metrics`, `/openapi.json`) with uvicorn."""
    import uvicorn

    # Refuse an unreachable database or parts that cannot meet before serving anything.
    for line in _env(ctx).check_startup():
        typer.echo(line, err=True)
    _env(ctx).close()  # the server processes build their own
    uvicorn.run(
        "copilot.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        # Forwarded headers are the app's to judge, from COPILOT_TRUSTED_PROXIES only
        # (copilot.api.transport); uvicorn's own default would trust 127.0.0.1.
        proxy_headers=False,
    )


@keys_app.command("create")
def create(
    ctx: typer.Context,
    tenant: TenantOpt,
    role: Annotated[
        list[str], typer.Option("--role", help="app, reviewer, auditor or admin; repeatable.")
    ],
    name: Annotated[
        str | None,
        typer.Option(help="Who holds it: the identity runs and decisions record."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    key, token = _env(ctx).keys.create(
        tenant=tenant, roles=role, name=name, actor=Actor.human("cli")
    )
    if as_json:
        typer.echo(json.dumps({"key": key.model_dump(), "token": token}, indent=2))
        return
    typer.echo(token)
    typer.echo(
        f"key {key.id} for tenant {key.tenant} as {key.name} with roles {','.join(key.roles)}; "
        "this is the only time the key is shown",
        err=True,
    )


@keys_app.command("list")
def list_keys(ctx: typer.Context, tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """The tenant's keys (never their secrets)."""
    env = _env(ctx)
    cursor: str | None = None
    found = []
    while True:
        page, cursor = env.keys.list(tenant, cursor=cursor, limit=200)
        found += page
        if cursor is None:
            break
    if as_json:
        typer.echo(json.dumps([k.model_dump() for k in found], indent=2))
        return
    for k in found:
        state = "revoked" if k.revoked_at else "active"
        typer.echo(f"{k.id} {k.name} {','.join(k.roles)} {state}")


@keys_app.command("revoke")
def revoke(ctx: typer.Context, key_id: str, tenant: TenantOpt) -> None:
    """Revoke a key; it stops authenticating at once."""
    key = _env(ctx).keys.revoke(key_id, tenant=tenant, actor=Actor.human("cli"))
    typer.echo(f"revoked {key.id} ({key.name})")
