"""The authorization matrix: every endpoint x every role x own and other tenant.

Generated from the one table below. Resources (runs, approvals, keys, subject
preferences) live in tenant `acme`; callers hold keys of `acme` (own) or `globex`
(other). Expected: no key or a revoked key → 401; a role the endpoint does not admit →
403 (whatever the id, so the answer leaks nothing); an admitted role of the other tenant →
404 for an id of acme's, or, for tenant-wide endpoints, success that shows and changes
only the caller's own tenant.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from audit import Actor
from copilot.delivery import DeliveryStore, NewDelivery, Policy
from copilot.engine.runs import RunState
from copilot.governance.keys import ROLES
from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.learn_world import SURFACE as LEARN_SURFACE
from tests.support.learn_world import learn_file, seed
from tests.support.runtime import build_runtime

PUBLIC = frozenset({"anonymous", "revoked", *ROLES})
NO_KEY = frozenset[str]()  # no API key opens it (`/metrics` takes its own token)
Check = Callable[["Fixture", dict[str, str], httpx.Response], None]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {run}, {approval}, {key}, {subject} are filled with fresh acme resources
    allowed: frozenset[str]
    ok: int
    body: Callable[[dict[str, str]], Any] | None = None
    isolated: Check | None = None  # for tenant-wide endpoints called from the other tenant

    @property
    def by_id(self) -> bool:
        rest = self.path.replace("{surface}", "")  # a surface is tenant-wide, not acme's id
        return "{" in rest and "{subject}" not in rest


def _no_acme_ids(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    text = r.text
    assert res.get("run", "-") not in text and res.get("approval", "-") not in text
    assert all(item.get("tenant", "globex") == "globex" for item in r.json()["items"])


def _run_in_callers_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert fx.api.rt.runs.get(r.json()["id"], tenant="globex").subject_id == "acct-new"


def _events_of_own_stream(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert {e["stream"] for e in r.json()["items"]} == {"globex"}
    assert res["run"] not in r.text


def _verifies_own_stream(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert r.json()["stream"] == "globex"


def _exports_own_stream(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        member = tar.extractfile("bundle/manifest.json")
        assert member is not None
        assert list(json.load(member)["streams"]) == ["globex"]


def _signal_in_callers_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    acme = fx.api.rt.registry.signals  # the same registry; the rows are what differ
    assert acme is not None
    from copilot.governance.sources import SqlSignalSource

    source = SqlSignalSource(fx.api.rt.engine)
    assert source.fetch("acme", res["subject"], ["usage_trend"]) == {}
    assert set(source.fetch("globex", res["subject"], ["usage_trend"])) == {"usage_trend"}


def _outcome_in_callers_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    from sqlalchemy import select

    from copilot.db.tables import outcomes

    with fx.api.rt.engine.connect() as conn:
        tenants = (
            conn.execute(select(outcomes.c.tenant).where(outcomes.c.subject_id == res["subject"]))
            .scalars()
            .all()
        )
    assert tenants and set(tenants) == {"globex"}


def _prefs_of_own_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert r.json()["opt_out_all"] is False  # acme's subject opted out; globex's did not
    assert fx.api.rt.consent.get("acme", res["subject"]).opt_out_all is True


def _erased_in_callers_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert fx.api.rt.consent.get("acme", res["subject"]).consent_basis != "erased"
    assert fx.api.rt.consent.get("globex", res["subject"]).consent_basis == "erased"


def _key_in_callers_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert r.json()["key"]["tenant"] == "globex"


def _keys_of_own_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert {k["tenant"] for k in r.json()["items"]} == {"globex"}
    assert res["key"] not in r.text


def _no_acme_actions(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert r.json()["items"] == []  # globex has no actions; acme's stayed unclaimed
    assert fx.api.rt.deliveries.get(int(res["ready"])).state == "ready"


def _decided_in_callers_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    from copilot.placements.store import decision_row

    with fx.api.rt.engine.connect() as conn:
        assert decision_row(conn, "acme", r.json()["decision_id"]) is None
        assert decision_row(conn, "globex", r.json()["decision_id"]) is not None


def _decision(res: dict[str, str]) -> dict[str, str]:
    return {"decision": "approve", "payload_hash": res["payload_hash"]}


def _batch_ack_isolated(fx: Fixture, res: dict[str, str], r: Any) -> None:
    """Another tenant's batch naming acme's action gets `not_found` for it, nothing more."""
    (result,) = r.json()["results"]
    assert result["action"] is None and result["error"]["code"] == "delivery.not_found"
    assert fx.api.rt.deliveries.get(int(res["action"])).state == "claimed"


def _learn_status_of_own_tenant(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert {v["tenant"] for v in r.json()["versions"]} <= {"globex"}
    assert res["version"] not in r.text and r.json()["serving"] == "rules"


def _trained_on_own_data(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert r.json()["tenant"] == "globex" and r.json()["n_train"] == GLOBEX_DECISIONS


def _no_acme_checks(fx: Fixture, res: dict[str, str], r: httpx.Response) -> None:
    assert r.json() == []


ENDPOINTS = [
    Endpoint("POST", "/v1/runs", frozenset({"app"}), 202,
             lambda res: {"workflow": "five_steps", "subject_id": "acct-new"},
             _run_in_callers_tenant),
    Endpoint("GET", "/v1/runs/{run}", frozenset({"app"}), 200),
    Endpoint("GET", "/v1/runs/{run}/explanation", frozenset({"app"}), 200),
    Endpoint("GET", "/v1/approvals", frozenset({"reviewer"}), 200, None, _no_acme_ids),
    Endpoint("GET", "/v1/approvals/{approval}", frozenset({"reviewer"}), 200),
    Endpoint("POST", "/v1/approvals/{approval}/decision", frozenset({"reviewer"}), 200, _decision),
    Endpoint("GET", "/v1/actions", frozenset({"app"}), 200, None, _no_acme_actions),
    Endpoint("GET", "/v1/actions/{action}", frozenset({"app", "reviewer", "auditor"}), 200),
    Endpoint("POST", "/v1/actions/{action}/ack", frozenset({"app"}), 200,
             lambda res: {"claim": res["claim"], "status": "delivered"}),
    Endpoint("POST", "/v1/actions/ack", frozenset({"app"}), 200,
             lambda res: {"acks": [{"id": int(res["action"]), "claim": res["claim"],
                                    "status": "delivered"}]}, _batch_ack_isolated),
    Endpoint("POST", "/v1/actions/{dead}/retry", frozenset({"reviewer"}), 200),
    Endpoint("POST", "/v1/actions/{dead}/cancel", frozenset({"reviewer"}), 200,
             lambda res: {"reason": "sent by hand"}),
    Endpoint("GET", "/v1/audit/events", frozenset({"auditor"}), 200, None, _events_of_own_stream),
    Endpoint("GET", "/v1/audit/verify", frozenset({"auditor"}), 200, None, _verifies_own_stream),
    Endpoint("GET", "/v1/audit/export", frozenset({"auditor"}), 200, None, _exports_own_stream),
    Endpoint("POST", "/v1/signals", frozenset({"app"}), 201,
             lambda res: {"subject_id": res["subject"], "values": {"usage_trend": 3.5}},
             _signal_in_callers_tenant),
    Endpoint("POST", "/v1/outcomes", frozenset({"app"}), 201,
             lambda res: {"events": [{"subject_id": res["subject"], "name": "replied"}]},
             _outcome_in_callers_tenant),
    Endpoint("GET", "/v1/subjects/{subject}/preferences", frozenset({"app"}), 200, None,
             _prefs_of_own_tenant),
    Endpoint("PUT", "/v1/subjects/{subject}/preferences", frozenset({"app"}), 200,
             lambda res: {"opt_out_workflows": ["summarize"]}, _prefs_of_own_tenant),
    Endpoint("DELETE", "/v1/subjects/{subject}", frozenset({"app", "admin"}), 200, None,
             _erased_in_callers_tenant),
    Endpoint("POST", "/v1/keys", frozenset({"admin"}), 201, lambda res: {"roles": ["auditor"]},
             _key_in_callers_tenant),
    Endpoint("GET", "/v1/keys", frozenset({"admin"}), 200, None, _keys_of_own_tenant),
    Endpoint("DELETE", "/v1/keys/{key}", frozenset({"admin"}), 200),
    Endpoint("GET", "/v1/policy", frozenset({"admin"}), 200),
    Endpoint("POST", "/v1/decide", frozenset({"app"}), 200,
             lambda res: {"placement": "t.daily", "subject_id": res["subject"]}, _decided_in_callers_tenant),
    Endpoint("POST", "/v1/decisions/{decision}/events", frozenset({"app"}), 201,
             lambda res: {"event_id": f"ev-{res['decision']}", "kind": "impression"}),
    Endpoint("GET", "/v1/subjects/{subject}/placements/{placement}/explain", frozenset({"app"}), 200),
    Endpoint("POST", "/v1/subject-tokens", frozenset({"app"}), 201,
             lambda res: {"subject_id": res["subject"]}),
    Endpoint("GET", "/v1/learn/{surface}", frozenset({"admin"}), 200, None,
             _learn_status_of_own_tenant),
    Endpoint("POST", "/v1/learn/{surface}/train", frozenset({"admin"}), 200, None,
             _trained_on_own_data),
    Endpoint("GET", "/v1/learn/{surface}/versions/{version}/evidence", frozenset({"admin"}), 200),
    Endpoint("POST", "/v1/learn/{surface}/versions/{version}/promotion", frozenset({"admin"}), 202),
    Endpoint("POST", "/v1/learn/promotions/{promotion}/decision", frozenset({"admin"}), 200,
             lambda res: {"decision": "approve"}),
    Endpoint("POST", "/v1/learn/{surface}/guardrails", frozenset({"admin"}), 200, None,
             _no_acme_checks),
    Endpoint("GET", "/healthz", PUBLIC, 200),
    Endpoint("GET", "/metrics", NO_KEY, 200),
]  # fmt: skip
CALLERS = ("anonymous", "revoked", *ROLES)
ACME_DECISIONS, GLOBEX_DECISIONS = 1000, 300


@dataclass
class Fixture:
    api: Api
    revoked: dict[str, str]
    learn: dict[str, str]
    n: int = 0

    def resources(self) -> dict[str, str]:
        """Fresh acme resources: a waiting run, its first pending approval, a key, a subject."""
        self.n += 1
        run = self.api.waiting_run("acme", subject=f"acct-{self.n}")
        approval = self.api.pending(run)
        key, _ = self.api.rt.keys.create(tenant="acme", roles=["app"], actor=Actor.system("t"))
        subject = f"subj-{self.n}"
        prefs = self.api.rt.consent.get("acme", subject).model_copy(update={"opt_out_all": True})
        self.api.rt.consent.set(prefs, actor=Actor.system("t"))
        decided = self.api.rt.decider.decide("acme", "t.daily", f"shown-{self.n}")
        return {
            "decision": decided.decision_id,
            "placement": "t.daily",
            "run": run.id,
            "approval": approval.id,
            "payload_hash": approval.payload_hash,
            "key": key.id,
            "subject": subject,
            **self.actions(),
            **self.learn,
        }

    def actions(self) -> dict[str, str]:
        """Fresh acme actions: one ready, one claimed (with its claim), one dead."""
        rt = self.api.rt
        once = DeliveryStore(rt.engine, rt.audit, Policy(max_attempts=1))
        made = [rt.deliveries.open(NewDelivery(idempotency_key=f"m:{self.n}:{i}", tenant="acme",
                                               kind="post_note", route="outbox", payload={}))
                for i in range(2)]  # fmt: skip
        dead = once.open(NewDelivery(idempotency_key=f"m:{self.n}:dead", tenant="acme",
                                     kind="post_note", route="outbox", payload={}))  # fmt: skip
        (held,) = rt.deliveries.claim("acme", "crm", only=made[1].id)
        (doomed,) = rt.deliveries.claim("acme", "crm", only=dead.id)
        rt.deliveries.ack("acme", dead.id, doomed.claim or "", "failed", {"error": "x"})
        return {"ready": str(made[0].id), "action": str(held.id), "claim": held.claim or "",
                "dead": str(dead.id)}  # fmt: skip


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    home = tmp_path_factory.mktemp("matrix")
    rt = build_runtime(f"sqlite:///{home / 'copilot.db'}", home, woken=[],
                       workflow_modules="tests.support.flows,tests.support.guarded",
                       placement_modules="tests.support.placements",
                       learn_path=learn_file(home))  # fmt: skip
    learn = _learning(rt)
    tokens = make_keys(rt)
    revoked = {}
    for tenant in ("acme", "globex"):
        key, token = rt.keys.create(tenant=tenant, roles=list(ROLES), actor=Actor.system("t"))
        rt.keys.revoke(key.id, tenant=tenant, actor=Actor.system("t"))
        revoked[tenant] = token
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        yield Fixture(Api(rt=rt, client=client, tokens=tokens), revoked, learn)


def _learning(rt: Any) -> dict[str, str]:
    """acme's learning surface: a shadow version and a pending promotion of it (one admin
    of acme votes on it, once); globex has fewer decisions of its own."""
    seed(rt.learning.store, "acme", ACME_DECISIONS)
    seed(rt.learning.store, "globex", GLOBEX_DECISIONS, seed_=22)
    version = rt.learning.train("acme", LEARN_SURFACE).version
    promotion = rt.learning.request_promotion("acme", LEARN_SURFACE, version, requested_by="t")
    return {"surface": LEARN_SURFACE, "version": version, "promotion": promotion.id}


def expected(ep: Endpoint, caller: str, tenant: str) -> int:
    """The status the table implies."""
    if ep.allowed == NO_KEY:
        return 401
    if caller in ("anonymous", "revoked") and ep.allowed != PUBLIC:
        return 401
    if caller not in ep.allowed:
        return 403
    if tenant == "other" and ep.by_id:
        return 404
    return ep.ok


@pytest.mark.parametrize("tenant", ["own", "other"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_authorization_matrix(fx: Fixture, ep: Endpoint, caller: str, tenant: str) -> None:
    res = fx.resources()
    who = "acme" if tenant == "own" else "globex"
    headers: dict[str, str] = {}
    if caller == "revoked":
        headers["Authorization"] = f"Bearer {fx.revoked[who]}"
    elif caller != "anonymous":
        headers = fx.api.auth(who, caller)
    path = ep.path.format(**res)
    body = ep.body(res) if ep.body else None
    r = fx.api.client.request(ep.method, path, headers=headers, json=body)
    want = expected(ep, caller, tenant)
    assert r.status_code == want, r.text
    if want >= 400:
        error = r.json()["error"]
        assert (
            error["code"]
            in {
                401: {"auth.unauthenticated"},
                403: {"auth.forbidden"},
                404: {"run.not_found", "approval.not_found", "key.not_found", "delivery.not_found",
                      "placement.decision_not_found", "learn.not_found"},
            }[want]
        )
        assert set(r.json()) == {"error"} and set(error) == {"code", "message", "details"}
    if want < 400 and tenant == "other" and ep.isolated is not None:
        ep.isolated(fx, res, r)
    if want >= 400:  # a refused call changed nothing of acme's
        assert fx.api.rt.runs.get(res["run"]).state == RunState.WAITING
        assert fx.api.rt.gate.get(res["approval"]).status == "pending"
        assert fx.api.rt.keys.get(res["key"], tenant="acme").revoked_at is None
        assert fx.api.rt.consent.get("acme", res["subject"]).opt_out_workflows == ()
        assert fx.api.rt.consent.get("acme", res["subject"]).consent_basis != "erased"
        assert fx.api.rt.deliveries.get(int(res["action"])).state == "claimed"
        assert fx.api.rt.deliveries.get(int(res["dead"])).state == "dead"
        assert fx.api.rt.decider.recent("acme", f"shown-{fx.n}")["events"] == []


def test_the_matrix_covers_every_route_of_the_app(fx: Fixture) -> None:
    """A route added without a row in the table fails here."""
    documented = {
        (method.upper(), path)
        for path, item in fx.api.client.get("/openapi.json").json()["paths"].items()
        for method in item
    }
    table = {
        (ep.method, ep.path.replace("{run}", "{run_id}").replace("{approval}", "{approval_id}")
         .replace("{key}", "{key_id}").replace("{subject}", "{subject_id}")
         .replace("{action}", "{action_id}").replace("{dead}", "{action_id}")
         .replace("{decision}", "{decision_id}").replace("{placement}", "{name}")
         .replace("{promotion}", "{approval_id}"))
        for ep in ENDPOINTS
    }  # fmt: skip
    assert documented == table


def test_a_key_with_several_roles_gets_each_roles_rights(fx: Fixture, tmp_path: Path) -> None:
    _, token = fx.api.rt.keys.create(
        tenant="acme", roles=["app", "auditor"], name="ops", actor=Actor.system("t")
    )
    h = {"Authorization": f"Bearer {token}"}
    res = fx.resources()
    assert fx.api.client.get(f"/v1/runs/{res['run']}", headers=h).status_code == 200
    assert fx.api.client.get("/v1/audit/verify", headers=h).status_code == 200
    assert fx.api.client.get("/v1/approvals", headers=h).status_code == 403


# -- the paths around the table: a run fired by signals, an edit that retargets -----------

ERRORS = {401: {"auth.unauthenticated"}, 403: {"auth.forbidden"}, 404: {"approval.not_found"}}


def _headers(fx: Fixture, caller: str, who: str) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "revoked":
        return {"Authorization": f"Bearer {fx.revoked[who]}"}
    return fx.api.auth(who, caller)


def _fired(fx: Fixture, token: str) -> tuple[str, Any]:
    """A run of acme's that `token`'s signals fired, advanced to its pending reminder."""
    fx.n += 1
    subject = f"fired-{fx.n}"
    r = fx.api.client.post("/v1/signals", json={"subject_id": subject,
                           "values": {"guard_usage": -50}}, headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 201, r.text
    (fired,) = r.json()["fired"]
    run = fx.api.rt.runner.run_inline(fired["run_id"])
    return subject, fx.api.pending(run)


@pytest.mark.parametrize(
    ("caller", "tenant"),
    [("ingester", "own"), *((c, t) for c in CALLERS for t in ("own", "other"))],
)
def test_the_event_trigger_path(fx: Fixture, caller: str, tenant: str) -> None:
    """A key with the app and reviewer roles ingests signals that fire a run: it may not
    decide that run's action (`approval.separation_of_duties`); any other reviewer key of
    the tenant may; the rest is the table's answer."""
    _, token = fx.api.rt.keys.create(tenant="acme", roles=["app", "reviewer"],
                                     actor=Actor.system("t"))  # fmt: skip
    _, req = _fired(fx, token)
    who = "acme" if tenant == "own" else "globex"
    if caller == "ingester":  # the key whose signals fired the run
        headers = {"Authorization": f"Bearer {token}"}
        want, code = 403, "approval.separation_of_duties"
    else:
        headers = _headers(fx, caller, who)
        ep = Endpoint("POST", "/v1/approvals/{approval}/decision", frozenset({"reviewer"}), 200)
        want, code = expected(ep, caller, tenant), None
    r = fx.api.client.post(f"/v1/approvals/{req.id}/decision", headers=headers,
                           json={"decision": "approve", "payload_hash": req.payload_hash})  # fmt: skip
    assert r.status_code == want, r.text
    if want >= 400:
        assert r.json()["error"]["code"] in ({code} if code else ERRORS[want])
        assert fx.api.rt.gate.get(req.id).status == "pending"
    else:
        assert fx.api.rt.gate.get(req.id).status == "approved"


