"""A local OpenAI-compatible HTTP server the tests start and script.

The one fake in the suite, at the model boundary: the real `openai` client (through
`langchain-openai`) talks to it over real HTTP. Each request takes the next scripted
reply; every request body is recorded so tests can check what left the process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubServer:
    """Scripted replies: {"content": str} | {"tool_calls": [...]} | {"status": int} | {"sleep": s}."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        # When no scripted reply is queued: compute one from the request (a whole run's worth).
        self.responder: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"
                )
                if self.path.rstrip("/").endswith("/embeddings"):
                    with stub.lock:
                        stub.requests.append(body)
                    return self._send(200, stub.embeddings(body))
                with stub.lock:
                    stub.requests.append(body)
                    responder = stub.responder
                    reply = stub.replies.pop(0) if stub.replies else None
                if reply is None:
                    reply = responder(body) if responder is not None else {"status": 500}
                if "delay" in reply:  # answer, but late (a worker can be killed meanwhile)
                    time.sleep(reply["delay"])
                if "sleep" in reply:
                    time.sleep(reply["sleep"])
                    reply = {"content": "{}"}
                status = reply.get("status", 200)
                doc = (
                    stub.completion(body, reply)
                    if status == 200
                    else {
                        "error": {
                            "message": f"scripted {status}",
                            "type": "server_error",
                            "code": None,
                        }
                    }
                )
                self._send(status, doc)

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first, as the timeout test intends

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for OPENAI_BASE_URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, *replies: dict[str, Any]) -> None:
        """Queue replies, consumed one per request."""
        with self.lock:
            self.replies.extend(replies)

    @staticmethod
    def completion(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
        finish = "stop"
        if "tool_calls" in reply:
            message["tool_calls"] = [
                {"id": call.get("id", f"call_{i}"), "type": "function",
                 "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}
                for i, call in enumerate(reply["tool_calls"])
            ]  # fmt: skip
            finish = "tool_calls"
        prompt = sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) // 4
        completion = len(str(reply.get("content", ""))) // 4 + 1
        return {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "stub"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }  # fmt: skip

    @staticmethod
    def embeddings(request: dict[str, Any]) -> dict[str, Any]:
        """`/v1/embeddings`: a fixed vector per text (its SHA-256 as 16 floats), unit length.

        Base64 (little-endian float32) when the client asks for it, as the openai client does
        by default.
        """
        texts = request.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        data = []
        for i, text in enumerate(texts):
            digest = hashlib.sha256(str(text).encode()).digest()
            raw = [b / 255 - 0.5 for b in digest[:16]]
            norm = sum(v * v for v in raw) ** 0.5 or 1.0
            vector = [v / norm for v in raw]
            value: Any = vector
            if request.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {"object": "list", "data": data, "model": request.get("model", "stub"),
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}}  # fmt: skip

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def request_data(request: dict[str, Any]) -> dict[str, Any]:
    """The JSON document a copilot model call sent between <data> and </data>."""
    for message in request.get("messages", []):
        text = str(message.get("content", ""))
        if text.startswith("<data>"):
            return dict(json.loads(text.removeprefix("<data>").removesuffix("</data>")))
    return {}


def request_text(request: dict[str, Any]) -> str:
    """Everything a request carried, as one string (to search for what must not be there)."""
    return json.dumps(request, ensure_ascii=False)


def serve() -> Iterator[StubServer]:
    """Generator for a pytest fixture."""
    with StubServer() as stub:
        yield stub
