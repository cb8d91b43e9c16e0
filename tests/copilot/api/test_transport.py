"""HTTPS behind a trusted proxy, HSTS, no /docs, revocation at once, the metrics token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import Actor
from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.runtime import build_runtime

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


def app_on(db_url: str, home: Path, base_url: str = "http://testserver", **settings: Any) -> Any:
    """A context manager: the app (its settings given) with a TestClient at `base_url`."""
    rt = build_runtime(db_url, home, woken=[], **settings)
    client = TestClient(create_app(rt.settings, runtime=rt), base_url=base_url,
                        follow_redirects=False)  # fmt: skip
    return rt, client


@pytest.fixture
def behind_proxy(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app trusting the TestClient's peer ("testclient") as its TLS-terminating proxy."""
    rt, client = app_on(sqlite_url, tmp_path, trusted_proxies="10.0.0.0/8, testclient")
    with client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


@pytest.fixture
def exposed(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app with no trusted proxy (the default), as an attacker on the network meets it."""
    rt, client = app_on(sqlite_url, tmp_path, api_key_cache_seconds=300)
    with client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


def session_cookie(api: Api, headers: dict[str, str]) -> str:
    """Sign in with the reviewer's key; the Set-Cookie header of the session cookie."""
    form = api.client.get("/ui/signin", headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    # The client speaks plain HTTP to the proxy's address: it keeps a Secure cookie to
    # itself, as a browser would over http, so the sign-in cookie is passed by hand.
    signin = form.headers["set-cookie"].split(";")[0]
    r = api.client.post("/ui/signin", headers={**headers, "Cookie": signin},
                        data={"key": api.tokens["acme", "reviewer"], "csrf": csrf.group(1)})  # fmt: skip
    assert r.status_code == 303, r.text
    (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith("copilot_session=")]
    return cookie


def test_behind_a_trusted_proxy_https_gets_a_secure_cookie_and_hsts(behind_proxy: Api) -> None:
    api = behind_proxy
    api.client.cookies.clear()
    cookie = session_cookie(api, FORWARDED)
    assert "secure" in cookie.lower().split("; ")
    r = api.client.get("/healthz", headers=FORWARDED)
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    plain = api.client.get("/healthz", headers={"X-Forwarded-Proto": "http"})
    assert "strict-transport-security" not in plain.headers


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(exposed: Api) -> None:
    api = exposed
    cookie = session_cookie(api, FORWARDED)
    assert "secure" not in cookie.lower().split("; ")
    assert "strict-transport-security" not in api.client.get("/healthz", headers=FORWARDED).headers


def test_a_direct_https_request_gets_hsts_and_a_secure_cookie(
    sqlite_url: str, tmp_path: Path
) -> None:
    rt, client = app_on(sqlite_url, tmp_path, base_url="https://testserver")
    with client:
        api = Api(rt=rt, client=client, tokens=make_keys(rt))
        assert "secure" in session_cookie(api, {}).lower().split("; ")
        assert client.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"


def test_docs_are_gone_and_the_openapi_document_stays(exposed: Api) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = exposed.client.get(path)
        assert r.status_code == 404 and "/openapi.json" in r.json()["error"]["message"]
    assert exposed.client.get("/openapi.json").json()["info"]["title"] == "copilot"


def test_a_key_revoked_through_this_process_stops_at_once(exposed: Api) -> None:
    api = exposed
    key, token = api.rt.keys.create(tenant="acme", roles=["reviewer"], actor=Actor.system("t"))
    h = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/approvals", headers=h).status_code == 200  # now remembered
    r = api.client.delete(f"/v1/keys/{key.id}", headers=api.auth("acme", "admin"))
    assert r.status_code == 200
    denied = api.client.get("/v1/approvals", headers=h)
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "auth.unauthenticated"


def test_a_key_revoked_elsewhere_works_until_the_cache_expires_as_documented(exposed: Api) -> None:
    """What the README says: another process (the CLI here) revoking it takes up to the TTL."""
    api = exposed
    key, token = api.rt.keys.create(tenant="acme", roles=["reviewer"], actor=Actor.system("t"))
    h = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/approvals", headers=h).status_code == 200
    api.rt.keys.revoke(key.id, tenant="acme", actor=Actor.system("cli"))
    assert api.client.get("/v1/approvals", headers=h).status_code == 200  # within 300 s


def test_metrics_need_the_metrics_token_not_an_api_key(sqlite_url: str, tmp_path: Path) -> None:
    rt, client = app_on(sqlite_url, tmp_path, metrics_token="s3cret-metrics")
    with client:
        tokens = make_keys(rt)
        assert client.get("/metrics").status_code == 401
        admin = {"Authorization": f"Bearer {tokens['acme', 'admin']}"}
        assert client.get("/metrics", headers=admin).status_code == 401
        assert (
            client.get("/metrics", headers={"Authorization": "Bearer s3cret-metric"}).status_code
            == 401
        )
        r = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert r.status_code == 200 and "copilot_runs" in r.text


def test_metrics_are_off_without_a_token(exposed: Api) -> None:
    r = exposed.client.get("/metrics")
    assert r.status_code == 401 and "COPILOT_METRICS_TOKEN" in r.json()["error"]["message"]
