"""The `copilot` CLI as a user runs it: real processes, exit codes, output."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import cli
from tests.support.services import redis_url


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        result = cli(tmp_path, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
    assert (tmp_path / "copilot.db").exists()


def test_the_sample_trail_runs_and_rerunning_it_is_safe(tmp_path: Path) -> None:
    first = cli(tmp_path, "audit", "sample")
    assert first.returncode == 0, first.stderr
    assert "OK 390 entries" in first.stdout
    assert "FAIL seq=" in first.stdout  # the tampered copy is caught
    second = cli(tmp_path, "audit", "sample")
    assert second.returncode == 0, second.stderr
    assert "0 / 389" in second.stdout  # every event was already there: idempotency keys
    assert cli(tmp_path, "audit", "verify").stdout.strip() == "OK 390 entries"


def test_verify_names_the_tampered_entry_and_exits_1(tmp_path: Path) -> None:
    assert cli(tmp_path, "audit", "sample").returncode == 0
    db = sqlite3.connect(tmp_path / "copilot.db")
    db.execute("DROP TRIGGER audit_entries_no_update")
    db.execute("UPDATE audit_entries SET body = CAST('{}' AS BLOB) WHERE seq = 42")
    db.commit()
    db.close()
    result = cli(tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL seq=42 hash_mismatch")
    as_json = json.loads(cli(tmp_path, "audit", "verify", "--json").stdout)
    assert as_json[0]["bad_seq"] == 42 and as_json[0]["reason"] == "hash_mismatch"


def test_export_is_deterministic_and_verifies_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "audit", "sample").returncode == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(home, "audit", "export", str(a)).returncode == 0
    assert cli(home, "audit", "export", str(b)).returncode == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    elsewhere = tmp_path / "auditor"  # no database, no key: the bundle alone
    result = cli(elsewhere, "audit", "verify", "--bundle", str(a))
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "OK 390 entries")
    assert "payloads withheld" in result.stdout
    assert not (elsewhere / "copilot.db").exists()
    pinned = cli(
        elsewhere,
        "audit",
        "verify",
        "--bundle",
        str(a),
        "--key",
        str(home / "keys" / "checkpoint.pem.pub"),
    )
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr


def test_payloads_leave_only_with_include_payloads_and_that_is_audited(tmp_path: Path) -> None:
    """By default no erasable payload (emails, message bodies) is in the bundle, which still
    verifies; `--include-payloads` puts them in after recording who asked, in the chain."""
    home = tmp_path / "home"
    assert cli(home, "audit", "sample").returncode == 0
    plain, full = tmp_path / "plain", tmp_path / "full"
    assert cli(home, "audit", "export", str(plain)).returncode == 0
    assert json.loads((plain / "manifest.json").read_text())["payloads"] == "withheld"
    assert not list(plain.rglob("payloads.jsonl"))
    out = cli(home, "audit", "export", str(full), "--include-payloads", "--as", "dpo@acme")
    assert out.returncode == 0 and "payloads: included" in out.stdout
    (payloads,) = full.rglob("payloads.jsonl")
    held = [json.loads(line)["payload"] for line in payloads.read_text().splitlines()]
    assert len(held) > 40 and "@example.com" in held[0]
    text = "".join(p.read_text() for p in plain.rglob("*.jsonl"))
    assert not [p for p in held if p in text or json.dumps(p)[1:-1] in text]
    verified = cli(tmp_path / "auditor", "audit", "verify", "--bundle", str(full))
    assert verified.returncode == 0 and verified.stdout.strip() == "OK 391 entries"
    last = json.loads(cli(home, "audit", "tail", "-n", "1", "--json").stdout)
    assert last["event_type"] == "audit.exported" and last["actor"]["id"] == "dpo@acme"
    assert last["data"]["payloads"] == "included"


def test_a_bundle_signed_by_another_key_fails_when_the_key_is_pinned(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli(one, "audit", "sample").returncode == 0
    assert cli(two, "audit", "sample").returncode == 0
    result = cli(
        one,
        "audit",
        "verify",
        "--bundle",
        str(two / "export"),
        "--key",
        str(one / "keys" / "checkpoint.pem.pub"),
    )
    assert result.returncode == 1
    assert "unknown_key" in result.stdout


def test_a_path_that_is_not_a_bundle_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "audit", "verify", "--bundle", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "audit.bundle_invalid" in result.stderr


def test_erase_tail_and_checkpoint(tmp_path: Path) -> None:
    assert cli(tmp_path, "audit", "sample").returncode == 0
    erased = cli(tmp_path, "audit", "erase", "--subject", "acct-003", "--as", "dpo@acme")
    assert erased.returncode == 0 and "tombstone seq=391" in erased.stdout
    assert "nothing to erase" in cli(tmp_path, "audit", "erase", "--subject", "acct-003").stdout
    tail = cli(tmp_path, "audit", "tail", "-n", "2", "--json")
    last = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["seq"] for e in last] == [390, 391]
    assert last[-1]["event_type"] == "audit.erased" and last[-1]["actor"]["id"] == "dpo@acme"
    signed = cli(tmp_path, "audit", "checkpoint")
    assert signed.returncode == 0 and "size=391" in signed.stdout
    assert cli(tmp_path, "audit", "verify").stdout.strip() == "OK 391 entries"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COPILOT_LLM": "gpt-4"}, "COPILOT_LLM"),
        ({"COPILOT_DATABASE_URL": "mysql://localhost/x"}, "unsupported database"),
        ({"COPILOT_DATABASE_URL": "not a url"}, "COPILOT_DATABASE_URL"),
        ({"COPILOT_DATABASE_URL": "postgresql+psycopg2://x@127.0.0.1:1/x"}, "psycopg 3 driver"),
    ],
)
def test_bad_configuration_exits_2_with_the_setting_named(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = cli(tmp_path, "audit", "verify", **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_a_configuration_error(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "db", "upgrade", COPILOT_DATABASE_URL="postgresql+psycopg://x@127.0.0.1:1/x"
    )
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr


def test_unknown_commands_are_usage_errors(tmp_path: Path) -> None:
    assert cli(tmp_path, "audit", "frobnicate").returncode == 2


def test_the_sample_trail_and_verify_work_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    result = cli(tmp_path, "audit", "sample", COPILOT_DATABASE_URL=pg_url)
    assert result.returncode == 0, result.stdout + result.stderr
    verify = cli(tmp_path, "audit", "verify", COPILOT_DATABASE_URL=pg_url)
    assert verify.stdout.strip() == "OK 390 entries"


def test_a_bundle_must_match_its_manifest_and_carry_a_signature(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "audit", "sample").returncode == 0
    bundle = home / "export"
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["streams"]["default"]["entries"] = 999
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    mismatch = cli(tmp_path / "a", "audit", "verify", "--bundle", str(bundle))
    assert mismatch.returncode == 1 and "manifest_mismatch" in mismatch.stdout
    manifest["streams"]["default"]["entries"] = 390
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    next(bundle.glob("streams/*/checkpoints.jsonl")).write_text("")
    unsigned = cli(tmp_path / "a", "audit", "verify", "--bundle", str(bundle))
    assert unsigned.returncode == 1 and "unsigned" in unsigned.stdout
    missing = cli(tmp_path / "a", "audit", "verify", "--bundle", str(bundle), "--stream", "nope")
    assert missing.returncode == 2 and "no stream 'nope'" in missing.stderr


def test_verifying_never_creates_a_signing_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "audit", "sample").returncode == 0
    (home / "keys" / "checkpoint.pem").unlink()  # an auditor's copy: public key only
    result = cli(home, "audit", "verify")
    assert result.stdout.strip() == "OK 390 entries"  # the .pub is trusted
    assert not (home / "keys" / "checkpoint.pem").exists()


def test_the_demo_runs_every_workflow_on_a_worker_and_rerunning_is_safe(tmp_path: Path) -> None:
    """`copilot demo` on the embedded defaults: a real worker process, review, verification."""
    first = cli(tmp_path, "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "180 runs over 60 accounts" in first.stdout and "still pending" in first.stdout
    assert "OK " in first.stdout and "FAIL" not in first.stdout
    pending = json.loads(cli(tmp_path, "approvals", "list", "--json").stdout)
    assert pending == []  # the demo reviewer decided everything
    assert "onboarding journey" in first.stdout  # and the placements were exercised:
    report = cli(tmp_path, "report", "--outcome", "onboarding.activated", "--json",
                 COPILOT_PLACEMENT_MODULES="copilot.placements.onboarding")  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = {(r["placement"], r["segment"]): r for r in json.loads(report.stdout)["placements"]}
    step = rows["onboarding.next_step", None]
    assert step["holdout"] > 0 and step["impressions"] > 0 and step["lift"] is not None
    assert ("onboarding.next_step", "trial") in rows  # per segment (the plan)
    second = cli(tmp_path, "demo", "--no-review")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "approvals are waiting for a person" in second.stdout
    waiting = json.loads(cli(tmp_path, "approvals", "list", "--json").stdout)
    assert waiting and all(r["status"] == "pending" for r in waiting)
    assert cli(tmp_path, "audit", "verify").stdout.startswith("OK ")
    erase_then_verify(tmp_path, waiting[0]["subject_id"])


def erase_then_verify(home: Path, subject: str, **env: str) -> None:
    """Erasure and a retention purge leave a trail that still verifies, from the CLI."""
    erased = cli(home, "subjects", "erase", subject, "--json", **env)
    assert erased.returncode == 0, erased.stderr
    counts = json.loads(erased.stdout)["erased"]
    assert counts["signals"] > 0 and counts["audit_payloads"] > 0
    purged = cli(home, "retention", "run", "--json", **env)
    assert purged.returncode == 0, purged.stderr
    verify = cli(home, "audit", "verify", **env)
    assert verify.returncode == 0 and verify.stdout.startswith("OK "), verify.stdout
    again = cli(home, "run", "account_health", "--subject", subject, "--inline", "--json", **env)
    assert json.loads(again.stdout)["state"] == "skipped"  # the suppression record holds


def test_the_demo_works_the_same_on_redis_and_postgresql(tmp_path: Path, pg_url: str) -> None:
    queue = f"demo-{tmp_path.name}"[:60]
    env = {"COPILOT_DATABASE_URL": pg_url, "COPILOT_BROKER_URL": redis_url(),
           "COPILOT_QUEUE": queue}  # fmt: skip
    result = cli(tmp_path, "demo", "--accounts", "20", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "60 runs over 20 accounts" in result.stdout and "still pending" in result.stdout
    assert cli(tmp_path, "audit", "verify", **env).stdout.startswith("OK ")
    erase_then_verify(tmp_path, "acct-001", **env)
