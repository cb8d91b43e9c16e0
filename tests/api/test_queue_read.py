"""The queue's hot read: asyncpg on PostgreSQL, the gate's engine on SQLite, the same bytes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text, update

from approvals.queue import QueueQuery
from approvals.tables import requests
from audit import Actor
from copilot.api import create_app
from copilot.api.reads import QueueReader, server_settings
from copilot.errors import CopilotError
from tests.api.conftest import Api, build_runtime


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


def test_the_queue_answers_503_when_its_database_is_away(pg_url: str, tmp_path: Path) -> None:
    rt = build_runtime(pg_url, tmp_path, [])
    away = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")

    async def read() -> bytes:
        reader = QueueReader(rt.gate, away)
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
        away.dispose()
        rt.close()


def test_a_kept_connection_the_server_closed_is_replaced_without_an_error(
    pg_url: str, tmp_path: Path
) -> None:
    rt = build_runtime(pg_url, tmp_path, [])
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


def test_libpq_options_become_asyncpg_server_settings() -> None:
    assert server_settings("-csearch_path=s1") == {"search_path": "s1"}
    assert server_settings("-c search_path=s1 -c statement_timeout=5s --work-mem=8MB") == {
        "search_path": "s1",
        "statement_timeout": "5s",
        "work_mem": "8MB",
    }
    assert server_settings("") == {}
