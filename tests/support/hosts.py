"""A copilot deployment on hosts made of network namespaces (tests/deploy/).

Hosts: `db` (a PostgreSQL cluster of the test's own, `initdb` in a temporary directory),
`broker` (a redis-server, or a RabbitMQ node, of its own), `api`, `beat`, `w1`, `w2`, and
`app` (the customer's app, which triggers runs over HTTP). Each copilot process is the
command deploy/compose.yaml gives its role, with that environment plus the `TUNING`
knobs only, started inside its host's namespace. The test process watches through the
database's Unix socket, which no network fault touches: it is the operator's console.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, create_engine, func, select, text

from copilot.db.tables import outbox, runs
from tests.support import flows
from tests.support.deployment import ROOT, Role, compose_roles, compose_services, launch
from tests.support.netns import Network, sh

COPILOT = str(Path(sys.executable).with_name("copilot"))
PG_BIN = Path(shutil.which("postgres") or "/usr/lib/postgresql/bin/postgres").parent
TIMINGS = {
    "COPILOT_LEASE_SECONDS": "4",
    "COPILOT_SWEEP_INTERVAL": "1",
    "COPILOT_SWEEP_GRACE": "3",
    "COPILOT_BROKER_VISIBILITY_TIMEOUT": "8",
    "COPILOT_CHECKPOINT_EVERY": "50",
    "COPILOT_WORKFLOW_MODULES": "tests.support.flows",
}


@dataclass
class Tally:
    """What a scenario did to its runs."""

    runs: int
    lost: int  # not completed by the deadline
    doubled: int  # a step's effect or an action committed more than once
    retaken: int  # leases taken again after a first (each re-runs the step it was on)
    verified: str  # `copilot audit verify` on the beat host
    seconds: float  # from `since` (the fault's start) to the last run completed
    done_at: float  # time.monotonic() when the last run completed


class Deployment:
    """The hosts, their processes, and the faults a scenario inflicts (see module doc)."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.net = Network()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.net.prefix}-"))
        # The postgres and rabbitmq users run servers from directories inside it.
        self.tmp.chmod(0o755)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, IO[bytes]] = {}
        overrides = ("compose.rabbitmq.yaml",) if broker == "rabbitmq" else ()
        self.roles = compose_roles(*overrides)
        services = compose_services(*overrides)
        self.db_command, self.broker_command = (services[s]["command"] for s in ("db", "broker"))
        for host in ("db", "broker", "api", "beat", "w1", "w2", "app"):
            self.net.add(host)
        self.queue = f"q{self.net.prefix}"
        self.engine: Engine | None = None
        self.ids_so_far: list[str] = []

    # -- services ---------------------------------------------------------------------------

    def start(self) -> None:
        """PostgreSQL, the broker, migrations, then the API, beat and both workers."""
        self._postgres()
        self._redis() if self.broker == "redis" else self._rabbitmq()
        self.role("beat", "migrate", wait=True)
        assert self.engine is not None
        flows.create_tables(self.engine)
        self.role("api", "api")
        self.role("beat", "beat")
        self.role("w1", "worker")
        self.role("w2", "worker")
        self.token = json.loads(self.copilot("api", "keys", "create", "--tenant", "acme",
                                             "--role", "app", "--json"))["token"]  # fmt: skip
        self._wait_healthy()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.logs[name] = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, env=env, stdout=log, stderr=log, start_new_session=True, cwd=ROOT
        )

    def _postgres(self) -> None:
        data, sock = self.tmp / "pg", self.tmp / "pgsock"
        data.mkdir()
        sock.mkdir()
        for d in (data, sock):
            shutil.chown(d, "postgres", "postgres")
        sh("runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data),
           "-A", "trust", "-U", "postgres", "--no-sync")  # fmt: skip
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all 10.213.{self.net.subnet}.0/24 trust\n")
        settings = [
            "-c", f"listen_addresses={self.net.hosts['db']}", "-c", "port=5432",
            "-c", f"unix_socket_directories={sock}", "-c", "fsync=off",
            *self.db_command[1:],  # the reference deployment's server settings
        ]  # fmt: skip
        self._spawn("postgres", [*self.net.prefix_argv("db"), "runuser", "-u", "postgres",
                                 "--", str(PG_BIN / "postgres"), "-D", str(data), *settings])  # fmt: skip
        admin = create_engine(f"postgresql+psycopg://postgres@/postgres?host={sock}",
                              isolation_level="AUTOCOMMIT")  # fmt: skip
        _until(lambda: _answers(admin), 60, "PostgreSQL in the db namespace")
        with admin.connect() as conn:  # the reference deployment's role and database
            conn.execute(text("CREATE ROLE copilot LOGIN PASSWORD 'change-me'"))
            conn.execute(text("CREATE DATABASE copilot OWNER copilot"))
        admin.dispose()
        self.engine = create_engine(f"postgresql+psycopg://copilot@/copilot?host={sock}")

    def _redis(self) -> None:
        ip = self.net.hosts["broker"]
        self._spawn("redis", [*self.net.prefix_argv("broker"), *self.broker_command,
                              "--bind", ip, "--port", "6379", "--dir", str(self.tmp)])  # fmt: skip

    def _rabbitmq(self) -> None:
        """A RabbitMQ node of this test's own: its node name, ports, data and logs."""
        base = self.tmp / "rabbitmq"
        for d in (base, base / "mnesia", base / "log"):
            d.mkdir(exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.net.hosts['broker']}:5672\n"
            "default_user = copilot\ndefault_pass = change-me\ndefault_vhost = copilot\n"
            "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
            "default_permissions.write = .*\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        for p in [base, *base.iterdir()]:
            shutil.chown(p, "rabbitmq", "rabbitmq")
        env = {
            "PATH": os.environ["PATH"], "HOME": "/var/lib/rabbitmq", "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": f"{self.net.prefix}@localhost",
            "RABBITMQ_NODE_PORT": "5672", "RABBITMQ_DIST_PORT": "25672",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "none.env"),
            "RABBITMQ_PID_FILE": str(base / "pid"), "RABBITMQ_LOGS": "-",
        }  # fmt: skip
        self._spawn("rabbitmq", [*self.net.prefix_argv("broker"), "runuser", "-u", "rabbitmq",
                                 "-m", "--", "/usr/lib/rabbitmq/bin/rabbitmq-server"], env)  # fmt: skip

    def launch(self, host: str, role: Role) -> tuple[list[str], dict[str, str]]:
        """The role's parsed command and environment on `host`, plus the tuning knobs."""
        home = self.tmp / f"home-{host}"
        home.mkdir(exist_ok=True)
        tuning = {**TIMINGS, "COPILOT_HOME": str(home), "COPILOT_QUEUE": self.queue}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "FAKETIME"))}
        # The workflows are "installed" by the path: the test flows live in this checkout.
        return launch(role, COPILOT, tuning, {**base, "PYTHONPATH": str(ROOT)})

    def role(self, host: str, role: str, *, wait: bool = False, name: str | None = None) -> None:
        """Start the role's command on `host` (`wait`: until it exits, which must be 0)."""
        r = self.roles[role]
        command, env = self.launch(host, r)
        argv = [*self.net.prefix_argv(host), *command]
        if wait:
            done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True,
                                  timeout=180)  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()[-3000:]
            return
        self._spawn(name or f"{role}@{host}", argv, env)

    def skewed_worker(self, host: str, skew: int, seconds: float) -> subprocess.Popen[bytes]:
        """tests.support.skewed's `advance` loop on `host` under libfaketime, `skew` seconds
        off, in the worker role's environment; the process (its JSON line on stdout)."""
        _, env = self.launch(host, self.roles["worker"])
        argv = [*self.net.prefix_argv(host), "faketime", "-f", f"{skew:+d}", sys.executable,
                "-m", "tests.support.skewed", "advance", str(seconds)]  # fmt: skip
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip

    def copilot(self, host: str, *args: str, check: bool = True) -> str:
        """A `copilot` CLI command on `host`, in the worker's environment; its stdout."""
        _, env = self.launch(host, self.roles["worker"])
        done = subprocess.run([*self.net.prefix_argv(host), COPILOT, *args],
                              env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self, name: str) -> None:
        """Stop one process (its whole session), SIGTERM then SIGKILL."""
        p = self.procs.pop(name)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.logs.pop(name).close()

    def close(self) -> None:
        """Stop every process, delete the namespaces and the temporary files."""
        for name in reversed(list(self.procs)):
            with contextlib.suppress(ProcessLookupError):  # it ended on its own
                self.stop(name)
        if self.engine is not None:
            self.engine.dispose()
        self.net.close()
        if os.environ.get("COPILOT_KEEP_HOSTS_LOGS"):
            print(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _wait_healthy(self) -> None:
        """docs/examples/deploying/ready.py from the app host, until the API is ready."""
        probe = [sys.executable, str(ROOT / "docs/examples/deploying/ready.py"), "http://api:8000"]
        _until(lambda: self.net.run("app", *probe, check=False).returncode == 0, 90,
               "the API's readiness (/healthz) from the app host")  # fmt: skip
        self.ready = self.net.run("app", *probe).stdout.strip()

    # -- runs -------------------------------------------------------------------------------

    def trigger(self, n: int, delay_ms: int) -> list[str]:
        """`n` five-step runs through the API from the app host; their ids."""
        script = (
            "import json, sys\nfrom copilot.client import Client\n"
            "with Client('http://api:8000', sys.argv[1]) as c:\n"
            "    ids = [c.trigger('five_steps', f'acct-{i}', inputs={'delay_ms': int(sys.argv[3])},"
            " idempotency_key=f'{sys.argv[4]}-{i}').id for i in range(int(sys.argv[2]))]\n"
            "print(json.dumps(ids))\n"
        )
        tag = f"t{time.monotonic_ns()}"
        done = self.net.run("app", sys.executable, "-c", script, self.token, str(n),
                            str(delay_ms), tag)  # fmt: skip
        ids: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
        self.ids_so_far += ids
        return ids

    def states(self, ids: list[str]) -> Counter[str]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return Counter(conn.execute(select(runs.c.state).where(runs.c.id.in_(ids))).scalars())

    def leased_by(self, ids: list[str]) -> Counter[str]:
        """Running runs by the host of their lease owner (`w1:<pid>` is w1)."""
        assert self.engine is not None
        with self.engine.connect() as conn:
            owners = conn.execute(select(runs.c.lease_owner).where(
                runs.c.id.in_(ids), runs.c.state == "running")).scalars()  # fmt: skip
            return Counter(o.split(":")[0] for o in owners if o)

    def owners(self, ids: list[str]) -> Counter[str]:
        """Completed runs by the host that completed them (the trail's `run.completed`)."""
        assert self.engine is not None
        with self.engine.connect() as conn:
            actors = conn.execute(text(
                "SELECT actor_id FROM audit_entries WHERE event_type = 'run.completed' "
                "AND run_id = ANY(:ids)"), {"ids": ids}).scalars()  # fmt: skip
            return Counter(a.split(":")[0] for a in actors)

    def settled(self, ids: list[str]) -> bool:
        return self.states(ids)["completed"] == len(ids)

    def wait_until(self, ok: Callable[[], bool], what: str, timeout: float = 60) -> None:
        _until(ok, timeout, what)

    def settle(self, ids: list[str], since: float, timeout: float = 120) -> Tally:
        """Wait until every run completed (or the timeout); the tally."""
        deadline = time.monotonic() + timeout
        done_at = time.monotonic()
        while time.monotonic() < deadline:
            if self.states(ids)["completed"] == len(ids):
                done_at = time.monotonic()
                break
            time.sleep(0.25)
        else:
            done_at = time.monotonic()
        assert self.engine is not None
        with self.engine.connect() as conn:
            states = self.states(ids)
            effects = conn.execute(
                select(func.count()).select_from(
                    select(flows.flow_effects.c.run_id).where(flows.flow_effects.c.run_id.in_(ids))
                    .group_by(flows.flow_effects.c.run_id, flows.flow_effects.c.step)
                    .having(func.count() > 1).subquery())).scalar_one()  # fmt: skip
            actions = conn.execute(
                select(func.count()).select_from(
                    select(outbox.c.run_id).where(outbox.c.run_id.in_(ids))
                    .group_by(outbox.c.run_id).having(func.count() > 1).subquery())).scalar_one()  # fmt: skip
            retaken = conn.execute(
                select(func.coalesce(func.sum(runs.c.attempts - 1), 0)).where(runs.c.id.in_(ids))
            ).scalar_one()  # fmt: skip
        verified = self.copilot("beat", "audit", "verify", "--stream", "acme", check=False).strip()
        return Tally(len(ids), len(ids) - states["completed"], int(effects) + int(actions),
                     int(retaken), verified, round(done_at - since, 2), done_at)  # fmt: skip


def _answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _until(ok: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
