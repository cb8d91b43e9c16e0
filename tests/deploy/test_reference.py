"""The reference deployment files say one thing: deploy/compose.yaml and deploy/systemd/
parse into the same commands and environment, the ones tests/deploy/test_hosts.py starts."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support.deployment import (
    ROLES,
    ROOT,
    compose_roles,
    compose_services,
    launch,
    systemd_roles,
)


def test_the_systemd_units_run_exactly_what_the_compose_file_runs() -> None:
    assert systemd_roles() == compose_roles()


def test_the_roles_are_the_documented_commands() -> None:
    roles = compose_roles()
    assert {r: roles[r].argv for r in ROLES} == {
        "migrate": ("copilot", "db", "upgrade"),
        "api": ("copilot", "api", "--host", "0.0.0.0", "--port", "8000"),  # noqa: S104 (a server host)
        "beat": ("copilot", "worker", "--beat", "--concurrency", "1"),
        "worker": ("copilot", "worker", "--no-beat", "--concurrency", "2"),
    }
    # One environment for every role: the same database, broker and queue everywhere.
    assert len({tuple(sorted(r.env.items())) for r in roles.values()}) == 1


def test_the_rabbitmq_override_changes_the_broker_and_nothing_else() -> None:
    redis, rabbit = compose_roles(), compose_roles("compose.rabbitmq.yaml")
    for role in ROLES:
        assert rabbit[role].argv == redis[role].argv
        changed = {k for k in redis[role].env if redis[role].env[k] != rabbit[role].env.get(k)}
        assert changed == {"COPILOT_BROKER_URL"}
        assert rabbit[role].env["COPILOT_BROKER_URL"].startswith("amqp://")
    assert compose_services("compose.rabbitmq.yaml")["broker"]["image"].startswith("rabbitmq:")


def test_a_process_starts_with_the_parsed_command_and_environment_plus_tuning_only() -> None:
    """What tests/deploy/test_hosts.py hands each process (through `launch`)."""
    tuning = {"COPILOT_LEASE_SECONDS": "4", "COPILOT_HOME": "/tmp/h"}
    for role in compose_roles().values():
        argv, env = launch(role, "/venv/bin/copilot", tuning, {"PATH": "/bin"})
        assert argv == ["/venv/bin/copilot", *role.argv[1:]]
        assert env == {"PATH": "/bin", **role.env, **tuning}
    worker = compose_roles()["worker"]
    with pytest.raises(ValueError, match="COPILOT_BROKER_URL"):
        launch(worker, "copilot", {"COPILOT_BROKER_URL": "redis://elsewhere"}, {})
    with pytest.raises(ValueError, match="base environment"):
        launch(worker, "copilot", {}, {"COPILOT_DATABASE_URL": "sqlite://"})


def test_the_readiness_probe_fails_with_a_reason_when_no_api_answers() -> None:
    """docs/examples/deploying/ready.py (test_hosts.py runs it against a live API)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    done = subprocess.run(
        [sys.executable, "docs/examples/deploying/ready.py", f"http://127.0.0.1:{port}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.startswith("not ready: ")
