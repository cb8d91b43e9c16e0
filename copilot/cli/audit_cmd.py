"""`copilot audit ...`: verify, checkpoint, export, tail, erase, sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audit import Actor, AuditEvent, BundleError, Query, Verdict, export_bundle, verify_bundle
from audit.errors import SigningKeyError
from audit.export import payloads_withheld, read_manifest
from audit.signing import key_id, read_public_key
from copilot.cli import audit_sample
from copilot.cli.context import Env
from copilot.cli.output import console

app = typer.Typer(
    help="Read, verify, sign, export and erase the audit trail.", no_args_is_help=True
)
out = console()

StreamOpt = Annotated[
    str | None, typer.Option("--stream", help="One stream (tenant); default: all streams.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _env(ctx: typer.Context) -> Env:
    env = ctx.obj
    assert isinstance(env, Env)
    return env


def _streams(env: Env, stream: str | None) -> list[str]:
    return [stream] if stream else (env.audit.streams() or [env.settings.tenant])


def _print_verdicts(verdicts: list[Verdict], as_json: bool) -> None:
    if as_json:
        docs = [
            {
                "stream": v.stream,
                "ok": v.ok,
                "entries": v.entries,
                "checkpoints": v.checkpoints,
                "bad_seq": v.bad_seq,
                "reason": v.reason,
                "detail": v.detail,
                "queued": v.queued,
            }
            for v in verdicts
        ]
        typer.echo(json.dumps(docs, indent=2))
        return
    for v in verdicts:
        suffix = f" (stream {v.stream})" if len(verdicts) > 1 else ""
        typer.echo(v.line() + suffix)


@app.command()
def verify(
    ctx: typer.Context,
    stream: StreamOpt = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Verify an export bundle offline.")
    ] = None,
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", help="Trusted public key (PEM) for a bundle; repeatable."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Walk the chain; print `OK <n> entries` or `FAIL seq=<n> <reason>`; exit 1 on failure."""
    if bundle is not None:
        trusted = None
        if key:
            trusted = {}
            for k in key:
                raw = read_public_key(k)
                trusted[key_id(raw)] = raw
        verdicts = verify_bundle(bundle, trusted_keys=trusted)
        if stream:
            verdicts = [v for v in verdicts if v.stream == stream]
            if not verdicts:
                raise BundleError(f"the bundle has no stream {stream!r}", stream=stream)
    else:
        env = _env(ctx)
        # verify settles each stream first, waiting a bounded time for its chain lock
        verdicts = [env.trail.verify(s) for s in _streams(env, stream)]
    _print_verdicts(verdicts, as_json)
    if bundle is not None and not as_json and payloads_withheld(read_manifest(bundle)):
        typer.echo("erasable payloads withheld: their commitments are verified in each hash")
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


@app.command()
def checkpoint(ctx: typer.Context, stream: StreamOpt = None, as_json: JsonOpt = False) -> None:
    """Sign each stream's head (refused if it does not extend the last checkpoint)."""
    env = _env(ctx)
    cps = [env.signing_trail.checkpoint(s) for s in _streams(env, stream)]
    if as_json:
        typer.echo(json.dumps([c.model_dump() for c in cps], indent=2))
        return
    for c in cps:
        typer.echo(f"signed {c.stream} size={c.size} head={c.head} key={c.key_id}")


@app.command()
def export(
    ctx: typer.Context,
    directory: Path,
    stream: StreamOpt = None,
    include_payloads: Annotated[
        bool,
        typer.Option(
            "--include-payloads",
            help="Put the erasable payloads (personal data) in the bundle too; recorded as an "
            "`audit.exported` event in each stream first. Without it they are withheld and "
            "the bundle verifies all the same.",
        ),
    ] = False,
    actor: Annotated[str, typer.Option("--as", help="Who asked for the payloads.")] = "cli",
    signed: Annotated[
        bool,
        typer.Option(
            "--signed",
            help="Sign each stream's head first, creating the signing key "
            "(COPILOT_SIGNING_KEY_PATH) if this host has none.",
        ),
    ] = False,
    unsigned: Annotated[
        bool,
        typer.Option(
            "--unsigned",
            help="Export without signing on a host with no signing key; `verify --bundle` "
            "then reports `unsigned`.",
        ),
    ] = False,
) -> None:
    """Write an offline-verifiable bundle to DIRECTORY (erasable payloads withheld).

    The head of every stream is signed first when this host holds the signing key (or
    with --signed, which creates it); a host without one refuses unless told --unsigned,
    since an unsigned bundle fails `copilot audit verify --bundle`.
    """
    env = _env(ctx)
    trail = env.signing_trail if signed else env.trail
    if trail.signer is None and not unsigned:
        raise SigningKeyError(
            f"this host has no signing key at {env.settings.signing_key_path_resolved}, so the "
            "bundle would be unsigned and `copilot audit verify --bundle` would fail with "
            "`unsigned`; pass --signed to create the key and sign first (or --unsigned to "
            "export anyway)",
            path=str(env.settings.signing_key_path_resolved),
        )
    names = _streams(env, stream)
    if include_payloads:  # recorded before the export, so the bundle carries its own record
        for s in names:
            env.audit.append(s, [AuditEvent(
                event_type="audit.exported", actor=Actor.human(actor),
                data={"payloads": "included", "directory": directory.name},
            )])  # fmt: skip
    if trail.signer is not None:  # sign the head first, so nothing in the bundle is unsigned
        for s in names:
            trail.checkpoint(s)
    counts = export_bundle(trail, directory, [stream] if stream else None, payloads=include_payloads)
    for s, n in counts.items():
        typer.echo(f"exported {s}: {n} entries")
    held = "included" if include_payloads else "withheld (use --include-payloads to add them)"
    typer.echo(f"erasable payloads: {held}")
    if trail.signer is None:
        typer.echo("unsigned: `copilot audit verify --bundle` will report `unsigned`")
    else:
        typer.echo(f"verify offline with: copilot audit verify --bundle {directory}")


@app.command()
def tail(
    ctx: typer.Context,
    stream: StreamOpt = None,
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="How many entries.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show the last N entries of a stream."""
    env = _env(ctx)
    name = stream or env.settings.tenant
    size, _ = env.audit.head(name)
    entries = env.audit.query(name, Query(after_seq=max(0, size - n), limit=n))
    if as_json:
        for e in entries:
            typer.echo(e.model_dump_json())
        return
    table = Table("seq", "recorded_at", "actor", "event", "run", "subject", "hash", title=name)
    for e in entries:
        table.add_row(
            str(e.seq),
            e.recorded_at,
            f"{e.actor.kind.value}:{e.actor.id}",
            e.event_type,
            e.run_id or "",
            e.subject_id or "",
            e.hash[:12],
        )
    out.print(table)


@app.command()
def erase(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="The subject whose payloads to erase.")],
    stream: StreamOpt = None,
    actor: Annotated[str, typer.Option("--as", help="Who asked for the erasure.")] = "cli",
) -> None:
    """Erase a subject's personal payloads; a tombstone keeps the chain verifiable."""
    env = _env(ctx)
    total = 0
    for s in _streams(env, stream):
        result = env.trail.erase_subject(s, subject, Actor.human(actor))
        if result is not None:
            total += 1
            typer.echo(f"erased {subject} in {s}: tombstone seq={result.seq}")
    if not total:
        typer.echo(f"nothing to erase for {subject}")


app.command(name="sample")(audit_sample.sample)
