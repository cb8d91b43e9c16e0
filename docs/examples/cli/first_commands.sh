# A fresh COPILOT_HOME on the embedded defaults; `.venv/bin` on PATH (`source .venv/bin/activate`).
copilot db upgrade
copilot workflows list
copilot signals put --subject acct-001 --set account_name='"Acme"' --set nps=9
run=$(copilot run account_health --subject acct-001 --json | python -c 'import json, sys; print(json.load(sys.stdin)["id"])')
copilot runs cancel "${run:0:8}" --as maya --reason "asked twice"   # any unique start of an id
copilot audit export bundle --signed        # signs every stream's head first (creates the key)
copilot audit verify --bundle bundle