@pytest.mark.parametrize("tenant", ["own", "other"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "edits",
    [{"account_id": "subj-opted-out"}, {"billing": {"account_id": "globex-1", "amount": 120}},
     {"to": "someone@elsewhere.example"}],
    ids=["subject", "nested-subject", "recipient"],
)  # fmt: skip
def test_the_edit_retarget_path(
    fx: Fixture, caller: str, tenant: str, edits: dict[str, Any]
) -> None:
    """No caller can move an action to another subject or recipient by editing it: a
    reviewer of the tenant gets `approval.subject_locked`; the rest is the table's answer."""
    _, req = _fired(fx, fx.api.tokens["acme", "app"])
    ep = Endpoint("POST", "/v1/approvals/{approval}/decision", frozenset({"reviewer"}), 422)
    want = expected(ep, caller, tenant)
    r = fx.api.client.post(
        f"/v1/approvals/{req.id}/decision",
        headers=_headers(fx, caller, "acme" if tenant == "own" else "globex"),
        json={"decision": "approve", "payload_hash": req.payload_hash, "edits": edits},
    )
    assert r.status_code == want, r.text
    codes = {**ERRORS, 422: {"approval.subject_locked"}}
    assert r.json()["error"]["code"] in codes[want]
    assert fx.api.rt.gate.get(req.id).status == "pending"
    assert len(fx.api.rt.gate.of_run(req.run_id or "")) == 1  # no new version
