"""An ApiError says what is wrong with the field, not only its name (issue 19, point 10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.client import ApiError, Client
from copilot.server import create_app
from tests.support.api import make_keys
from tests.support.runtime import build_runtime


def test_point10_an_api_error_names_the_field_and_what_is_wrong_with_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    rt = build_runtime(sqlite_url, tmp_path, woken=[])
    token = make_keys(rt)["acme", "app"]
    with TestClient(create_app(rt.settings, runtime=rt)) as http:
        client = Client("http://testserver", token)
        client._http.close()
        # The real client over the in-process app: TestClient is an httpx.Client on it.
        http.headers["Authorization"] = f"Bearer {token}"
        client._http = http
        with pytest.raises(ApiError) as info:
            client.set_preferences("acct-1", consent_basis="not a basis!")
    rt.close()
    assert info.value.code == "request.invalid" and info.value.status == 422
    assert info.value.message.startswith(
        "invalid request: body.consent_basis: String should match pattern"
    )
