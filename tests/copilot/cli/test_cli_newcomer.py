"""What a newcomer hit at the command line (issue 19, points 3, 8 and 10), as processes."""

from __future__ import annotations

import json
from pathlib import Path

from audit import Actor, AuditEvent
from copilot.engine.runs import RunState
from tests.support.cli import FLOWS, cli, prepared
from tests.support.runtime import build_runtime


def test_point3_export_signs_first_or_refuses_and_a_missing_key_file_is_a_clear_error(
    tmp_path: Path,
) -> None:
    """Given a fresh deployment (no signing key yet) with a trail: a plain export refuses,
    naming --signed; --signed creates the key, signs and writes a bundle that verifies;
    `verify --key` naming a missing file is audit.signing_key, exit 2, no traceback."""
    home = prepared(tmp_path / "home")
    rt = build_runtime(f"sqlite:///{home}/copilot.db", home, woken=[])
    rt.audit.append("default", [AuditEvent(event_type="note", actor=Actor.human("li"))])
    rt.close()
    refused = cli(home, "audit", "export", str(tmp_path / "a"))
    assert refused.returncode == 2 and "[audit.signing_key]" in refused.stderr
    assert "--signed" in refused.stderr and not (tmp_path / "a").exists()
    signed = cli(home, "audit", "export", str(tmp_path / "b"), "--signed")
    assert signed.returncode == 0, signed.stderr
    assert "verify offline with" in signed.stdout and (home / "keys" / "checkpoint.pem").exists()
    verified = cli(tmp_path / "auditor", "audit", "verify", "--bundle", str(tmp_path / "b"))
    assert (verified.returncode, verified.stdout.splitlines()[0]) == (0, "OK 1 entries")
    missing = tmp_path / "nope.pub"
    keyed = cli(tmp_path / "auditor", "audit", "verify", "--bundle", str(tmp_path / "b"),
                "--key", str(missing))  # fmt: skip
    assert keyed.returncode == 2 and "Traceback" not in keyed.stderr
    assert f"error [audit.signing_key]: cannot read the public key {missing}" in keyed.stderr


def test_point8_short_ids_whole_ids_failed_runs_and_the_missing_commands(tmp_path: Path) -> None:
    """Prefixes work (ambiguous ones are id.ambiguous, exit 2); tables keep whole ids at 80
    columns; a failed inline run exits 1; workflows list, signals put, runs resume|cancel."""
    home = prepared(tmp_path)
    rt = build_runtime(f"sqlite:///{home}/copilot.db", home, woken=[])
    waiting = rt.runner.run_inline(rt.runner.trigger("pausing", "acct-1", tenant="default")[0].id)
    assert waiting.state == RunState.WAITING
    others = [rt.runner.trigger("five_steps", f"a-{i}", tenant="default")[0].id for i in range(17)]
    rt.close()
    # 17 more ids over 16 hex digits: two share a first character (pigeonhole).
    firsts = [i[0] for i in [*others, waiting.id]]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    ambiguous = cli(home, "runs", "show", shared, **FLOWS)
    assert ambiguous.returncode == 2 and "[id.ambiguous]" in ambiguous.stderr
    listed = cli(home, "runs", "list", "--limit", "3", **{**FLOWS, "COLUMNS": "80"})
    assert all(len(line) <= 80 for line in listed.stdout.splitlines())
    assert others[-1] in listed.stdout  # whole, not cut to 8 characters
    resumed = cli(home, "runs", "resume", waiting.id[:8], "--as", "maya", "--set",
                  "approved=true", "--json", **FLOWS)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "queued"
    cancelled = cli(home, "runs", "cancel", others[0][:10], "--as", "maya", "--reason", "dup",
                    **FLOWS)  # fmt: skip
    assert cancelled.returncode == 0 and cancelled.stdout.split() == [
        others[0],
        "five_steps@1",
        "cancelled",
    ]
    failed = cli(home, "run", "failing", "--subject", "acct-2", "--inline", **FLOWS)
    assert failed.returncode == 1 and "[run.step_failed]" in failed.stderr
    names = {
        w["name"] for w in json.loads(cli(home, "workflows", "list", "--json", **FLOWS).stdout)
    }
    assert {"five_steps", "pausing", "failing", "summarize"} <= names
    put = cli(home, "signals", "put", "--subject", "acct-3", "--set", "trial_nps=41", **FLOWS)
    assert put.returncode == 0 and "accepted 1 values for acct-3" in put.stdout


def test_point10_postgres_urls_are_accepted_and_a_server_that_is_down_is_named(
    tmp_path: Path,
) -> None:
    """`postgres://` is PostgreSQL (not "unsupported database 'postgres'"), and a server
    that does not answer gets "cannot reach the database", not "run copilot db upgrade"."""
    down = cli(tmp_path, "runs", "list", COPILOT_DATABASE_URL="postgres://app@127.0.0.1:1/x")
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert "cannot reach the database at postgresql+psycopg://app@127.0.0.1:1/x" in down.stderr
    assert "db upgrade" not in down.stderr and "unsupported" not in down.stderr
    unmigrated = cli(tmp_path, "runs", "list")  # an embedded database with no schema yet
    assert unmigrated.returncode == 2 and "no database file at " in unmigrated.stderr
    assert "run `copilot db upgrade` to create it there" in unmigrated.stderr
