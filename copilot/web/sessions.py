"""Server-side sessions for the web pages: the cookie holds a random id, the database the rest.

Signing in exchanges an API key for a session; only the SHA-256 of the session id is
stored, beside the key's id and a per-session CSRF token. Each request re-reads the key,
so revoking the key ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, delete, insert, select

from audit.db import readonly
from copilot.db.tables import web_sessions
from copilot.errors import KeyNotFoundError
from copilot.governance.keys import KeyStore, Principal

LIFETIME = 8 * 3600.0  # a working day; sign in again after


class Session(BaseModel):
    """A signed-in visitor: who (the key's principal) and the token every form must carry."""

    model_config = ConfigDict(frozen=True)

    principal: Principal
    csrf: str


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """Open, look up and end sessions."""

    def __init__(
        self, engine: Engine, keys: KeyStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.clock = clock

    def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session for the principal: (the cookie's value, the session)."""
        sid, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock()
        with self.engine.begin() as conn:
            conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
            conn.execute(
                insert(web_sessions).values(
                    id_sha256=_digest(sid), key_id=principal.key_id, tenant=principal.tenant,
                    csrf=csrf, created_at=now, expires_at=now + LIFETIME,
                )
            )  # fmt: skip
        return sid, Session(principal=principal, csrf=csrf)

    def get(self, sid: str) -> Session | None:
        """The live session the cookie names, or None (unknown, expired, or its key revoked)."""
        if not sid or len(sid) > 100:
            return None
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(
                select(web_sessions).where(web_sessions.c.id_sha256 == _digest(sid))
            ).first()
        if row is None or row.expires_at < self.clock():
            return None
        try:
            key = self.keys.get(row.key_id, tenant=row.tenant)
        except KeyNotFoundError:
            return None
        if key.revoked_at is not None:
            return None
        who = Principal(key_id=key.id, tenant=key.tenant, name=key.name, roles=frozenset(key.roles))
        return Session(principal=who, csrf=row.csrf)

    def close(self, sid: str) -> None:
        """End the session (signing out); unknown ids are ignored."""
        with self.engine.begin() as conn:
            conn.execute(delete(web_sessions).where(web_sessions.c.id_sha256 == _digest(sid)))
