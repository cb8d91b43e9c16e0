"""A webhook receiver an app would copy: check the signature, act once per Idempotency-Key.

HOOK_SECRET=... python app_receiver.py 8080 actions.db
"""

import hashlib
import hmac
import json
import os
import sqlite3
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["HOOK_SECRET"].encode()
PORT, DB = int(sys.argv[1]), sys.argv[2]
with sqlite3.connect(DB) as db:
    db.execute("CREATE TABLE IF NOT EXISTS actions (key TEXT PRIMARY KEY, kind TEXT, body TEXT)")


def signed(stamp: str, body: bytes, signature: str) -> bool:
    mac = hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300  # refuse replays
    return fresh and hmac.compare_digest("sha256=" + mac, signature)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        h = self.headers
        if not signed(h["X-Copilot-Timestamp"], body, h["X-Copilot-Signature"]):
            self.send_response(401)  # a 4xx is final: copilot stores a `refused` receipt
        else:
            action = json.loads(body)  # kind, payload, subject_id, approval_id, tenant, run_id
            with sqlite3.connect(DB) as db:  # the key is unique: a redelivery changes nothing
                db.execute(
                    "INSERT OR IGNORE INTO actions VALUES (?, ?, ?)",
                    (h["Idempotency-Key"], action["kind"], json.dumps(action["payload"])),
                )
            self.send_response(200)  # answer only after the effect is committed
        self.send_header("Content-Length", "0")
        self.end_headers()


ThreadingHTTPServer(("127.0.0.1", PORT), Hook).serve_forever()
