"""API keys: stored hashed, bound to a tenant and roles, revocable, audited; the CLI prints one once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from audit import Actor, Query, SqlAuditStore
from copilot.db.tables import api_keys
from copilot.errors import ConfigError, KeyNotFoundError
from copilot.governance.keys import KeyStore
from tests.support.cli import cli

ADMIN = Actor.human("ops")


@pytest.fixture
def keys(engine: Engine) -> KeyStore:
    return KeyStore(engine, SqlAuditStore(engine))


def test_a_key_is_stored_only_as_the_hash_of_its_secret(keys: KeyStore, engine: Engine) -> None:
    key, token = keys.create(tenant="acme", roles=["reviewer", "app"], name="maya", actor=ADMIN)
    assert token.startswith(f"cpk_{key.id}_") and key.roles == ("app", "reviewer")
    secret = token.split("_", 2)[2]
    with engine.connect() as conn:
        row = conn.execute(select(api_keys)).one()
    assert secret not in json.dumps([str(v) for v in row])
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    found = keys.authenticate(token)
    assert found is not None
    assert (found.tenant, found.name, found.roles) == ("acme", "maya", {"app", "reviewer"})


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: t.replace("cpk_", "xyz_"),  # wrong prefix
        lambda t: "cpk_" + "0" * 16 + "_" + t.split("_", 2)[2],  # unknown id
        lambda t: t.split("_", 2)[0] + "_" + t.split("_", 2)[1],  # no secret
        lambda t: "",
    ],
)
def test_anything_but_the_exact_token_is_refused(keys: KeyStore, mangle) -> None:  # type: ignore[no-untyped-def]
    _, token = keys.create(tenant="acme", roles=["app"], actor=ADMIN)
    assert keys.authenticate(mangle(token)) is None


def test_revocation_is_immediate_idempotent_tenant_scoped_and_audited(keys: KeyStore) -> None:
    key, token = keys.create(tenant="acme", roles=["app"], name="crm", actor=ADMIN)
    with pytest.raises(KeyNotFoundError):
        keys.revoke(key.id, tenant="globex", actor=ADMIN)  # another tenant's key: not found
    assert keys.authenticate(token) is not None
    first = keys.revoke(key.id, tenant="acme", actor=ADMIN)
    again = keys.revoke(key.id, tenant="acme", actor=ADMIN)
    assert first.revoked_at is not None and again.revoked_at == first.revoked_at
    assert keys.authenticate(token) is None
    events = keys.audit.query("acme", Query())
    assert [(e.event_type, e.actor.id, e.data["key_id"]) for e in events] == [
        ("key.created", "ops", key.id),
        ("key.revoked", "ops", key.id),
    ]
    assert token.split("_", 2)[2] not in json.dumps([e.body for e in events])


def test_keys_list_in_pages_within_the_tenant(keys: KeyStore) -> None:
    made = {keys.create(tenant="acme", roles=["auditor"], actor=ADMIN)[0].id for _ in range(5)}
    keys.create(tenant="globex", roles=["auditor"], actor=ADMIN)
    seen, cursor = [], None
    while True:
        page, cursor = keys.list("acme", cursor=cursor, limit=2)
        seen += [k.id for k in page]
        if cursor is None:
            break
    assert seen == sorted(made)


@pytest.mark.parametrize(
    ("tenant", "roles", "name"),
    [
        ("acme", ["root"], None),
        ("acme", [], None),
        ("", ["app"], None),
        ("a cme", ["app"], None),
        ("acme", ["app"], "x" * 201),
        ("acme", ["app"], "tab\there"),
    ],
)
def test_bad_keys_are_refused_with_key_invalid(
    keys: KeyStore, tenant: str, roles: list[str], name: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        keys.create(tenant=tenant, roles=roles, name=name, actor=ADMIN)
    assert caught.value.code == "key.invalid"


def test_copilot_keys_create_prints_a_working_key_once(tmp_path: Path) -> None:
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    made = cli(
        tmp_path, "keys", "create", "--tenant", "acme", "--role", "reviewer", "--name", "maya"
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("cpk_") and len(made.stdout.splitlines()) == 1
    assert "only time" in made.stderr
    listed = json.loads(cli(tmp_path, "keys", "list", "--tenant", "acme", "--json").stdout)
    assert [(k["name"], k["roles"]) for k in listed] == [("maya", ["reviewer"])]
    assert token.split("_", 2)[2] not in json.dumps(listed)
    bad = cli(tmp_path, "keys", "create", "--tenant", "acme", "--role", "root")
    assert bad.returncode == 2 and "key.invalid" in bad.stderr
