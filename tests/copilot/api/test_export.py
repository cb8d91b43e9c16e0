"""The audit export withholds erasable payloads (issue 16): the auditor's bundle verifies
without them, and no role may ask for them over HTTP."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

from audit import verify_bundle
from tests.support.api import Api


def test_the_export_carries_no_erasable_payload(api: Api, tmp_path: Path) -> None:
    """`/v1/audit/events` serves personal payloads to no role; nor does the export (the chain
    holds their commitments, so it verifies without them), and no role may ask for them."""
    req = api.pending(api.waiting_run())
    assert "Hi Ana" in json.dumps(req.payload)  # a message body: personal
    api.rt.signing_trail.checkpoint("acme")  # this host holds the key, as a beat host does
    h = api.auth("acme", "auditor")
    r = api.client.get("/v1/audit/export", headers=h)
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path, filter="data")
    assert not [n for n in names if n.endswith("payloads.jsonl")]
    assert "Hi Ana" not in "".join(p.read_text() for p in (tmp_path / "bundle").rglob("*.*"))
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["payloads"] == "withheld"
    assert [v.ok for v in verify_bundle(tmp_path / "bundle")] == [True]
    for role in ("auditor", "admin", "reviewer", "app"):
        asked = api.client.get("/v1/audit/export", params={"payloads": "included"},
                               headers=api.auth("acme", role))  # fmt: skip
        assert asked.status_code == 403, role
        assert asked.json()["error"]["code"] == ("audit.payloads_forbidden" if role == "auditor"
                                                 else "auth.forbidden")  # fmt: skip


def test_the_auditors_web_page_exports_no_erasable_payload(api: Api, tmp_path: Path) -> None:
    api.pending(api.waiting_run())
    api.rt.signing_trail.checkpoint("acme")
    form = api.client.get("/ui/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    signed_in = api.client.post(
        "/ui/signin", data={"key": api.tokens["acme", "auditor"], "csrf": csrf.group(1)},
        follow_redirects=False,
    )  # fmt: skip
    assert signed_in.status_code == 303
    r = api.client.get("/ui/audit/export")
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        assert not [n for n in tar.getnames() if n.endswith("payloads.jsonl")]
        tar.extractall(tmp_path, filter="data")
    assert "Hi Ana" not in "".join(p.read_text() for p in (tmp_path / "bundle").rglob("*.*"))
    assert [v.ok for v in verify_bundle(tmp_path / "bundle")] == [True]
