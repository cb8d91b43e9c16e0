"""API keys: stored hashed, each bound to one tenant, a principal name and roles.

A key reads `cpk_<id>_<secret>`. The id is public (it names the key in lists, logs and
the audit trail); only the SHA-256 of the secret is stored, and the key itself is shown
once, when it is created. A fast hash is enough here because the secret is 256 random
bits, not a password: there is nothing to guess, so nothing for a slow hash to slow down.

Roles:
    app       trigger runs, read its runs and their explanations, ingest signals,
              set subject preferences
    reviewer  the approval queue and decisions, within its tenant
    auditor   read, verify and export the trail (read-only)
    admin     keys and policies
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from audit import Actor, AuditEvent, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import api_keys
from copilot.errors import ConfigError, KeyNameTakenError, KeyNotFoundError

Role = Literal["app", "reviewer", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
PREFIX = "cpk"
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_TENANT = re.compile(TENANT_PATTERN)
_ID = re.compile(r"^[0-9a-f]{16}$")
_BY_ID = select(api_keys).where(api_keys.c.id == bindparam("kid"))


class ApiKey(BaseModel):
    """A key as stored (never its secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    name: str
    roles: tuple[Role, ...]
    created_at: float
    revoked_at: float | None = None


class Principal(BaseModel):
    """Who is asking: the key's id, tenant, name (unique in its tenant: what the trail records
    for its acts) and roles. Its identity is the key id (`ref`), never the display name."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    tenant: str
    name: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        """Whether the key holds any of `roles`."""
        return not self.roles.isdisjoint(roles)

    @property
    def ref(self) -> str:
        """The principal as runs and approval requests record it: `key:<key id>`."""
        return principal_of(self.key_id)


def principal_of(key_id: str) -> str:
    """How a key is recorded as the principal of what its requests caused."""
    return f"key:{key_id}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: Any) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        tenant=m["tenant"],
        name=m["name"],
        roles=tuple(m["roles"].split(",")),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def check_roles(roles: Iterable[str]) -> tuple[Role, ...]:
    """The roles, validated and in canonical order; ConfigError names the bad one."""
    wanted = set(roles)
    unknown = sorted(wanted - set(ROLES))
    if unknown or not wanted:
        raise ConfigError(
            f"roles must be one or more of {', '.join(ROLES)}; got {sorted(wanted) or 'none'}",
            code="key.invalid",
        )
    return tuple(r for r in ROLES if r in wanted)


class KeyStore:
    """Create, authenticate, list and revoke API keys; creation and revocation are audited."""

    def __init__(
        self, engine: Engine, audit: TransactionalAuditLog, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock

    def create(
        self, *, tenant: str, roles: Iterable[str], name: str | None = None, actor: Actor
    ) -> tuple[ApiKey, str]:
        """A new key and its token (`cpk_<id>_<secret>`); the token is never retrievable again."""
        if not _TENANT.match(tenant):
            raise ConfigError(
                f"tenant {tenant!r} must be 1-100 letters, digits, '.', '_' or '-'",
                code="key.invalid",
            )
        checked = check_roles(roles)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        label = (name or f"key-{key_id}").strip()
        if not label or len(label) > 200 or not label.isprintable():
            raise ConfigError("a key's name must be 1-200 printable characters", code="key.invalid")
        key = ApiKey(id=key_id, tenant=tenant, name=label, roles=checked, created_at=self.clock())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(api_keys).values(
                        id=key.id,
                        tenant=key.tenant,
                        name=key.name,
                        roles=",".join(key.roles),
                        secret_sha256=_digest(secret),
                        created_at=key.created_at,
                    )
                )
                self._audit(conn, key, "key.created", actor)
        except IntegrityError as exc:  # the unique (tenant, name) index; nothing was written
            if not self._name_taken(tenant, label):
                raise
            raise KeyNameTakenError(
                f"tenant {tenant!r} already has a key named {label!r} (revoked keys keep "
                "their names, so the trail's names never stand for two keys); choose another",
                name=label,
            ) from exc
        return key, f"{PREFIX}_{key_id}_{secret}"

    def _name_taken(self, tenant: str, name: str) -> bool:
        c = api_keys.c
        with readonly(self.engine.connect()) as conn:
            found = conn.execute(select(c.id).where(c.tenant == tenant, c.name == name)).first()
        return found is not None

    def authenticate(self, token: str) -> Principal | None:
        """The principal a token stands for, or None (malformed, unknown or revoked)."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not _ID.match(key_id) or not secret:
            return None
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(_BY_ID, {"kid": key_id}).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        key = _key(row)
        return Principal(
            key_id=key.id, tenant=key.tenant, name=key.name, roles=frozenset(key.roles)
        )

    def get(self, key_id: str, *, tenant: str) -> ApiKey:
        """The key, or KeyNotFoundError (also for another tenant's key)."""
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(_BY_ID, {"kid": key_id}).first()
        if row is None or row.tenant != tenant:
            raise KeyNotFoundError(f"no key {key_id!r}", key_id=key_id)
        return _key(row)

    def list(
        self, tenant: str, *, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[ApiKey], str | None]:
        """The tenant's keys by id; the cursor is the last id of the previous page."""
        c = api_keys.c
        stmt = select(api_keys).where(c.tenant == tenant)
        if cursor:
            stmt = stmt.where(c.id > cursor)
        stmt = stmt.order_by(c.id).limit(limit + 1)
        with readonly(self.engine.connect()) as conn:
            rows = conn.execute(stmt).all()
        keys = [_key(r) for r in rows[:limit]]
        return keys, keys[-1].id if len(rows) > limit else None

    def revoke(self, key_id: str, *, tenant: str, actor: Actor) -> ApiKey:
        """Revoke a key of the tenant (idempotent); it stops authenticating at once."""
        with self.engine.begin() as conn:
            row = conn.execute(_BY_ID, {"kid": key_id}).first()
            if row is None or row.tenant != tenant:
                raise KeyNotFoundError(f"no key {key_id!r}", key_id=key_id)
            if row.revoked_at is None:
                conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=self.clock())
                )
                self._audit(conn, _key(row), "key.revoked", actor)
            return _key(conn.execute(_BY_ID, {"kid": key_id}).first())

    def _audit(self, conn: Connection, key: ApiKey, event: str, actor: Actor) -> None:
        self.audit.append_in(
            conn,
            key.tenant,
            [
                AuditEvent(
                    event_type=event,
                    actor=actor,
                    data={"key_id": key.id, "name": key.name, "roles": list(key.roles)},
                )
            ],
        )
