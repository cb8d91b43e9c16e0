# docs: run by tests/deploy/test_reference.py and tests/deploy/test_hosts.py (a live API)
"""A readiness probe: exit 0 once the API at argv[1] reaches its database and its broker.

`/healthz` answers 200 with {"status": "ok", "database": "ok", "broker": "ok"}, or 503
with the part that is unreachable. A load balancer or orchestrator sends traffic to an API
process only while this passes.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
if not base.startswith(("http://", "https://")):
    sys.exit(f"usage: ready.py http(s)://host:port, not {base!r}")
try:
    # S310: the scheme is checked above (no file: or custom schemes).
    with urllib.request.urlopen(f"{base.rstrip('/')}/healthz", timeout=3) as response:  # noqa: S310
        print(json.dumps(json.load(response)))
except urllib.error.HTTPError as exc:  # 503: the body names what is unreachable
    print(f"not ready ({exc.code}): {exc.read().decode()[:500]}")
    sys.exit(1)
except OSError as exc:  # refused, timed out: the process itself is not up
    print(f"not ready: {exc}")
    sys.exit(1)
