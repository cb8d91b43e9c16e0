"""schemathesis against the OpenAPI document over a live server: no 5xx, every response conforms.

The server is a real `copilot api` process on PostgreSQL. The key holds every role, so
every operation is reachable; schemathesis also sends requests without a key or with a
malformed one, and invalid data of every kind (its negative mode), and checks each
response's status code, content type, headers and body against the document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance

from audit import Actor
from copilot.governance.keys import ROLES
from tests.support.live import LiveServer
from tests.support.runtime import build_runtime
from tests.support.services import pg_sqlalchemy_url

BARE = frozenset({"GET /healthz", "GET /metrics"})
MAX_EXAMPLES = 50  # per operation and mode: 36 operations x 2 modes x 50
# The feed's long-poll holds `GET /v1/actions` up to min(wait, 20 s) when nothing is
# claimable (nothing is here): the generated waits held the positive run for about 80 of
# its 100 s. A valid wait above this is sent as this (still above one poll interval, so the
# poll loop turns); that any valid wait up to 3600 is accepted and capped is
# tests/copilot/api/test_actions.py's, with the cap made short.
FEED = "GET /v1/actions"
WAIT_HELD = 0.3
# Left out, one check: "schema-valid data is accepted". The document cannot say which
# workflows are registered, which signals are declared, what a workflow's inputs or an
# action kind's payload must hold, or which cursors the server issued; those answer 422
# with their own codes (`workflow.unknown`, `signal.undeclared`, ...), as they should.


@pytest.fixture(scope="module")
def live(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, a key with every role) of a server on a schema of this module's own."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    home: Path = tmp_path_factory.mktemp("schemathesis")
    url = pg_sqlalchemy_url(schema)
    rt = build_runtime(url, home, woken=[])
    _, token = rt.keys.create(
        tenant="acme", roles=list(ROLES), name="fuzz", actor=Actor.system("t")
    )
    run, _ = rt.runner.trigger("proposing", "acct-1", tenant="acme", triggered_by="crm")
    rt.runner.run_inline(run.id)  # some real rows behind the reads
    env = {
        "COPILOT_DATABASE_URL": url,
        "COPILOT_HOME": str(home),
        "COPILOT_WORKFLOW_MODULES": "tests.support.flows",
    }
    server = LiveServer(env, home / "api.log").start()
    try:
        yield server.url, token
    finally:
        server.stop()
        rt.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_every_response_conforms_to_the_document_and_none_is_a_5xx(
    live: tuple[str, str], mode: schemathesis.GenerationMode
) -> None:
    url, token = live
    api_schema = schemathesis.openapi.from_url(url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case) -> None:
            # A well-formed bearer header gets the real key; a missing or malformed one (a
            # negative case about auth) is sent as generated and must get 401.
            if str((case.headers or {}).get("Authorization", "")).startswith("Bearer "):
                case.headers["Authorization"] = f"Bearer {token}"
            wait = (case.query or {}).get("wait")
            if (mode == schemathesis.GenerationMode.POSITIVE and operation.label == FEED  # noqa: B023 - called at once
                    and isinstance(wait, int | float) and wait > WAIT_HELD):  # fmt: skip
                case.query["wait"] = WAIT_HELD
            case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=30)

        try:
            conforms()
        except Unsatisfiable:
            # Operations without parameters, body or auth have no invalid form to send.
            if not (mode == schemathesis.GenerationMode.NEGATIVE and operation.label in BARE):
                raise
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert operations == 36
    assert not failures, "\n\n".join(failures)
