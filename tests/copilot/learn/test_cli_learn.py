"""`copilot learn ...` as an operator runs it, and a trainer killed mid-write leaves no torn version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from audit import SqlAuditStore, Trail
from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.learn import ArtifactError
from copilot.learn.model import empty_artifact
from copilot.learn.policy import LearnedPolicy
from copilot.learn.rewards import Feedback
from copilot.learn.store import LearnStore
from copilot.ranking import PolicyInput
from tests.support.cli import ROOT, cli
from tests.support.simulator import CANDIDATES, PRIORITY, Simulator, candidates

SURFACE = "onboarding"
LEARN_YAML = f"""
surfaces:
  {SURFACE}:
    candidates:
{chr(10).join(f'      - {{id: {c}, priority: {PRIORITY[c]}}}' for c in CANDIDATES)}
rewards: {{window: 86400}}
training: {{gamma_scale: 3.0}}
evidence: {{margin: 0.01}}
lookback_days: 30
"""


def seed(home: Path, n: int, *, seed_: int = 5) -> dict[str, str]:
    """A home whose database holds n decisions of an exploring logger, reviewer verdicts joined."""
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home}/copilot.db"
    engine = create_engine(url)
    upgrade(engine)
    store = LearnStore(engine, SqlAuditStore(engine))
    sim = Simulator(seed_)
    ctx = sim.contexts(n)
    logger = LearnedPolicy(empty_artifact(SURFACE, 0.15))
    start = time.time() - 20 * 86400
    step = 10 * 86400 / n
    rows, fb = [], []
    chosen = np.zeros(n, np.int64)
    choices = []
    for i in range(n):
        c = logger.choose(PolicyInput(surface=SURFACE, subject_id=f"s{i}",
                                      features=ctx.features(i), eligible=candidates()),
                          float(sim.rng.random()))  # fmt: skip
        chosen[i] = CANDIDATES.index(c.candidate_id or "")
        choices.append(c)
    _, delay, verdict = sim.outcomes(ctx, chosen)
    for i, c in enumerate(choices):
        at = start + i * step
        rows.append({"decision_id": f"d{i:07d}", "tenant": "default", "surface": SURFACE,
                     "subject_id": f"s{i}", "decided_at": at,
                     "features": json.dumps(ctx.features(i)),
                     "candidates": json.dumps(list(CANDIDATES)), "chosen": c.candidate_id,
                     "propensity": c.probability, "policy": c.policy, "version": c.version,
                     "holdout": False, "segment": ctx.features(i)["segment"]})  # fmt: skip
        fb.append(Feedback(decision_id=f"d{i:07d}", source="reviewer", event=str(verdict[i]),
                           at=at + min(float(delay[i]), 80000.0),
                           edit_distance=0.3 if verdict[i] == "edit" else None,
                           reason="wrong account" if verdict[i] == "reject" else None))  # fmt: skip
    from copilot.db.tables import learn_decisions

    with engine.begin() as conn:
        conn.execute(learn_decisions.insert(), rows)
    store.add_feedback("default", fb)
    engine.dispose()
    (home / "learn.yaml").write_text(LEARN_YAML)
    return {"COPILOT_LEARN_PATH": str(home / "learn.yaml"), "COPILOT_DATABASE_URL": url}


def test_train_evaluate_promote_by_two_admins_and_verify_from_the_cli(tmp_path: Path) -> None:
    env = seed(tmp_path, 2000)
    trained = cli(tmp_path, "learn", "train", SURFACE, "--json", **env)
    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)["version"]
    evaluated = cli(tmp_path, "learn", "evaluate", SURFACE, version, **env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "verdict\tok" in evaluated.stdout and "candidate\tdr" in evaluated.stdout
    promoted = cli(tmp_path, "learn", "promote", SURFACE, version, "--as", "alice", "--json", **env)
    assert promoted.returncode == 0, promoted.stderr
    approval = json.loads(promoted.stdout)["id"]
    # `copilot approvals edit` cannot retarget a promotion (the requester's vote: test_gate_duties).
    edited = cli(tmp_path, "approvals", "edit", approval, "--as", "carol", "--role", "admin",
                 "--set", f'version="{"0" * 16}"', **env)  # fmt: skip
    assert edited.returncode != 0 and "learn.promotion_locked" in edited.stderr, edited.stderr
    assert cli(tmp_path, "learn", "approve", approval, "--as", "carol", **env).returncode == 0
    done = cli(tmp_path, "learn", "approve", approval, "--as", "dave", **env)
    assert done.stdout.strip().endswith("approved"), done.stdout + done.stderr
    engine = create_engine(env["COPILOT_DATABASE_URL"])
    assert LearnStore(engine, SqlAuditStore(engine)).serving("default", SURFACE).version == version
    engine.dispose()
    verified = cli(tmp_path, "audit", "verify", **env)
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stdout
    # `copilot report --json` carries the learned surface's section (the text: test_report_section).
    reported = cli(tmp_path, "report", "--json", **env)
    assert reported.returncode == 0, reported.stderr
    (section,) = json.loads(reported.stdout)["learning"]
    assert section["serving"] == f"learned@{version}" and section["versions"][0]["state"] == "live"
    assert section["evidence"]["verdict"] == "ok" and section["evidence"]["version"] == version
    assert set(section["evidence"]["candidate"]) == {"ips", "snips", "dr"}


def test_a_trainer_killed_at_any_instant_never_leaves_a_torn_version(tmp_path: Path) -> None:
    """SIGKILL a trainer that writes version after version; every stored one matches its hash."""
    env = seed(tmp_path, 2000)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    environ.update({"COPILOT_HOME": str(tmp_path), **env})
    rng = np.random.default_rng(3)
    engine = create_engine(env["COPILOT_DATABASE_URL"])
    store = LearnStore(engine, SqlAuditStore(engine))
    for round_ in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.learn_trainer", SURFACE],
                                cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        deadline = time.monotonic() + 90
        while len(store.versions("default", SURFACE)) <= round_ and time.monotonic() < deadline:
            time.sleep(0.05)  # until this trainer has written a version: the next is under way
        time.sleep(float(rng.uniform(0.0, 0.5)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    versions = store.versions("default", SURFACE)
    assert versions
    for v in versions:
        artifact = store.artifact("default", SURFACE, v.version)  # re-hashed on read
        assert artifact.hash() == v.hash and artifact.n_train > 0
    assert store.serving("default", SURFACE).name == "rules"  # shadows act on nothing
    # A row changed behind the store's back, even by a byte, is refused, never served.
    with engine.begin() as conn:
        conn.execute(text("UPDATE learn_policies SET artifact = replace(artifact, '\"floor\":', "
                          "'\"floor\": ') WHERE version = :v"), {"v": versions[0].version})  # fmt: skip
    with pytest.raises(ArtifactError) as err:
        store.artifact("default", SURFACE, versions[0].version)
    assert err.value.code == "learn.bad_artifact"
    verdict = Trail(SqlAuditStore(engine)).verify("default")
    assert verdict.bad_seq is None and verdict.entries >= len(versions)
    engine.dispose()
