#!/usr/bin/env bash
# The tutorial's terminal session, run as is by tests/test_docs_examples.py.
# Needs: the copilot virtualenv active; run it from anywhere (it works in its own folder).
set -euo pipefail
cd "$(dirname "$0")"                          # the folder holding onboarding.py
export COPILOT_WORKFLOW_MODULES=onboarding    # register onboarding.py's workflow
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export COPILOT_HOME="${COPILOT_HOME:-$PWD/.copilot}"

copilot db upgrade
python seed.py                                # the accounts' signals

# A worker advances runs (in real life: `copilot worker` in a second terminal).
copilot worker --concurrency 1 > "$COPILOT_HOME/worker.log" 2>&1 &
trap 'kill %1; wait' EXIT

copilot run onboarding --subject acct-1 --wait    # prints: <run id> onboarding@1 waiting
approval=$(copilot approvals list --json | python -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
copilot approvals approve "$approval" --as maya   # the worker carries it out, then `report` runs

until copilot runs list --state completed --json | python -c '
import json, sys
runs = json.load(sys.stdin)
print(runs[0]["result"] if runs else "not yet")
sys.exit(not runs)'; do sleep 1; done
copilot audit verify
