"""The API-key models: the one part of the wire schema that needs the key store's records.

Everything else is in `copilot.api.schema`, which the HTTP client imports.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from copilot.api.schema import RequestModel
from copilot.governance.keys import ApiKey, Role

# -- keys -----------------------------------------------------------------------------------


class KeyCreate(RequestModel):
    """A new key for the admin's own tenant."""

    roles: Annotated[list[Role], Field(min_length=1, max_length=4)]
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[ -~]+$")] | None = None


class KeyCreated(BaseModel):
    """The key, and its token: shown this once, never again."""

    key: ApiKey
    token: str


class KeyPage(BaseModel):
    """A page of keys; pass `next_cursor` as `cursor` for the next one."""

    items: list[ApiKey]
    next_cursor: str | None
