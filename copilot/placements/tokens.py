"""Short-lived subject tokens: what a browser holds to decide and post events for one subject.

An app's server mints one with its app key (`POST /v1/subject-tokens`); the page sends it
as `Authorization: Bearer cps_...`. It names one tenant and one subject, allows only
decide and events, and expires (at most an hour; 15 minutes by default). It is an HMAC-SHA256
over its claims with the deployment's token secret (`COPILOT_SUBJECT_TOKEN_SECRET`, else a
random key created once in `COPILOT_HOME`), so checking its signature costs no database
read; the API then checks that the minting app key is not revoked (through its key cache,
so a revocation reaches tokens as fast as it reaches the key itself).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from copilot.placements.errors import TokenError

PREFIX = "cps_"
MAX_TTL = 3600.0
DEFAULT_TTL = 900.0
SCOPE = ("decide", "events")


class SubjectToken(BaseModel):
    """A verified token's claims."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    subject_id: str
    key_id: str
    expires_at: float
    scope: tuple[str, ...] = SCOPE


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Mints and checks subject tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a subject-token secret needs at least 16 bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, path: Path) -> TokenSigner:
        """The secret in `path`, created (0600) on first use.

        Processes starting together on a fresh home race here: each writes a whole secret to
        a private temporary file and links it into place (atomic, never replacing), so a
        reader sees either no file or a complete one, and every loser reads the winner's."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileExistsError):  # a concurrent creator won
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return cls(path.read_text().strip().encode())

    def _mac(self, body: str) -> str:
        raw = body.encode("utf-8", "surrogateescape")
        return _b64(hmac.new(self._secret, raw, hashlib.sha256).digest())

    def mint(
        self, tenant: str, subject_id: str, *, key_id: str, now: float, ttl: float = DEFAULT_TTL
    ) -> str:
        """A token for one subject of `tenant`, valid for `ttl` seconds (at most an hour)."""
        if not 0 < ttl <= MAX_TTL:
            raise TokenError(
                f"ttl must be in (0, {int(MAX_TTL)}] seconds", code="token.invalid_ttl"
            )
        claims = SubjectToken(tenant=tenant, subject_id=subject_id, key_id=key_id,
                              expires_at=round(now + ttl, 3))  # fmt: skip
        body = _b64(json.dumps(claims.model_dump(mode="json"), sort_keys=True).encode())
        return f"{PREFIX}{body}.{self._mac(body)}"

    def verify(self, token: str, *, now: float) -> SubjectToken:
        """The claims, or TokenError: `token.invalid` (forged, malformed) or `token.expired`."""
        body, _, mac = token.removeprefix(PREFIX).partition(".")
        # bytes, not str: compare_digest refuses non-ASCII text (a TypeError, not a refusal)
        given = mac.encode("utf-8", "surrogateescape")
        if not token.startswith(PREFIX) or not hmac.compare_digest(given, self._mac(body).encode()):
            raise TokenError("the subject token is malformed or not signed by this deployment")
        try:
            claims = SubjectToken.model_validate_json(_unb64(body))
        except (ValidationError, ValueError):
            raise TokenError("the subject token's claims are unreadable") from None
        if claims.expires_at <= now:
            raise TokenError("the subject token has expired; mint a new one with the app key",
                             code="token.expired", expired_at=claims.expires_at)  # fmt: skip
        return claims


__all__ = ["DEFAULT_TTL", "MAX_TTL", "PREFIX", "SubjectToken", "TokenSigner"]
