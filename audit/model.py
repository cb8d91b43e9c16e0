"""The trail's records: who did what (events in), what was written (entries out), checkpoints."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ActorKind(StrEnum):
    """Who acted: a person, an agent (model-driven), or the system itself."""

    HUMAN = "human"
    AGENT = "agent"
    SYSTEM = "system"


class Actor(BaseModel):
    """The actor of an event: its kind and a stable id (reviewer key principal, worker id...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActorKind
    id: str = Field(min_length=1, max_length=200)

    @classmethod
    def system(cls, id: str = "copilot") -> Actor:
        """A system actor, e.g. a worker or the sweeper."""
        return cls(kind=ActorKind.SYSTEM, id=id)

    @classmethod
    def human(cls, id: str) -> Actor:
        """A person, identified by their authenticated principal."""
        return cls(kind=ActorKind.HUMAN, id=id)

    @classmethod
    def agent(cls, id: str) -> Actor:
        """An agent (model-driven step)."""
        return cls(kind=ActorKind.AGENT, id=id)


_VERSION_KEYS = ("workflow", "model", "prompt", "policy")


class Versions(BaseModel):
    """The versions that shaped an event, where they apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str | None = None
    model: str | None = None
    prompt: str | None = None
    policy: str | None = None

    def given(self) -> dict[str, str]:
        """Only the versions that were set, for the canonical entry."""
        return {k: v for k in _VERSION_KEYS if (v := getattr(self, k)) is not None}


class AuditEvent(BaseModel):
    """An event to append.

    `data` is hashed into the chain as is and can never be removed: keep it to facts that
    are not personal (states, ids, counts, hashes). `personal` is erasable: the chain
    commits to sha256(salt || canonical(personal)) and the value lives in a separate table,
    so erasing it later leaves the chain valid.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.\-]*$")
    actor: Actor
    run_id: str | None = Field(default=None, max_length=64)
    subject_id: str | None = Field(default=None, max_length=200)
    versions: Versions = Versions()
    data: dict[str, Any] = Field(default_factory=dict)
    personal: dict[str, Any] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class Entry(BaseModel):
    """An entry as stored: its position in the chain, its exact bytes, and its decoded fields."""

    model_config = ConfigDict(frozen=True)

    stream: str
    seq: int
    prev_hash: str
    hash: str
    commitment: str | None
    body: str
    recorded_at: str
    actor: Actor
    event_type: str
    run_id: str | None
    subject_id: str | None
    versions: dict[str, str]
    data: dict[str, Any]
    personal: dict[str, Any] | None = None
    erased: bool = False

    @classmethod
    def from_row(
        cls,
        *,
        stream: str,
        seq: int,
        prev_hash: bytes,
        hash: bytes,
        commitment: bytes | None,
        body: bytes,
        payload: bytes | None,
    ) -> Entry:
        """Decode a stored row; `payload` is the erasable part when it still exists."""
        doc = json.loads(body)
        return cls(
            stream=stream,
            seq=seq,
            prev_hash=prev_hash.hex(),
            hash=hash.hex(),
            commitment=commitment.hex() if commitment else None,
            body=body.decode(),
            recorded_at=doc["recorded_at"],
            actor=Actor(**doc["actor"]),
            event_type=doc["event_type"],
            run_id=doc["run_id"],
            subject_id=doc["subject_id"],
            versions=doc["versions"],
            data=doc["data"],
            personal=json.loads(payload) if payload is not None else None,
            erased=commitment is not None and payload is None,
        )


class AppendResult(BaseModel):
    """What an append did: its place in the chain, or that it is queued or a duplicate."""

    model_config = ConfigDict(frozen=True)

    stream: str
    seq: int | None
    hash: str | None
    duplicate: bool = False
    pending: bool = False


class Checkpoint(BaseModel):
    """A signed statement that `stream` had `size` entries ending in `head`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: str
    size: int = Field(ge=0)
    head: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_id: str
    signature: str
    signed_at: str

    @field_validator("signature")
    @classmethod
    def _hex(cls, v: str) -> str:
        bytes.fromhex(v)
        return v
