"""The queue's hot read: asyncpg on PostgreSQL, the gate's engine on SQLite, the same bytes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import URL, create_engine, make_url, text, update

from approvals.queue import QueueQuery
from approvals.tables import requests
from audit import Actor
from copilot.api.reads import Connections, QueueReader, connect_args, server_settings
from copilot.errors import CopilotError
from copilot.server import create_app
from tests.support.api import Api
from tests.support.runtime import build_runtime


def served(api: Api, **params: object) -> bytes:
    r = api.client.get("/v1/approvals", params=params, headers=api.auth("acme", "reviewer"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.content


def test_the_served_page_is_the_gates_page_byte_for_byte(api: Api) -> None:
    runs = [api.waiting_run(subject=f"acct-{i}") for i in range(5)]
    api.waiting_run("globex")
    reader = api.client.app.state.queue_reader  # type: ignore[attr-defined]
    assert isinstance(reader, QueueReader)
    # On PostgreSQL the page is read on the event loop through asyncpg, not the engine.
    assert (reader._connections is not None) == (api.rt.engine.dialect.name == "postgresql")

    def check() -> None:
        counts: dict[QueueQuery, int] = {}
        for query in (
            QueueQuery(limit=2),
            QueueQuery(status="approved", limit=50),
            QueueQuery(kind="email_customer", limit=3),
            QueueQuery(subject_id="acct-3"),
            QueueQuery(status="rejected"),
        ):
            params = {k: v for k, v in vars(query).items() if v is not None}
            cursor, seen = None, 0
            while True:
                page = {**params, **({"cursor": cursor} if cursor else {})}
                mine = served(api, **page)
                assert mine == api.rt.gate.queue_page("acme", QueueQuery(**page))  # type: ignore[arg-type]
                seen += len(json.loads(mine)["items"])
                cursor = json.loads(mine)["next_cursor"]
                if cursor is None:
                    break
            counts[query] = seen
        assert counts[QueueQuery(limit=2)] == 5  # one email per run waits
        assert counts[QueueQuery(status="approved", limit=50)] == 5  # the notes
        assert counts[QueueQuery(subject_id="acct-3")] == 1

    check()
    # A row changed behind the gate's back has no stored document: rendered, still exact.
    pending = api.pending(runs[0])
    with api.rt.engine.begin() as conn:
        conn.execute(update(requests).where(requests.c.id == pending.id).values(level="thin"))
    check()
    (item,) = [i for i in json.loads(served(api, limit=50))["items"] if i["id"] == pending.id]
    assert item["level"] == "thin"
    assert all(i["tenant"] == "acme" for i in json.loads(served(api, limit=200))["items"])


def assert_unavailable(pg_url: str, tmp_path: Path, url: str | URL) -> None:
    """A page read by a reader on `url` is refused with 503 `service.unavailable`."""
    rt = build_runtime(pg_url, tmp_path, woken=[])
    engine = create_engine(url)

    async def read() -> bytes:
        reader = QueueReader(rt.gate, engine)
        await reader.open()
        try:
            return await reader.page("acme", QueueQuery())
        finally:
            await reader.close()

    try:
        with pytest.raises(CopilotError) as caught:
            asyncio.run(read())
        assert caught.value.code == "service.unavailable"
    finally:
        engine.dispose()
        rt.close()


def test_the_queue_answers_503_when_its_database_is_away(pg_url: str, tmp_path: Path) -> None:
    assert_unavailable(pg_url, tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/test")


def test_a_kept_connection_the_server_closed_is_replaced_without_an_error(
    pg_url: str, tmp_path: Path
) -> None:
    rt = build_runtime(pg_url, tmp_path, woken=[])
    try:
        with TestClient(create_app(rt.settings, runtime=rt)) as client:
            _, token = rt.keys.create(tenant="acme", roles=["reviewer"], actor=Actor.system("t"))
            h = {"Authorization": f"Bearer {token}"}
            assert client.get("/v1/approvals", headers=h).status_code == 200
            reader = client.app.state.queue_reader  # type: ignore[attr-defined]
            (kept,) = reader._connections._idle
            with rt.engine.connect() as conn:  # a server restart, as far as that one knows
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": kept.get_server_pid()})
            r = client.get("/v1/approvals", headers=h)
            assert r.status_code == 200, r.text
            assert json.loads(r.content) == {"items": [], "next_cursor": None}
            assert reader._connections._idle[0] is not kept
    finally:
        rt.close()


def test_kept_connections_all_closed_by_the_server_never_fail_a_read(pg_url: str) -> None:
    """A restart closes every kept connection at once: the next reads still succeed."""
    args = connect_args(make_url(pg_url))
    assert args is not None
    dsn, settings, timeout = args

    async def scenario() -> None:
        pool = Connections(
            lambda: asyncpg.connect(dsn, server_settings=settings, timeout=timeout), 4
        )
        killer = await asyncpg.connect(dsn, server_settings=settings)
        try:
            for _ in range(20):
                await asyncio.gather(*(pool.fetch("SELECT pg_sleep(0.01)", []) for _ in range(3)))
                pids = [c.get_server_pid() for c in pool._idle]
                assert len(pids) == 3
                await killer.execute(
                    "SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p", pids
                )
                (row,) = await pool.fetch("SELECT 41 + $1::int AS n", [1])
                assert row["n"] == 42
            # A statement error leaves its connection usable; it is not thrown away.
            with pytest.raises(asyncpg.PostgresError):
                await pool.fetch("SELECT 1/0", [])
            assert len(pool._idle) >= 1
        finally:
            await killer.close()
            await pool.close()
            assert not pool._open

    asyncio.run(scenario())


def test_a_url_the_reader_cannot_honour_keeps_the_queue_on_the_engine(
    pg_url: str, tmp_path: Path
) -> None:
    url = make_url(pg_url)
    assert connect_args(url.update_query_dict({"keepalives": "1"})) is None
    dsn, settings, timeout = connect_args(  # type: ignore[misc]
        url.update_query_dict({"sslmode": "require", "connect_timeout": "3",
                               "application_name": "reviewers"})
    )  # fmt: skip
    assert "sslmode=require" in dsn and timeout == 3.0
    assert settings["application_name"] == "reviewers"
    assert settings["plan_cache_mode"] == "force_generic_plan"
    # TLS required of a server without it: refused (503), never read in clear.
    assert_unavailable(pg_url, tmp_path, url.update_query_dict({"sslmode": "require"}))


def test_the_direct_route_reads_the_key_and_refuses_parameters_as_every_route_does(
    api: Api,
) -> None:
    token = api.tokens["acme", "reviewer"]
    for header in (f"Bearer {token}", f"Bearer  {token} ", f"bearer {token}"):
        assert api.client.get("/v1/approvals", headers={"Authorization": header}).status_code == 200
    for header in ("", "Bearer", "Bearer   ", f"Basic {token}", f"Token {token}"):
        r = api.client.get("/v1/approvals", headers={"Authorization": header})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = api.client.get(
        "/v1/approvals", params={"subjectid": "x"}, headers=api.auth("acme", "reviewer")
    )
    other = api.client.get("/v1/runs/" + "0" * 32, params={"subjectid": "x"},
                           headers=api.auth("acme", "app"))  # fmt: skip
    assert r.status_code == other.status_code == 422
    assert r.json()["error"] == other.json()["error"]  # the same words, field and type
    bad = api.client.get("/v1/approvals", params={"limit": 0}, headers=api.auth("acme", "reviewer"))
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["error"]["details"]["fields"]] == ["query.limit"]


def test_libpq_options_become_asyncpg_server_settings() -> None:
    assert server_settings("-csearch_path=s1") == {"search_path": "s1"}
    assert server_settings("-c search_path=s1 -c statement_timeout=5s --work-mem=8MB") == {
        "search_path": "s1",
        "statement_timeout": "5s",
        "work_mem": "8MB",
    }
    assert server_settings("") == {}
