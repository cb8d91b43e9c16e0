"""The reference deployment's processes, read from deploy/compose.yaml and deploy/systemd/.

`compose_roles()` and `systemd_roles()` parse the two into the same shape, one `Role` per
copilot process (the command line and its environment); the namespace test starts what
`compose_roles()` returns and the parse test checks that the units say the same, so the
files a reader copies are the ones that were tested.
"""

from __future__ import annotations

import configparser
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ROLES = ("migrate", "api", "beat", "worker")  # the copilot processes (db, broker are theirs)
# The knobs a test may turn on top of the documented environment: where a host keeps its
# files, the test workflows, and timings short enough to watch a lease expire.
TUNING = frozenset({
    "COPILOT_HOME", "COPILOT_WORKFLOW_MODULES", "COPILOT_LEASE_SECONDS",
    "COPILOT_SWEEP_INTERVAL", "COPILOT_SWEEP_GRACE", "COPILOT_BROKER_VISIBILITY_TIMEOUT",
    "COPILOT_CHECKPOINT_EVERY", "COPILOT_QUEUE",
})  # fmt: skip


@dataclass(frozen=True)
class Role:
    """One process: its command line (program name without a path) and environment."""

    argv: tuple[str, ...]
    env: dict[str, str]


def compose_services(*overrides: str) -> dict[str, dict[str, Any]]:
    """deploy/compose.yaml's services, with override files merged as `docker compose -f ...
    -f` does (a later `command` replaces, `environment` maps merge by key)."""
    services: dict[str, dict[str, Any]] = {}
    for name in ("compose.yaml", *overrides):
        doc = yaml.safe_load((DEPLOY / name).read_text())
        for service, spec in doc["services"].items():
            merged = services.setdefault(service, {})
            for key, value in spec.items():
                if key == "environment":
                    merged[key] = {**merged.get(key, {}), **value}
                else:
                    merged[key] = value
    return services


def compose_roles(*overrides: str) -> dict[str, Role]:
    """The copilot roles of `compose_services(*overrides)`."""
    services = compose_services(*overrides)
    return {
        r: Role(tuple(services[r]["command"]), {k: str(v) for k, v in services[r]["environment"].items()})
        for r in ROLES
    }  # fmt: skip


def systemd_roles(etc: Path = DEPLOY / "systemd") -> dict[str, Role]:
    """deploy/systemd/copilot-<role>.service, each reading copilot.env."""
    roles = {}
    for role in ROLES:
        unit = configparser.ConfigParser(interpolation=None, strict=False)
        unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
        unit.read(etc / f"copilot-{role}.service")
        service = unit["Service"]
        env: dict[str, str] = {}
        env_file = service.get("EnvironmentFile")
        if env_file is not None:
            env.update(_env_file(etc / Path(env_file.lstrip("-")).name))
        for assignment in shlex.split(service.get("Environment", "")):
            key, _, value = assignment.partition("=")
            env[key] = value
        argv = shlex.split(service["ExecStart"])
        roles[role] = Role((Path(argv[0]).name, *argv[1:]), env)
    return roles


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def launch(
    role: Role, copilot: str, tuning: dict[str, str], base: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment a process of `role` starts with: the parsed command
    (`copilot` at its installed path) and the parsed environment over the process's own
    non-copilot `base` (PATH, ...), with only the `TUNING` knobs overridden."""
    if role.argv[0] != "copilot":
        raise ValueError(f"{role.argv[0]!r} is not the copilot command")
    if not set(tuning) <= TUNING:
        raise ValueError(f"not tuning knobs: {sorted(set(tuning) - TUNING)}")
    if any(k.startswith("COPILOT_") for k in base):
        raise ValueError("the base environment must not carry COPILOT_ settings")
    return [copilot, *role.argv[1:]], {**base, **role.env, **tuning}
