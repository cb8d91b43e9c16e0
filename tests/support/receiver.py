"""A real HTTP endpoint for webhook tests: checks HMAC signatures, answers scripted statuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = b"webhook-secret"


class Receiver:
    """A real HTTP endpoint that checks signatures and answers scripted statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.seen: list[dict[str, Any]] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Copilot-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                )
                me.seen.append(
                    {
                        "key": self.headers["Idempotency-Key"],
                        "body": json.loads(body),
                        "valid": hmac.compare_digest(expected, self.headers["X-Copilot-Signature"]),
                    }
                )
                self.send_response(me.statuses.pop(0) if me.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
